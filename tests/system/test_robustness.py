"""affix under load and through crashes, against a real ``affix serve`` on loopback.

Load: 16 clients mix uploads, downloads, claims and deletes for LOAD_SECONDS against gunicorn
with 2 workers of 8 threads; no answer may be a 5xx, and afterwards every acknowledged upload is
stored with exactly its bytes, every deleted one is gone, and nothing else is on disk.

Crashes: a worker SIGKILLed in the middle of an upload; the whole server SIGKILLed between
uploads, in the middle of uploads, and while an upload whose blob is committed waits for the
database to write its row. Every acknowledged attachment survives intact, the cut-off upload
leaves no row (nor, but in the last case, a committed blob, which ``affix gc`` removes), and the
next ``affix serve`` sweeps what was left in staging before its workers start.

The load test found that SQLite handed the id of a deleted attachment to the next upload; a test
in functional/test_resources.py keeps that fixed.
"""
import collections
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest
import requests

from affix.app import open_catalog
from affix.app.testing import basic_auth, upload_form
from affix.storage.database import release_connections
from affix.storage.local import STAGING_DIR
from support.content import KiB, MiB, md5, random_bytes
from support.http import assert_downloads_as, assert_uploaded, request_head, upload
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix, stop
from support.servers import STARTUP_TIMEOUT, WORKERS, await_startup, booted_worker_pids
from support.state import Stored
from support.waiting import wait_for

# real servers, killed and loaded
pytestmark = pytest.mark.system

THREADS = 8
# how long the load runs: the issue asks for 60 s; AFFIX_LOAD_SECONDS changes it for a run (a
# shorter one while iterating on this file)
LOAD_SECONDS = 60
LOAD_DURATION = float(os.environ.get("AFFIX_LOAD_SECONDS") or LOAD_SECONDS)
LOAD_CLIENTS = 16
LOAD_USERS = 2
LOAD_MAX_FILE = 256 * KiB
LOAD_LIMIT = 4 * MiB
# far above SQLite's 10 s busy_timeout: a slow answer is measured, not turned into an error
LOAD_REQUEST_TIMEOUT = 60
# for the crash tests' big uploads
CRASH_LIMIT = 16 * MiB
BIG_UPLOAD = 8 * MiB
# what an unfinished upload sends of its body before it stalls: enough to be surely mid-file
BIG_UPLOAD_SENT = 3 * MiB


def swept_line(count) -> str:
    """What ``affix serve`` prints when it removed ``count`` staging leftovers."""
    plural = "" if count == 1 else "s"
    return (f"affix: removed {count} partial upload{plural} left in staging by an earlier "
            "stop\n")


