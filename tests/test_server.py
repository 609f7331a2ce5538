"""affix under a real gunicorn server on loopback, for what only a real server shows: chunked
bodies, clients that vanish mid-body, an over-limit body refused while it is still arriving,
concurrent uploads, and the stored bytes served back exactly."""
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from affix.app import open_catalog
from conftest import Stored, basic_auth, hal_error, upload_body

# the server runs the code that sits next to these tests, whatever else is installed
REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
KiB = 1024
MiB = 1024 * KiB
# for the tests that are not about the limit: far above every file they send
HIGH_LIMIT = 64 * MiB
WORKERS = 2
ADMIN_KEY_ANNOUNCEMENT = (
    "affix: created the admin user 'admin'. Its API key is shown only this once:"
)
STARTUP_TIMEOUT = 30
SHUTDOWN_TIMEOUT = 15
CONDITION_TIMEOUT = 10
REQUEST_TIMEOUT = 30
POLL_INTERVAL = 0.02
SEND_CHUNK_SIZE = 64 * KiB
WORKER_BOOTED = re.compile(r"Booting worker with pid: (\d+)")


def wait_for(condition, description, timeout=CONDITION_TIMEOUT):
    """Poll ``condition`` until it is true; fail the test if it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {description}")
        time.sleep(POLL_INTERVAL)


def random_bytes(size, seed) -> bytes:
    # seeded: a failure reproduces with the very same bytes
    return random.Random(seed).randbytes(size)


def md5(data) -> str:
    return hashlib.md5(data).hexdigest()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclasses.dataclass
class ServedAffix:
    """An affix server on loopback, reached with the admin key it announced."""
    port: int
    api_key: str

    @property
    def auth(self) -> dict:
        return {"Authorization": basic_auth(self.api_key)}

    def url(self, path) -> str:
        return f"http://{HOST}:{self.port}{path}"


@dataclasses.dataclass
class RunningServer(ServedAffix):
    master_pid: int
    stored: Stored
    staging: Path
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def worker_pids(self) -> set:
        """Every worker gunicorn has booted so far: a worker that died is replaced by a new one."""
        return booted_worker_pids(self.stderr())

    def staged_blobs(self) -> list:
        return list(self.staging.iterdir())


def open_files_below(pid, directory) -> list:
    """The files below ``directory`` that process ``pid`` has open (Linux)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    targets = []
    for fd in fd_dir.iterdir():
        with contextlib.suppress(FileNotFoundError):
            targets.append(Path(os.readlink(fd)))
    return [target for target in targets if target.is_relative_to(directory)]


def booted_worker_pids(server_log) -> set:
    return {int(pid) for pid in WORKER_BOOTED.findall(server_log)}


def announced_api_key(stdout_path):
    """The admin's API key from the first start's announcement, once both lines are out."""
    output = stdout_path.read_text()
    lines = output.split("\n")
    if len(lines) < 3:
        return None
    assert lines[0] == ADMIN_KEY_ANNOUNCEMENT, output
    assert lines[1].startswith("  ") and lines[1].strip(), output
    return lines[1].strip()


def answers_requests(port, api_key) -> bool:
    try:
        response = requests.get(
            f"http://{HOST}:{port}/api/v3",
            headers={"Authorization": basic_auth(api_key)}, timeout=1,
        )
    except (requests.ConnectionError, requests.Timeout):
        return False
    return response.status_code == 200


