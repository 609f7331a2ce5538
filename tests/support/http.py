"""Uploading to and downloading from a real server over loopback (``requests``, or a raw socket
for what ``requests`` cannot send), and what a good answer looks like.

``server`` is anything with ``url(path)``, ``auth`` and ``port``: ``servers.RunningServer``, or a
test's own."""
import requests

from affix.app.testing import upload_form

from .content import KiB, md5
from .net import HOST, REQUEST_TIMEOUT

SEND_CHUNK_SIZE = 64 * KiB


def in_chunks(data, size=SEND_CHUNK_SIZE):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def upload(server, file_name, content, chunked=False):
    body, content_type = upload_form(file_name, content)
    return requests.post(
        server.url("/api/v3/attachments"),
        # a generator makes requests send the body chunked, without Content-Length
        data=in_chunks(body) if chunked else body,
        headers={**server.auth, "Content-Type": content_type}, timeout=REQUEST_TIMEOUT,
    )


def assert_uploaded(response, file_name, content, download_prefix=None) -> int:
    """The id of the attachment a successful upload answered with. ``download_prefix``: where
    a store that serves its own downloads (S3) points them; else affix's own /download."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/hal+json"
    document = response.json()
    attachment_id = document["id"]
    assert (document["fileName"], document["fileSize"], document["filesize"]) == (
        file_name, len(content), len(content))
    assert document["digest"] == {"algorithm": "md5", "hash": md5(content)}
    href = document["_links"]["downloadLocation"]["href"]
    if download_prefix is None:
        assert href == f"/api/v3/attachments/{attachment_id}/download"
    else:
        assert href.startswith(download_prefix), href
    return attachment_id


def download(server, attachment_id, path="download", **headers):
    return requests.get(
        server.url(f"/api/v3/attachments/{attachment_id}/{path}"),
        headers={**server.auth, **headers}, timeout=REQUEST_TIMEOUT,
    )


def assert_downloads_as(server, attachment_id, content):
    response = download(server, attachment_id)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(content))
    assert response.content == content


def request_head(server, content_type, content_length) -> bytes:
    """The head of an upload request, for a test that sends the body itself on a socket."""
    return (
        "POST /api/v3/attachments HTTP/1.1\r\n"
        f"Host: {HOST}:{server.port}\r\n"
        f"Authorization: {server.auth['Authorization']}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {content_length}\r\n"
        "\r\n"
    ).encode()