def process_gone(pid) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def file_md5(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as blob:
        for chunk in iter(lambda: blob.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- one affix installation, started, stopped and killed as a test needs ------------------------

class Affix:
    """``affix serve --workers 2 --threads 8`` on one data dir. Each start has a port and log
    files of its own; the server runs in a session of its own, so that the whole of it (the
    arbiter and its workers) can be SIGKILLed as one process group."""

    def __init__(self, run_dir: Path, max_attachment_size, databases):
        self.run_dir = run_dir
        self.data_dir = run_dir / "data"
        self.max_attachment_size = max_attachment_size
        self.databases = databases
        self.settings = databases.settings(self.data_dir)
        self.blob_root = Path(self.settings.storage_url)
        self.staging = self.blob_root / STAGING_DIR
        self.process = None
        self.port = None
        self.api_key = None
        self.starts = 0

    def environ(self) -> dict:
        # only the settings chosen here: nothing from the caller's environment leaks in
        return environ_without_affix(**self.databases.environ(
            self.data_dir, AFFIX_MAX_ATTACHMENT_SIZE=str(self.max_attachment_size)))

    def cli(self, *arguments) -> str:
        """The output of ``affix <arguments>`` on this data dir; the command must succeed."""
        result = subprocess.run(
            [sys.executable, "-m", "affix.app.cli.commands", *arguments], cwd=REPO_ROOT,
            env=self.environ(),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
        )
        assert result.returncode == 0, (
            f"affix {' '.join(arguments)} exited with {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}")
        return result.stdout

    @property
    def stdout_path(self) -> Path:
        return self.run_dir / f"serve-{self.starts}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.run_dir / f"serve-{self.starts}.stderr"

    def start(self, api_key=None):
        """Start the server and wait until both workers answer. Without a key known (here or
        from an earlier start) this must be the first start, which announces the admin's."""
        assert self.process is None, "the server is already running"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.port = free_port()
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "affix.app.cli.commands", "serve",
                 "--bind", f"{HOST}:{self.port}", "--workers", str(WORKERS),
                 "--threads", str(THREADS)],
                cwd=REPO_ROOT, env=self.environ(), stdin=subprocess.DEVNULL, stdout=stdout,
                stderr=stderr, start_new_session=True,
            )
        self.api_key = await_startup(self.process, self.port, self.stdout_path,
                                     self.stderr_path, api_key or self.api_key)
        return self

    # what support.http's helpers (upload, download, request_head) expect of a server
    @property
    def auth(self) -> dict:
        return {"Authorization": basic_auth(self.api_key)}

    def url(self, path) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def worker_pids(self) -> set:
        """Every worker this start's arbiter has booted, dead or alive."""
        return booted_worker_pids(self.stderr())

    def live_workers(self) -> set:
        return {pid for pid in self.worker_pids() if not process_gone(pid)}

    def kill_server(self):
        """SIGKILL the arbiter and its workers at once, as a power cut or the OOM killer of a
        whole container would; returns when every one of them is gone."""
        workers = self.worker_pids()
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STARTUP_TIMEOUT)
        self.process = None
        wait_for(lambda: all(process_gone(pid) for pid in workers),
                 f"the workers {sorted(workers)} to die with their process group",
                 timeout=STARTUP_TIMEOUT)

    def stop(self):
        """Stop gracefully (SIGKILL if that hangs); no worker of ours outlives it."""
        if self.process is None:
            return
        process, self.process = self.process, None
        workers = self.worker_pids()
        stop(process)
        for pid in workers:
            # only a leftover of this very server: still alive and still in its process group
            with contextlib.suppress(ProcessLookupError):
                if not process_gone(pid) and os.getpgid(pid) == process.pid:
                    os.kill(pid, signal.SIGKILL)

    # --- what is stored ---

    @contextlib.contextmanager
    def opened_catalog(self):
        catalog = open_catalog(self.settings)
        try:
            yield catalog
        finally:
            release_connections(catalog.database)

    def rows(self) -> dict:
        """id: (md5, size, storage key, container type, container id) of every attachment row."""
        with self.opened_catalog() as catalog, catalog.database.connection_context():
            return {
                row.id: (row.md5, row.file_size, row.storage_key, row.container_type,
                         row.container_id)
                for row in catalog.Attachment.select()
            }

    def committed_keys(self) -> set:
        """The storage key of every blob outside staging."""
        return {
            path.relative_to(self.blob_root).as_posix() for path in self.blob_root.rglob("*")
            if path.is_file() and path.relative_to(self.blob_root).parts[0] != STAGING_DIR
        }

    def committed_blobs(self) -> dict:
        """storage key: md5 of every blob outside staging, read from the disk."""
        return {key: file_md5(self.blob_root / key) for key in self.committed_keys()}

    def staged(self) -> list:
        return sorted(self.staging.iterdir())

    def staged_writers(self) -> dict:
        """staging file: pid of the live worker that holds it open for writing, for each staged
        blob that already holds bytes (an upload surely in the middle of its file)."""
        holders = {}
        for pid in self.live_workers():
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        holders[os.readlink(fd)] = pid
        writers = {}
        for path in self.staged():
            with contextlib.suppress(FileNotFoundError):
                pid = holders.get(os.path.realpath(path))
                if pid is not None and path.stat().st_size > 0:
                    writers[path] = pid
        return writers


