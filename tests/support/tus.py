"""Resumable (tus) uploads as a client makes them through falcon.testing: creating, sending
bytes, asking how far an upload is; and the upload rows and partial files read back."""
import base64
import hashlib
import os
from pathlib import Path

TUS_PATH = "/api/v3/attachments/tus"
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_OCTET_STREAM = "application/offset+octet-stream"


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


def patch(client, auth, path, offset, data, headers=None):
    return client.simulate_patch(path, body=data, headers={
        **auth, **TUS, "Upload-Offset": str(offset), "Content-Type": OFFSET_OCTET_STREAM,
        **(headers or {})})


def head(client, auth, path):
    return client.simulate_head(path, headers={**auth, **TUS})


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
