"""Resumable (tus) uploads as a client makes them: through falcon.testing (creating, sending
bytes, asking how far an upload is), and against a real server what no tus client sends (a
PATCH cut short); the upload rows and partial files read back."""
import base64
import hashlib
import os
import re
import socket
from pathlib import Path

import requests

from .net import HOST, REQUEST_TIMEOUT

TUS_PATH = "/api/v3/attachments/tus"
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
# a PATCH or DELETE while another request holds the upload's lease (423 Locked)
LOCKED = "Another request is writing to this upload. Try again once it has finished."


def encode_metadata(**pairs) -> str:
    """An ``Upload-Metadata`` value: each key with its Base64 value."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in pairs.items())


def checksum(algorithm, data) -> str:
    """An ``Upload-Checksum`` value of ``data``."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(digest).decode()}"


def create(client, auth, length, body=None, headers=None, **metadata):
    """POST a new upload of ``length`` bytes (``body``: its first bytes)."""
    metadata = metadata or {"filename": "notes.txt"}
    request_headers = {**auth, **TUS, "Upload-Length": str(length),
                       "Upload-Metadata": encode_metadata(**metadata)}
    if body is not None:
        request_headers["Content-Type"] = OFFSET_OCTET_STREAM
    return client.simulate_post(TUS_PATH, body=body, headers={**request_headers,
                                                              **(headers or {})})


def created(client, auth, length, **metadata) -> str:
    """The path of a new upload."""
    response = create(client, auth, length, **metadata)
    assert response.status_code == 201, response.json
    return response.headers["location"]


def partial(client, auth, data, *, sent=None):
    """The path of a new partial upload of ``data``, ``sent`` bytes of it sent (all)."""
    response = client.simulate_post(TUS_PATH, headers={
        **auth, **TUS, "Upload-Length": str(len(data)), "Upload-Concat": "partial"})
    assert response.status_code == 201, response.json
    path = response.headers["location"]
    sent = len(data) if sent is None else sent
    if sent:
        assert patch(client, auth, path, 0, data[:sent]).status_code == 204
    return path


def final(client, auth, *urls, headers=None, **metadata):
    """POST the final upload that joins the partial uploads at ``urls``."""
    metadata = metadata or {"filename": "joined.bin"}
    return client.simulate_post(TUS_PATH, headers={
        **auth, **TUS, "Upload-Concat": "final;" + " ".join(urls),
        "Upload-Metadata": encode_metadata(**metadata), **(headers or {})})


def patch(client, auth, path, offset, data, headers=None):
    return client.simulate_patch(path, body=data, headers={
        **auth, **TUS, "Upload-Offset": str(offset), "Content-Type": OFFSET_OCTET_STREAM,
        **(headers or {})})


def head(client, auth, path):
    return client.simulate_head(path, headers={**auth, **TUS})


def concat_states(catalog):
    """(token, Upload-Concat, token joined into, length deferred) of every resumable upload."""
    with catalog.database.connection_context():
        return [(token, concat, joined_into, bool(deferred))
                for token, concat, joined_into, deferred in catalog.database.execute_sql(
                    'SELECT "token", "concat", "joined_into", "length_deferred" '
                    'FROM "resumable_uploads" ORDER BY "id"').fetchall()]


def uploads(catalog):
    """(token, received, upload length, attachment id) of every resumable upload."""
    with catalog.database.connection_context():
        return [tuple(row) for row in catalog.database.execute_sql(
            'SELECT "token", "received", "upload_length", "attachment_id" '
            'FROM "resumable_uploads" ORDER BY "id"').fetchall()]


def partial_files(blob_root: Path) -> dict:
    """{token: bytes} of every partial upload file of a local store."""
    folder = blob_root / ".tus"
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))} \
        if folder.exists() else {}


def token_of(path) -> str:
    return path.rsplit("/", 1)[1]


def cut_short_patch(port, path, auth, offset, data, declared):
    """A PATCH over a raw socket that declares ``declared`` bytes, sends only ``data``, and
    goes away (a dropped connection mid-upload: what ``requests`` cannot send)."""
    headers = {**auth, **TUS, "Upload-Offset": str(offset),
               "Content-Type": OFFSET_OCTET_STREAM, "Content-Length": str(declared)}
    head_lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection((HOST, port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(f"PATCH {path} HTTP/1.1\r\nHost: {HOST}\r\n{head_lines}\r\n".encode()
                     + data)
        sock.shutdown(socket.SHUT_WR)


def offset_of(url, auth) -> int:
    """The offset a real server answers for the upload at ``url``."""
    response = requests.head(url, headers={**auth, **TUS}, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def attachment_of(link_header) -> int:
    """The attachment id of a finished upload's ``Link`` header."""
    match = re.fullmatch(r'</api/v3/attachments/(\d+)>; rel="attachment"', link_header or "")
    assert match, link_header
    return int(match[1])


def attachments(catalog):
    """(id, file name, size, md5, content type, status, container) of every attachment."""
    with catalog.database.connection_context():
        Attachment = catalog.Attachment
        return [(a.id, a.file_name, a.file_size, a.md5, a.content_type, a.status,
                 a.container_type, a.container_id)
                for a in Attachment.select().order_by(Attachment.id)]


def blob_files(stored) -> dict:
    """Every file of the blob folder but the partial uploads."""
    return {path: data for path, data in stored.files().items() if not path.startswith(".tus/")}


def assert_nothing_left(catalog, stored):
    """No upload, no attachment, no byte anywhere in the store."""
    assert uploads(catalog) == []
    assert attachments(catalog) == []
    assert stored.files() == {}