@pytest.fixture
def affix(tmp_path, databases):
    """A factory of servers on data dirs below tmp_path; every one is stopped at the end."""
    servers = []

    def make(max_attachment_size):
        server = Affix(tmp_path / f"affix-{len(servers)}", max_attachment_size, databases)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# --- checks shared by the crash tests ----------------------------------------------------------

def upload_all(server, contents) -> dict:
    """Upload each of ``contents`` ({file name: bytes}); {id: (file name, bytes)} of them."""
    uploads = {}
    for file_name, content in contents.items():
        attachment_id = assert_uploaded(upload(server, file_name, content), file_name, content)
        uploads[attachment_id] = (file_name, content)
    return uploads


def assert_intact(server, uploads, leftovers=(), unreferenced=()):
    """Exactly the rows and committed blobs of ``uploads`` ({id: (file name, bytes)}), and
    nothing in staging but ``leftovers``, no blob without a row but ``unreferenced``; read from
    the disk, so it holds while the server is down too."""
    assert server.staged() == sorted(leftovers)
    with server.opened_catalog() as catalog:
        stored = Stored(catalog, server.blob_root)
        rows = stored.rows()
        files = {key: content for key, content in stored.files().items()
                 if not key.startswith(STAGING_DIR + "/")}
    assert [row[:4] for row in rows] == [
        (attachment_id, file_name, len(content), md5(content))
        for attachment_id, (file_name, content) in sorted(uploads.items())
    ]
    # no row without its blob, no blob without its row, every blob exactly the bytes sent
    storage_keys = {row[0]: row[4] for row in rows}
    assert files.keys() == set(storage_keys.values()) | set(unreferenced)
    for attachment_id, (_, content) in uploads.items():
        assert files[storage_keys[attachment_id]] == content, f"attachment {attachment_id}"


def assert_served(server, uploads):
    for attachment_id, (_, content) in uploads.items():
        assert_downloads_as(server, attachment_id, content)


class UnfinishedUpload:
    """A raw-socket upload whose client sends the head and the first ``sent`` bytes of the
    body (all of it for None), then waits: the server is left in the middle of the file, or
    (with the whole body) with an upload it has not answered yet."""

    def __init__(self, server, file_name, size, seed, sent=BIG_UPLOAD_SENT):
        self.content = random_bytes(size, seed)
        body, content_type = upload_form(file_name, self.content)
        sent = len(body) if sent is None else sent
        assert sent <= len(body)
        self.sock = socket.create_connection((HOST, server.port), timeout=REQUEST_TIMEOUT)
        self.sock.sendall(request_head(server, content_type, len(body)) + body[:sent])

    def assert_dropped(self):
        """The server closed the connection without an answer."""
        try:
            received = self.sock.recv(64 * KiB)
        except ConnectionResetError:
            return
        except socket.timeout:
            pytest.fail(f"the connection was neither answered nor closed in {REQUEST_TIMEOUT} s")
        assert received == b"", f"the server answered a killed upload: {received[:300]!r}"

    def close(self):
        self.sock.close()


@pytest.fixture
def unfinished_uploads():
    """Starts unfinished uploads; their sockets are closed at the end."""
    started = []

    def start(*args, **kwargs):
        started.append(UnfinishedUpload(*args, **kwargs))
        return started[-1]

    yield start
    for unfinished in started:
        unfinished.close()


def await_staged_writers(server, count) -> dict:
    """{staging file: worker pid} once ``count`` uploads are writing their files."""
    wait_for(lambda: len(server.staged_writers()) == count,
             f"{count} upload(s) to be writing into staging", timeout=REQUEST_TIMEOUT)
    return server.staged_writers()


def some_files(seed) -> dict:
    """A few files of assorted sizes, the empty one included."""
    sizes = [0, 1, 100 * KiB + 7, MiB, 3 * MiB + 5]
    return {f"file-{seed}-{size}.bin": random_bytes(size, seed * 100 + number)
            for number, size in enumerate(sizes)}


