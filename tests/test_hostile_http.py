"""Hostile requests over real HTTP, against ``affix serve``: what gunicorn answers itself is HAL,
a broken chunked body is 400 with nothing in the log but a line that says so, and a forwarded
path prefix is used or refused (issue "Hardening", 7 and 9)."""
import json
import socket

import pytest
import requests

from support.bodies import upload_body
from support.net import HOST, REQUEST_TIMEOUT

pytestmark = pytest.mark.system

URN = "urn:openproject-org:api:v3:errors:"
UNREADABLE = ("The request body could not be read: its framing is broken, or it ended "
              "early.")


def exchange(port, raw: bytes) -> tuple:
    """(status, headers, body) of the answer to ``raw``, sent whole and then half-closed."""
    with socket.create_connection((HOST, port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip()
               for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def hal(body: bytes) -> dict:
    return json.loads(body)


@pytest.mark.parametrize("raw, status, identifier, message", [
    (b"GARBAGE\r\n\r\n", 400, "InvalidRequestBody",
     "Invalid Request Line 'Invalid HTTP request line: 'GARBAGE''"),
    (b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\nHost: affix\r\n\r\n", 414, "InvalidRequestBody",
     "Request Line is too large (8014 > 4094)"),
    (b"GET /api/v3 HTTP/1.1\r\nHost: affix\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n", 431,
     "InvalidRequestBody", "Error parsing headers: 'limit request headers fields size'"),
    (b"POST /api/v3/attachments HTTP/1.1\r\nHost: affix\r\nTransfer-Encoding: foo\r\n\r\n",
     501, "NotImplemented", "Unsupported transfer coding: 'foo'"),
], ids=["bad request line", "request line too long", "header too large",
        "unknown transfer coding"])
def test_what_gunicorn_refuses_itself_is_answered_in_hal(server, raw, status, identifier,
                                                         message):
    answered, headers, body = exchange(server.port, raw)

    assert (answered, headers["content-type"]) == (status, "application/hal+json")
    assert hal(body) == {"_type": "Error", "errorIdentifier": URN + identifier,
                         "message": message}


def chunked_upload(server, chunked_body: bytes) -> bytes:
    return (b"POST /api/v3/attachments HTTP/1.1\r\nHost: affix\r\n"
            + f"Authorization: {server.auth['Authorization']}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Transfer-Encoding: chunked\r\n\r\n" + chunked_body)


@pytest.mark.parametrize("chunked_body", [
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"10\r\nabc\r\n0\r\n\r\n",
    b"10\r\nabc",
    b"3\r\nabcXY",
], ids=["bad chunk size", "short chunk", "cut off, then half-closed", "chunk without its CRLF"])
def test_a_broken_chunked_body_is_400_and_leaves_nothing(server, chunked_body):
    body, content_type = upload_body(b'{"fileName": "kept.txt"}', b"kept")
    kept = requests.post(server.url("/api/v3/attachments"), data=body, timeout=REQUEST_TIMEOUT,
                         headers={**server.auth, "Content-Type": content_type})
    assert kept.status_code == 200
    before = server.stored.snapshot()

    status, headers, answer = exchange(server.port, chunked_upload(server, chunked_body))

    assert (status, headers["content-type"]) == (400, "application/hal+json")
    assert hal(answer) == {"_type": "Error", "errorIdentifier": URN + "InvalidRequestBody",
                           "message": UNREADABLE}
    assert server.stored.snapshot() == before
    assert server.staged_blobs() == []
    assert "Traceback" not in server.stderr()


def test_a_forwarded_prefix_the_path_starts_with_is_the_mount_point(server):
    status, _, body = exchange(server.port, (
        b"GET /files/api/v3 HTTP/1.1\r\nHost: affix\r\nSCRIPT_NAME: /files\r\n"
        + f"Authorization: {server.auth['Authorization']}\r\nConnection: close\r\n\r\n"
        .encode()))

    assert status == 200
    assert hal(body)["_links"]["self"]["href"] == "/files/api/v3"


def test_a_forwarded_prefix_the_path_does_not_start_with_is_400(server):
    status, headers, body = exchange(server.port, (
        b"GET /api/v3 HTTP/1.1\r\nHost: affix\r\nSCRIPT_NAME: /files\r\n\r\n"))

    assert (status, headers["content-type"]) == (400, "application/hal+json")
    assert hal(body) == {
        "_type": "Error", "errorIdentifier": URN + "InvalidRequestBody",
        "message": "The forwarded path prefix does not fit the path: Request path '/api/v3' "
                   "does not start with SCRIPT_NAME '/files'"}
