"""A throwaway clamd (Debian's clamav-daemon) with a signature database of its own.

No signature download is possible here: the database is one ``.hdb`` line, the md5 and size
of the EICAR test file and a name, and clamd answers ``stream: <name>.UNOFFICIAL FOUND`` for
exactly those bytes and ``stream: OK`` for anything else. The EICAR string is put together
from two parts, so that the repository never holds it whole (a scanner on a developer's
machine would take the checkout for infected).
"""
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from .net import HOST, free_port
from .processes import stop
from .waiting import wait_for

SIGNATURE = "Affix.Test.Eicar"
# clamd's name for a signature of a database it does not know as official
FINDING = f"{SIGNATURE}.UNOFFICIAL"
# loading one signature takes clamd a second or two; a loaded machine takes longer
STARTUP_TIMEOUT = 60
# large enough for the largest upload a test or the bench streams to it, and scanned whole
# (clamd answers OK for what lies beyond its MaxFileSize and MaxScanSize, unscanned)
SIZE_LIMIT = "1000M"


def eicar() -> bytes:
    """The 68 bytes of the EICAR anti-virus test file."""
    return (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
            + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


def clamd_binary() -> str:
    binary = shutil.which("clamd") or "/usr/sbin/clamd"
    if not os.path.exists(binary):
        pytest.skip("clamd is not installed (apt-get install clamav-daemon; .ci/run does)")
    return binary


class Clamd:
    """A running clamd: ``socket_path`` (its unix socket), ``tcp_address`` (host:port)."""

    def __init__(self, process, socket_path, tcp_address):
        self.process = process
        self.socket_path = socket_path
        self.tcp_address = tcp_address

    @contextlib.contextmanager
    def stopped(self):
        """clamd frozen with SIGSTOP: connections are accepted by the kernel, and never
        answered, until SIGCONT."""
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)


def configuration(folder: Path, tcp_port: int, limits: dict) -> str:
    limits = {"StreamMaxLength": SIZE_LIMIT, "MaxFileSize": SIZE_LIMIT,
              "MaxScanSize": SIZE_LIMIT, **limits}
    return ("".join(f"{name} {value}\n" for name, value in limits.items())
            + f"DatabaseDirectory {folder / 'db'}\n"
            f"LocalSocket {folder / 'clamd.sock'}\n"
            f"TCPSocket {tcp_port}\n"
            f"TCPAddr {HOST}\n"
            f"TemporaryDirectory {folder / 'tmp'}\n"
            f"LogFile {folder / 'clamd.log'}\n"
            "Foreground yes\n")


@contextlib.contextmanager
def running_clamd(**limits):
    """A clamd of its own, with clamd.conf's ``limits`` (``StreamMaxLength="32K"``) changed;
    stopped, and its folder removed, at the end."""
    binary = clamd_binary()
    # a unix socket's path must stay short (108 bytes): not below pytest's tmp_path
    folder = Path(tempfile.mkdtemp(prefix="affix-clamd-"))
    try:
        (folder / "db").mkdir()
        (folder / "tmp").mkdir()
        content = eicar()
        (folder / "db" / "affix-test.hdb").write_text(
            f"{hashlib.md5(content).hexdigest()}:{len(content)}:{SIGNATURE}\n")
        port = free_port()
        config = folder / "clamd.conf"
        config.write_text(configuration(folder, port, limits))
        process = subprocess.Popen([binary, "-c", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL,
                                   stderr=open(folder / "stderr.log", "wb"),
                                   start_new_session=True)
        try:
            def answering():
                assert process.poll() is None, (folder / "stderr.log").read_text()
                with contextlib.suppress(OSError):
                    socket.create_connection((HOST, port), timeout=1).close()
                    return (folder / "clamd.sock").exists()
                return False
            wait_for(answering, "clamd to listen", timeout=STARTUP_TIMEOUT)
            yield Clamd(process, str(folder / "clamd.sock"), f"{HOST}:{port}")
        finally:
            # SIGCONT first: a frozen clamd would never see the SIGTERM
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)
            stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def unreachable_clamd(folder: Path) -> str:
    """A unix socket's path where no clamd listens."""
    return str(folder / "no-clamd.sock")


@pytest.fixture(scope="session")
def clamd():
    """One clamd for the tests of a test process that only scan with it."""
    with running_clamd() as running:
        yield running


@pytest.fixture
def own_clamd():
    """A clamd for one test, which may stop it."""
    with running_clamd() as running:
        yield running