# --- crashes -----------------------------------------------------------------------------------

def test_a_worker_killed_mid_upload_loses_only_that_upload(affix, unfinished_uploads):
    server = affix(CRASH_LIMIT).start()
    uploads = upload_all(server, some_files(seed=1))
    unfinished = unfinished_uploads(server, "killed.bin", BIG_UPLOAD, seed=2)
    [(leftover, victim)] = await_staged_writers(server, 1).items()
    workers_before = server.worker_pids()

    os.kill(victim, signal.SIGKILL)

    unfinished.assert_dropped()
    wait_for(lambda: process_gone(victim), f"the killed worker {victim} to be gone")
    wait_for(lambda: len(server.worker_pids() - workers_before) == 1,
             "gunicorn to boot a replacement worker", timeout=STARTUP_TIMEOUT)
    assert len(server.live_workers()) == WORKERS
    # the cut-off upload: no row, no committed blob; its staged file waits for the next start
    assert_intact(server, uploads, leftovers=[leftover])
    assert_served(server, uploads)
    log = server.stderr()
    assert f"Worker (pid:{victim}) was sent SIGKILL!" in log, log
    assert "Traceback" not in log, log

    after = upload_all(server, {"after-the-kill.bin": random_bytes(2 * MiB + 3, seed=3)})
    uploads.update(after)
    assert_intact(server, uploads, leftovers=[leftover])
    assert_served(server, after)

    server.stop()
    server.start()
    assert server.stdout() == swept_line(1)
    assert_intact(server, uploads)
    assert_served(server, uploads)