def await_startup(process, port, stdout_path, stderr_path, api_key=None) -> str:
    """The key the server answered to, once all its workers have booted: ``api_key``, or the
    admin's key announced on a first start."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            problem = f"exited with status {process.returncode} while starting"
            break
        api_key = api_key or announced_api_key(stdout_path)
        booted = booted_worker_pids(stderr_path.read_text(errors="replace"))
        if api_key and len(booted) == WORKERS and answers_requests(port, api_key):
            return api_key
        if time.monotonic() > deadline:
            problem = f"did not come up within {STARTUP_TIMEOUT} s"
            break
        time.sleep(POLL_INTERVAL)
    pytest.fail(
        f"affix serve {problem}.\nstdout:\n{stdout_path.read_text()}\n"
        f"stderr:\n{stderr_path.read_text(errors='replace')}"
    )


def stop_expecting_it_running(process, stderr_path):
    """stop() a server that should still be running: one that exited on its own during the
    test fails it, with what it printed (its requests only said "connection refused")."""
    exited = process.poll()
    stop(process)
    if exited is not None:
        pytest.fail(f"affix serve exited with status {exited} during the test.\n"
                    f"stderr:\n{stderr_path.read_text(errors='replace')}")


def stop(process):
    """SIGTERM for a graceful stop; SIGKILL for the whole process group if that hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        # the server was started in a session of its own: the group is its arbiter and workers
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_server(run_dir: Path, databases, max_attachment_size, extra_environ=None):
    """A server with its data in ``run_dir`` and its database from ``databases`` (conftest's);
    ``extra_environ`` adds settings (AFFIX_*)."""
    data_dir = run_dir / "data"
    stdout_path, stderr_path = run_dir / "server.stdout", run_dir / "server.stderr"
    port = free_port()
    # only the settings chosen here: nothing from the caller's environment leaks in
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith("AFFIX_")}
    environ.update(databases.environ(
        data_dir, AFFIX_MAX_ATTACHMENT_SIZE=str(max_attachment_size), **(extra_environ or {})))
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "affix.app.cli", "serve", "--bind", f"{HOST}:{port}",
             "--workers", str(WORKERS), "--threads", "4"],
            cwd=REPO_ROOT, env=environ, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            start_new_session=True,
        )
    try:
        api_key = await_startup(process, port, stdout_path, stderr_path)
        settings = databases.settings(data_dir)
        catalog = open_catalog(settings)
        blob_root = Path(settings.storage_url)
        try:
            yield RunningServer(
                port=port, api_key=api_key, master_pid=process.pid,
                stored=Stored(catalog, blob_root),
                staging=blob_root / ".staging", stderr_path=stderr_path,
            )
        finally:
            catalog.database.close()
    finally:
        stop_expecting_it_running(process, stderr_path)


@pytest.fixture
def start_server(tmp_path, databases):
    """Starts one server with a given size limit; it is stopped when the test ends."""
    with contextlib.ExitStack() as stack:
        def start(max_attachment_size=HIGH_LIMIT):
            return stack.enter_context(running_server(tmp_path, databases, max_attachment_size))
        yield start


@pytest.fixture
def server(start_server):
    return start_server()


# --- talking to the server ---------------------------------------------------------------------

def multipart_upload(file_name, content):
    return upload_body(json.dumps({"fileName": file_name}).encode(), content)


def in_chunks(data, size=SEND_CHUNK_SIZE):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def upload(server, file_name, content, chunked=False):
    body, content_type = multipart_upload(file_name, content)
    return requests.post(
        server.url("/api/v3/attachments"),
        # a generator makes requests send the body chunked, without Content-Length
        data=in_chunks(body) if chunked else body,
        headers={**server.auth, "Content-Type": content_type}, timeout=REQUEST_TIMEOUT,
    )


def assert_uploaded(response, file_name, content) -> int:
    """The id of the attachment a successful upload answered with."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/hal+json"
    document = response.json()
    attachment_id = document["id"]
    assert (document["fileName"], document["fileSize"], document["filesize"]) == (
        file_name, len(content), len(content))
    assert document["digest"] == {"algorithm": "md5", "hash": md5(content)}
    assert document["_links"]["downloadLocation"] == {
        "href": f"/api/v3/attachments/{attachment_id}/download"}
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


def request_head(server, content_type, content_length) -> bytes:
    return (
        "POST /api/v3/attachments HTTP/1.1\r\n"
        f"Host: {HOST}:{server.port}\r\n"
        f"Authorization: {server.auth['Authorization']}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {content_length}\r\n"
        "\r\n"
    ).encode()


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
    body, content_type = multipart_upload("vanishing.bin", random_bytes(MiB, seed=2))

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
    body, content_type = multipart_upload("short.bin", random_bytes(MiB, seed=4))
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


def test_an_over_limit_upload_is_refused_before_the_client_has_sent_it(start_server):
    server = start_server(max_attachment_size=MiB)
    file_size = 64 * MiB
    # the multipart body around a file marker, so that the 64 MiB never sit in memory at once
    marker = b"\0the-file\0"
    envelope, content_type = multipart_upload("huge.bin", marker)
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
