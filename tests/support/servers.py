"""A real ``affix serve`` (gunicorn, two workers) on loopback, for what only a real server
shows; every test that starts one is marked ``system``.

The fixtures ``start_server`` and ``server`` are registered by ``tests/conftest.py``: any test
may ask for them. The pieces (``await_startup``, ``stop_expecting_it_running``) also serve the
tests that start servers their own way (several nodes, crashes, a plugin's environment).
"""
import contextlib
import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from affix.app import open_catalog
from affix.app.testing import basic_auth

from .content import MiB
from .net import HOST, free_port
from .processes import REPO_ROOT, environ_without_affix, stop
from .state import Stored
from .waiting import POLL_INTERVAL

WORKERS = 2
# starts of a server whose port another process took meanwhile, before the test fails
PORT_ATTEMPTS = 3
# what serve says of an address it cannot listen on (app/cli/listening.py)
BIND_REFUSED = "affix: error: bind: cannot listen on "
STARTUP_TIMEOUT = 30
# for the tests that are not about the limit: far above every file they send
HIGH_LIMIT = 64 * MiB
# what the first start prints, before the admin's key
ADMIN_KEY_ANNOUNCEMENT = (
    "affix: created the admin user 'admin'. Its API key is shown only this once:"
)
WORKER_BOOTED = re.compile(r"Booting worker with pid: (\d+)")


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


def _refused_its_port(process, stderr_path) -> bool:
    """Whether serve, which did not start, stopped because its address was taken (it looks
    before it makes anything) rather than for another reason."""
    return (process.poll() == 2
            and BIND_REFUSED in stderr_path.read_text(errors="replace"))


@contextlib.contextmanager
def running_server(run_dir: Path, databases, max_attachment_size, extra_environ=None,
                   api_key=None):
    """A server with its data in ``run_dir`` and its database from ``databases`` (conftest's);
    ``extra_environ`` adds settings (AFFIX_*). ``api_key``: a key of the data's admin, for a
    data folder that has one already (no first start announces it)."""
    data_dir = run_dir / "data"
    stdout_path, stderr_path = run_dir / "server.stdout", run_dir / "server.stderr"
    # only the settings chosen here: nothing from the caller's environment leaks in
    environ = environ_without_affix(**databases.environ(
        data_dir, AFFIX_MAX_ATTACHMENT_SIZE=str(max_attachment_size), **(extra_environ or {})))
    for attempt in range(1, PORT_ATTEMPTS + 1):
        # free when asked, but another process may take it (as a connection's own port) before
        # the server binds it: serve then refuses it before it makes anything, and another does
        port = free_port()
        with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "affix.app.cli.commands", "serve",
                 "--bind", f"{HOST}:{port}", "--workers", str(WORKERS), "--threads", "4"],
                cwd=REPO_ROOT, env=environ, stdin=subprocess.DEVNULL, stdout=stdout,
                stderr=stderr, start_new_session=True,
            )
        try:
            started_key = await_startup(process, port, stdout_path, stderr_path, api_key)
            break
        except pytest.fail.Exception:
            if attempt < PORT_ATTEMPTS and _refused_its_port(process, stderr_path):
                continue
            stop(process)
            raise
    api_key = started_key
    try:
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