def test_the_whole_server_killed_between_uploads_keeps_every_acknowledged_one(affix):
    server = affix(CRASH_LIMIT).start()
    uploads = upload_all(server, some_files(seed=10))
    deleted_id = next(iter(uploads))
    response = requests.delete(server.url(f"/api/v3/attachments/{deleted_id}"),
                               headers=server.auth, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 204
    del uploads[deleted_id]

    server.kill_server()

    assert_intact(server, uploads)
    server.start()
    # nothing was left to sweep, and the admin exists already: the start says nothing
    assert server.stdout() == ""
    assert server.staged() == []
    assert_served(server, uploads)
    gone = requests.get(server.url(f"/api/v3/attachments/{deleted_id}"),
                        headers=server.auth, timeout=REQUEST_TIMEOUT)
    assert gone.status_code == 404
    uploads.update(upload_all(server, some_files(seed=11)))
    assert_intact(server, uploads)


def test_the_whole_server_killed_right_after_concurrent_uploads_keeps_every_acknowledged_one(
        affix):
    """Uploads that come at once share their commit on SQLite (affix.storage.group_commit): an
    answer 200 must still mean that the commit holding its row was made."""
    server = affix(CRASH_LIMIT).start()
    contents = {f"together-{number}.bin": random_bytes(4 * KiB, seed=20 + number)
                for number in range(THREADS * WORKERS * 2)}
    uploads = {}

    def upload_one(file_name):
        content = contents[file_name]
        attachment_id = assert_uploaded(upload(server, file_name, content), file_name, content)
        uploads[attachment_id] = (file_name, content)

    with concurrent.futures.ThreadPoolExecutor(THREADS * WORKERS) as clients:
        list(clients.map(upload_one, contents))
    server.kill_server()

    assert len(uploads) == len(contents)
    assert_intact(server, uploads)
    server.start()
    assert_served(server, uploads)


def test_the_whole_server_killed_mid_upload_is_swept_at_the_next_start(
        affix, unfinished_uploads):
    server = affix(CRASH_LIMIT).start()
    uploads = upload_all(server, some_files(seed=20))
    cut_off = [unfinished_uploads(server, f"cut-off-{number}.bin", BIG_UPLOAD, seed=21 + number)
               for number in range(2)]
    leftovers = list(await_staged_writers(server, len(cut_off)))

    server.kill_server()

    for unfinished in cut_off:
        unfinished.assert_dropped()
    # on the disk while nothing runs: the acknowledged uploads whole, the cut-off ones staged
    assert_intact(server, uploads, leftovers=leftovers)

    server.start()
    # the sweep ran before any worker started: staging is empty although the server is up
    assert server.stdout() == swept_line(len(leftovers))
    assert_intact(server, uploads)
    assert_served(server, uploads)
    uploads.update(upload_all(server, some_files(seed=23)))
    assert_intact(server, uploads)


@contextlib.contextmanager
def database_write_lock(server):
    """A lock that uploads reaching their commit wait for, held as another process's long
    write transaction would hold it: SQLite's write lock (they wait up to the 10 s
    busy_timeout), or on PostgreSQL a lock on the attachments table that blocks its writers."""
    url = server.settings.database_url
    if url.startswith("sqlite:"):
        database = sqlite3.connect(server.data_dir / "affix.sqlite3", timeout=REQUEST_TIMEOUT,
                                   isolation_level=None)
        lock = "BEGIN IMMEDIATE"
    else:
        # psycopg2 opens a transaction before the first statement
        database = psycopg2.connect(url)
        lock = "LOCK TABLE attachments IN EXCLUSIVE MODE"
    try:
        database.cursor().execute(lock)
        yield
    finally:
        # rolls the empty transaction back and lets go of the lock
        database.close()


def kill_while_a_committed_blob_waits_for_its_row(server, unfinished_uploads):
    """SIGKILL the whole server while an upload, its blob already committed (renamed out of
    staging), waits for the database to write its row; returns that upload."""
    before = server.committed_keys()
    with database_write_lock(server):
        waiting = unfinished_uploads(server, "waiting.bin", MiB + 11, seed=31, sent=None)
        wait_for(lambda: len(server.committed_keys() - before) == 1 and not server.staged(),
                 "the upload's blob to be committed", timeout=REQUEST_TIMEOUT)
        server.kill_server()
    waiting.assert_dropped()
    return waiting


def test_the_whole_server_killed_before_an_upload_has_its_row_keeps_no_row_for_it(
        affix, unfinished_uploads):
    server = affix(CRASH_LIMIT).start()
    uploads = upload_all(server, some_files(seed=30))
    before = server.committed_keys()

    waiting = kill_while_a_committed_blob_waits_for_its_row(server, unfinished_uploads)

    # the unanswered upload has no row: at most a blob nobody references, of its exact bytes
    unreferenced = server.committed_keys() - before
    assert [file_md5(server.blob_root / key) for key in unreferenced] in (
        [], [md5(waiting.content)])
    assert_intact(server, uploads, unreferenced=unreferenced)
    server.start()
    assert server.stdout() == ""
    assert_served(server, uploads)
    after = upload_all(server, some_files(seed=32))
    assert_served(server, after)


def test_a_blob_left_without_its_row_by_a_crash_is_removed_by_affix_gc(
        affix, unfinished_uploads):
    server = affix(CRASH_LIMIT).start()
    uploads = upload_all(server, some_files(seed=33))
    before = server.committed_keys()
    kill_while_a_committed_blob_waits_for_its_row(server, unfinished_uploads)
    [orphan] = server.committed_keys() - before

    # the default minimum age spares it: it could be an upload about to write its row
    assert server.cli("gc") == (
        "removed 0 blobs without an attachment, older than 1440 minutes\n")
    # with the server down, nothing is in flight
    assert server.cli("gc", "--min-age", "0") == (
        f"removed {orphan}\nremoved 1 blob without an attachment, older than 0 minutes\n")
    assert_intact(server, uploads)

    server.start()
    assert_intact(server, uploads)
    assert_served(server, uploads)


# --- load ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Sent:
    """What a client knows of one of its acknowledged uploads."""
    md5: str
    size: int
    # the work package it was claimed for
    container: int | None = None


class LoadClient:
    """One client of the load: its own session, its own attachments, a record of every answer.

    Nothing is retried: every status is counted, and any answer but the expected one is a
    problem reported with its body."""

    def __init__(self, number, base_url, api_key, project_id):
        self.number = number
        self.base_url = base_url
        self.project_id = project_id
        self.rng = random.Random(number)
        self.session = requests.Session()
        self.session.headers["Authorization"] = basic_auth(api_key)
        # acknowledged and not deleted, by id
        self.alive = {}
        self.deleted = set()
        # every id an upload was acknowledged with: SQLite gives the id of a deleted
        # attachment to the next one when it was the highest
        self.acknowledged = []
        # deleted ids that answered 200 right after their DELETE
        self.reappeared = set()
        self.statuses = collections.Counter()
        self.latencies = collections.defaultdict(list)
        self.problems = []

    def run(self, deadline):
        try:
            while time.monotonic() < deadline:
                self.step()
        except Exception as error:  # a wrong answer's body, a bug here: reported, never lost
            self.problems.append(f"client {self.number} stopped: {error!r}")
        finally:
            self.session.close()

    def step(self):
        roll = self.rng.random()
        unclaimed = [i for i, sent in self.alive.items() if sent.container is None]
        if not self.alive or roll < 0.4:
            self.upload()
        elif roll < 0.7:
            self.download()
        elif roll < 0.85 and unclaimed:
            self.claim(unclaimed)
        else:
            self.delete()

    def request(self, operation, method, path, expected, **kwargs):
        """The response if it has an ``expected`` status (one or a tuple); None (and a
        problem) otherwise."""
        started = time.monotonic()
        try:
            response = self.session.request(method, self.base_url + path,
                                            timeout=LOAD_REQUEST_TIMEOUT, **kwargs)
        except requests.RequestException as error:
            self.statuses[operation, type(error).__name__] += 1
            self.problems.append(f"{operation} {method} {path}: {error!r}")
            return None
        self.latencies[operation].append(time.monotonic() - started)
        self.statuses[operation, response.status_code] += 1
        if response.status_code not in (expected if isinstance(expected, tuple) else (expected,)):
            self.problems.append(f"{operation} {method} {path}: {response.status_code} "
                                 f"{response.headers.get('Retry-After', '')} {response.text[:300]}")
            return None
        return response

    def upload(self):
        content = self.rng.randbytes(self.rng.randint(0, LOAD_MAX_FILE))
        body, content_type = upload_form(f"load-{self.number}.bin", content)
        response = self.request("upload", "POST", "/api/v3/attachments", 200, data=body,
                                headers={"Content-Type": content_type})
        if response is None:
            return
        document = response.json()
        digest = md5(content)
        if (document["fileSize"], document["digest"]["hash"]) != (len(content), digest):
            self.problems.append(f"upload answered {document} for {len(content)} bytes {digest}")
        self.alive[document["id"]] = Sent(digest, len(content))
        self.acknowledged.append(document["id"])

    def download(self):
        attachment_id = self.rng.choice(list(self.alive))
        sent = self.alive[attachment_id]
        response = self.request("download", "GET", f"/api/v3/attachments/{attachment_id}/download",
                                200)
        if response is not None and (len(response.content), md5(response.content)) != (
                sent.size, sent.md5):
            self.problems.append(
                f"download of {attachment_id}: {len(response.content)} bytes "
                f"{md5(response.content)}, sent {sent.size} bytes {sent.md5}")

    def claim(self, unclaimed):
        claims = self.rng.sample(unclaimed, self.rng.randint(1, min(3, len(unclaimed))))
        path = self.rng.choice(
            ["/api/v3/work_packages", f"/api/v3/projects/{self.project_id}/work_packages"])
        document = {"subject": f"load {self.number}", "_links": {
            "project": {"href": f"/api/v3/projects/{self.project_id}"},
            "attachments": [{"href": f"/api/v3/attachments/{i}"} for i in claims],
        }}
        response = self.request("claim", "POST", path, 201, json=document)
        if response is None:
            return
        work_package = response.json()
        elements = work_package["_embedded"]["attachments"]["_embedded"]["elements"]
        if sorted(element["id"] for element in elements) != sorted(claims):
            self.problems.append(f"claimed {claims}, the work package has {elements}")
        for attachment_id in claims:
            self.alive[attachment_id].container = work_package["id"]

    def delete(self):
        attachment_id = self.rng.choice(list(self.alive))
        if self.request("delete", "DELETE", f"/api/v3/attachments/{attachment_id}", 204) is None:
            return
        del self.alive[attachment_id]
        self.deleted.add(attachment_id)
        # 404, unless another upload of the same user has been given the id meanwhile: checked
        # at the end against every acknowledged upload
        gone = self.request("get deleted", "GET", f"/api/v3/attachments/{attachment_id}",
                            (404, 200))
        if gone is not None and gone.status_code == 200:
            self.reappeared.add(attachment_id)


def set_up_load_users(server) -> tuple:
    """(project id, API keys) of LOAD_USERS users who may create work packages and upload in
    one project; made with the CLI before the first start (the database made by affix migrate,
    as an operator would), so no admin is announced."""
    server.cli("migrate")
    output = server.cli("project", "add", "load")
    assert output.startswith("created project 'load' (id "), output
    project_id = int(output.rpartition("(id ")[2].rstrip(")\n"))
    server.cli("role", "add", "loader", "view_work_packages", "add_work_packages",
               "edit_work_packages")
    keys = []
    for number in range(LOAD_USERS):
        login = f"loader{number}"
        server.cli("user", "add", login)
        server.cli("member", "add", login, "load", "loader")
        [key] = server.cli("apikey", "create", login).split()
        keys.append(key)
    return project_id, keys


def percentile(values, fraction) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def load_summary(clients, seconds) -> str:
    statuses = collections.Counter()
    latencies = collections.defaultdict(list)
    for client in clients:
        statuses.update(client.statuses)
        for operation, values in client.latencies.items():
            latencies[operation].extend(values)
    lines = [f"{sum(statuses.values())} requests in {seconds:.1f} s by {len(clients)} clients"]
    for (operation, status), count in sorted(statuses.items(), key=str):
        lines.append(f"  {operation} -> {status}: {count}")
    for operation, values in sorted(latencies.items()):
        lines.append(f"  {operation} latency p50 {percentile(values, 0.5) * 1000:.0f} ms, "
                     f"p99 {percentile(values, 0.99) * 1000:.0f} ms, "
                     f"max {max(values) * 1000:.0f} ms")
    return "\n".join(lines)


def run_load(clients) -> float:
    """Run every client until LOAD_DURATION has passed; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + LOAD_DURATION
    threads = [threading.Thread(target=client.run, args=(deadline,), daemon=True,
                                name=f"load-client-{client.number}") for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        # each request is bounded by its timeout: a client ends at most that long after the end
        thread.join(timeout=max(0, deadline + LOAD_REQUEST_TIMEOUT + 30 - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"clients still running long after the end: {stuck}"
    return time.monotonic() - started


def answer_findings(clients) -> list:
    """What went wrong in the answers: any 5xx or failed request, any unexpected answer."""
    findings = []
    server_errors = sorted(
        (f"{operation} -> {status}", count)
        for client in clients for (operation, status), count in client.statuses.items()
        if not isinstance(status, int) or status >= 500)
    if server_errors:
        findings.append(f"5xx answers or failed requests: {server_errors}")
    problems = [problem for client in clients for problem in client.problems]
    if problems:
        findings.append(f"{len(problems)} unexpected answers, the first ones:\n  "
                        + "\n  ".join(problems[:20]))
    # an id reused after a deletion answers 200 again; one that was never given again must not
    reappeared = set().union(*(client.reappeared for client in clients)) - set(reused_ids(clients))
    if reappeared:
        findings.append(f"deleted (204) but still there: {sorted(reappeared)}")
    return findings


def reused_ids(clients) -> list:
    """Ids that more than one acknowledged upload was given."""
    acknowledged = collections.Counter(
        attachment_id for client in clients for attachment_id in client.acknowledged)
    return sorted(attachment_id for attachment_id, count in acknowledged.items() if count > 1)


def storage_findings(server, clients) -> list:
    """What is stored but should not be, or should be but is not: every acknowledged upload
    not deleted has its row (md5 and size as sent, claimed where it was claimed) and a blob of
    exactly that md5; nothing else has a row or a blob; nothing is left in staging."""
    findings = []
    alive = {}
    for client in clients:
        for attachment_id, sent in client.alive.items():
            assert attachment_id not in alive, f"attachment {attachment_id} held by two clients"
            alive[attachment_id] = sent
    rows = server.rows()
    blobs = server.committed_blobs()
    deleted = set().union(*(client.deleted for client in clients)) - alive.keys()
    if deleted & rows.keys():
        findings.append(f"deleted (204) but still have rows: {sorted(deleted & rows.keys())}")
    if rows.keys() != alive.keys():
        findings.append(
            "rows differ from the acknowledged, undeleted uploads: "
            f"missing {sorted(alive.keys() - rows.keys())}, "
            f"unexpected {sorted(rows.keys() - alive.keys())}")
    for attachment_id in sorted(alive.keys() & rows.keys()):
        sent = alive[attachment_id]
        row_md5, size, storage_key, container_type, container_id = rows[attachment_id]
        if (row_md5, size) != (sent.md5, sent.size):
            findings.append(f"row {attachment_id} says {size} bytes {row_md5}, "
                            f"the client sent {sent.size} bytes {sent.md5}")
        if blobs.get(storage_key) != row_md5:
            findings.append(f"the blob of {attachment_id} ({storage_key}) has md5 "
                            f"{blobs.get(storage_key)}, its row {row_md5}")
        claimed = ("WorkPackage", sent.container) if sent.container else (None, None)
        if (container_type, container_id) != claimed:
            findings.append(f"attachment {attachment_id} is in {(container_type, container_id)}, "
                            f"claimed for {claimed}")
    orphans = blobs.keys() - {row[2] for row in rows.values()}
    if orphans:
        findings.append(f"{len(orphans)} blobs without a row: {sorted(orphans)[:10]}")
    if server.staged():
        findings.append(f"left in staging: {server.staged()}")
    return findings


def server_findings(server) -> list:
    findings = []
    died = server.worker_pids() - server.live_workers()
    if died or len(server.live_workers()) != WORKERS:
        findings.append(f"workers died during the load: {sorted(died)}")
    log = server.stderr()
    if "Traceback" in log or "[ERROR]" in log or "[CRITICAL]" in log:
        findings.append(f"the server logged errors:\n{log[-5000:]}")
    return findings


@pytest.mark.long
def test_sixteen_clients_for_a_minute_get_no_5xx_and_lose_nothing(affix):
    server = affix(LOAD_LIMIT)
    project_id, keys = set_up_load_users(server)
    server.start(api_key=keys[0])
    clients = [LoadClient(number, server.url(""), keys[number % len(keys)], project_id)
               for number in range(LOAD_CLIENTS)]

    seconds = run_load(clients)

    summary = (load_summary(clients, seconds)
               + f"\n  ids given to a new upload after their deletion: {reused_ids(clients)}")
    print(summary)
    findings = (answer_findings(clients) + storage_findings(server, clients)
                + server_findings(server))
    assert not findings, "\n".join(findings) + "\n" + summary
    # the load did some of everything
    operations = {operation for client in clients for operation, _ in client.statuses}
    assert operations == {"upload", "download", "claim", "delete", "get deleted"}, summary

