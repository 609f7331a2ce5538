"""affix under a real gunicorn server on loopback, for what only a real server shows: chunked
bodies, clients that vanish mid-body, an over-limit body refused while it is still arriving,
concurrent uploads, and the stored bytes served back exactly."""
import concurrent.futures
import dataclasses
import http.client
import json
import os
import select
import socket
import threading
import time

import pytest

from affix.app.testing import multipart, upload_form
from support.content import KiB, MiB, md5, random_bytes
from support.errors import hal_error
from support.http import (
    SEND_CHUNK_SIZE, assert_downloads_as, assert_uploaded, download, request_head, upload,
)
from support import servers
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.processes import open_files_below
from support.servers import HIGH_LIMIT
from support.waiting import wait_for

# every test here starts a real server (the server and start_server fixtures of support.servers)
pytestmark = pytest.mark.system


def assert_stored_exactly(server, uploads):
    """Exactly the rows and blobs of ``uploads`` ({id: (file name, content)}), nothing staged."""
    assert server.staged_blobs() == []
    rows, files = server.stored.snapshot()
    assert [row[:4] for row in rows] == [
        (attachment_id, file_name, len(content), md5(content))
        for attachment_id, (file_name, content) in sorted(uploads.items())
    ]
    storage_keys = {row[0]: row[4] for row in rows}
    assert files == {storage_keys[attachment_id]: content
                     for attachment_id, (_, content) in uploads.items()}


def send_until_answered(sock, chunks) -> int:
    """Send ``chunks`` until the server's answer can be read (or the server stops listening);
    returns how many bytes had been sent by then."""
    sock.setblocking(False)
    deadline = time.monotonic() + REQUEST_TIMEOUT
    chunks = iter(chunks)
    pending = memoryview(b"")
    sent = 0
    while True:
        if not pending:
            pending = memoryview(next(chunks, b""))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no answer within {REQUEST_TIMEOUT} s after sending {sent} bytes")
        readable, writable, _ = select.select([sock], [sock] if pending else [], [], remaining)
        if readable:
            return sent
        if writable:
            try:
                count = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                # the server closed its end: its answer, if it sent one, is ours to read
                return sent
            sent += count
            pending = pending[count:]


@dataclasses.dataclass
class RawResponse:
    status: int
    headers: http.client.HTTPMessage
    document: dict


def read_response(sock) -> RawResponse:
    """The response waiting on ``sock``, its JSON body parsed."""
    sock.setblocking(True)
    sock.settimeout(REQUEST_TIMEOUT)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return RawResponse(response.status, response.headers, json.loads(response.read()))


def assert_error(response, status, identifier, message, attribute=None):
    assert response.status == status
    assert response.headers["Content-Type"] == "application/hal+json"
    assert response.document == hal_error(identifier, message, attribute)


def assert_no_errors_logged(server):
    # an exception nobody handled (in affix or in gunicorn) leaves a trace in the server's log
    log = server.stderr()
    assert "Traceback" not in log and "[ERROR]" not in log, log


# --- the tests ---------------------------------------------------------------------------------

def test_a_chunked_upload_is_stored_and_downloads_identical(server):
    content = random_bytes(3 * MiB + 17, seed=1)
    response = upload(server, "chunked.bin", content, chunked=True)

    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.request.headers
    attachment_id = assert_uploaded(response, "chunked.bin", content)
    assert_stored_exactly(server, {attachment_id: ("chunked.bin", content)})
    assert_downloads_as(server, attachment_id, content)


def test_a_client_that_disconnects_mid_body_leaves_nothing_and_the_workers_live_on(server):
    workers = server.worker_pids()
    body, content_type = upload_form("vanishing.bin", random_bytes(MiB, seed=2))

    with socket.create_connection((HOST, server.port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(request_head(server, content_type, len(body)) + body[:len(body) // 4])
        # the server is inside the upload once it has staged a blob for it
        wait_for(server.staged_blobs, "the upload to be staged")
    wait_for(lambda: not server.staged_blobs(), "the staged blob to be discarded")

    assert server.stored.snapshot() == ([], {})
    content = random_bytes(100 * KiB, seed=3)
    attachment_id = assert_uploaded(upload(server, "after.bin", content), "after.bin", content)
    assert_stored_exactly(server, {attachment_id: ("after.bin", content)})
    # no worker died and was replaced
    assert server.worker_pids() == workers
    for pid in workers:
        os.kill(pid, 0)  # raises ProcessLookupError for a worker that is gone
    assert_no_errors_logged(server)


def test_a_body_cut_short_by_a_half_close_is_answered_400(server):
    body, content_type = upload_form("short.bin", random_bytes(MiB, seed=4))
    sent = len(body) // 2

    with socket.create_connection((HOST, server.port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(request_head(server, content_type, len(body)) + body[:sent])
        # the client is done sending but still listens: gunicorn sees a short read
        sock.shutdown(socket.SHUT_WR)
        response = read_response(sock)

    assert_error(response, 400, "InvalidRequestBody",
                 f"The request body ended after {sent} of {len(body)} bytes.")
    assert server.stored.snapshot() == ([], {})
    assert_no_errors_logged(server)


def test_uploads_on_one_kept_alive_connection_each_get_their_own_body(server):
    """affix reads a body from gunicorn's socket itself (app/http/socket_body.py): an upload
    refused half-way leaves gunicorn the rest to discard, and the next request on the
    connection is read from where that body ended."""
    first = random_bytes(2 * MiB + 3, seed=11)
    second = random_bytes(300 * KiB, seed=12)
    first_body, first_type = upload_form("first.bin", first)
    refused_body, refused_type = multipart([
        ("metadata", b'{"fileName": "refused.bin"}', {"Content-Type": "application/json"}),
        # refused within the app's first read (1 MiB): gunicorn drains the few hundred bytes
        # left (past 64 KiB left it closes the connection instead, whoever read the body)
        ("surprise", random_bytes(MiB, seed=13), {}),
        ("file", b"never read", {"Content-Type": "application/octet-stream"}),
    ])
    second_body, second_type = upload_form("second.bin", second)

    with socket.create_connection((HOST, server.port), timeout=REQUEST_TIMEOUT) as sock:
        answers = []
        for body, content_type in [(first_body, first_type), (refused_body, refused_type),
                                   (second_body, second_type)]:
            sock.sendall(request_head(server, content_type, len(body)) + body)
            answers.append(read_response(sock))

    assert [answer.status for answer in answers] == [200, 400, 200]
    assert_error(answers[1], 400, "InvalidRequestBody",
                 "The part 'surprise' is not expected: send exactly the parts 'metadata' "
                 "and 'file'.")
    ids = [answers[0].document["id"], answers[2].document["id"]]
    assert_stored_exactly(server, {ids[0]: ("first.bin", first), ids[1]: ("second.bin", second)})
    assert_downloads_as(server, ids[0], first)
    assert_downloads_as(server, ids[1], second)
    assert_no_errors_logged(server)


def test_an_over_limit_upload_is_refused_before_the_client_has_sent_it(start_server):
    server = start_server(max_attachment_size=MiB)
    file_size = 64 * MiB
    # the multipart body around a file marker, so that the 64 MiB never sit in memory at once
    marker = b"\0the-file\0"
    envelope, content_type = upload_form("huge.bin", marker)
    before_file, after_file = envelope.split(marker)
    block = random_bytes(SEND_CHUNK_SIZE, seed=5)
    body_length = len(before_file) + file_size + len(after_file)
    body = [before_file, *[block] * (file_size // len(block)), after_file]

    with socket.create_connection((HOST, server.port), timeout=REQUEST_TIMEOUT) as sock:
        # a small send buffer keeps what our kernel holds back out of the count: the bytes
        # sent are close to the bytes the server took in
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * KiB)
        sent = send_until_answered(
            sock, [request_head(server, content_type, body_length), *body])
        response = read_response(sock)

    assert_error(response, 422, "PropertyConstraintViolation",
                 "File is too large (maximum size is 1048576 Bytes).", "fileSize")
    # what was sent is what the server read (a little over the limit) plus what the socket
    # buffers held: far from the whole body
    assert sent < body_length // 4, f"the client had sent {sent} of {body_length} bytes"
    assert server.stored.snapshot() == ([], {})
    assert_no_errors_logged(server)


def test_concurrent_uploads_are_all_stored_intact(server):
    contents = {
        f"file-{number}.bin": random_bytes((number + 1) * 200 * KiB + number, seed=10 + number)
        for number in range(8)
    }
    # all uploads start together, so that they really overlap in the server
    start_line = threading.Barrier(len(contents))

    def upload_at_once(file_name):
        start_line.wait(timeout=REQUEST_TIMEOUT)
        return upload(server, file_name, contents[file_name])

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(contents)) as pool:
        responses = dict(zip(contents, pool.map(upload_at_once, contents)))

    uploads = {
        assert_uploaded(response, file_name, contents[file_name]): (file_name, contents[file_name])
        for file_name, response in responses.items()
    }
    assert len(uploads) == len(contents)
    assert_stored_exactly(server, uploads)
    for attachment_id, (_, content) in uploads.items():
        assert_downloads_as(server, attachment_id, content)


def test_download_and_a_byte_range_serve_the_uploaded_bytes(server):
    content = random_bytes(5 * MiB + 3, seed=20)
    attachment_id = assert_uploaded(upload(server, "big.bin", content), "big.bin", content)

    assert_downloads_as(server, attachment_id, content)
    ranged = download(server, attachment_id, Range="bytes=100-199")
    assert ranged.status_code == 206
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{len(content)}"
    assert ranged.headers["Content-Length"] == "100"
    assert ranged.content == content[100:200]
    assert_stored_exactly(server, {attachment_id: ("big.bin", content)})


@pytest.mark.sqlite_only("reads which files the master has open; PostgreSQL's are sockets")
def test_the_workers_fork_from_a_master_holding_no_database_file_open(server, tmp_path):
    # the master made the admin, so it had the database open; a worker inheriting that
    # connection (or the writers' lock file) would share it with the master and its siblings
    content = random_bytes(10 * KiB, seed=5)
    assert_uploaded(upload(server, "a.bin", content), "a.bin", content)

    assert open_files_below(server.master_pid, tmp_path / "data") == []
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == [
        "affix.sqlite3", "affix.sqlite3-shm", "affix.sqlite3-wal", "affix.sqlite3-writers", "blobs"]


def test_the_content_path_serves_the_same_bytes_as_download(server):
    content = random_bytes(2 * MiB + 5, seed=30)
    attachment_id = assert_uploaded(upload(server, "both.bin", content), "both.bin", content)

    by_download = download(server, attachment_id, "download")
    by_content = download(server, attachment_id, "content")
    assert (by_content.status_code, by_download.status_code) == (200, 200)
    assert by_content.content == by_download.content == content
    for header in ("Content-Type", "Content-Length", "Content-Disposition"):
        assert by_content.headers[header] == by_download.headers[header]


def test_a_server_whose_port_was_taken_before_it_bound_starts_on_another(
        tmp_path, databases, monkeypatch):
    """support.servers picks a free port, which another process may take before the server
    binds it: serve refuses it before it makes anything, and the next start takes another."""
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], free_port()])
        monkeypatch.setattr(servers, "free_port", lambda: next(ports))
        with servers.running_server(tmp_path, databases, HIGH_LIMIT) as server:
            assert server.port != taken.getsockname()[1]
            content = random_bytes(KiB, seed=14)
            attachment_id = assert_uploaded(upload(server, "after.bin", content), "after.bin",
                                            content)
            assert_stored_exactly(server, {attachment_id: ("after.bin", content)})
