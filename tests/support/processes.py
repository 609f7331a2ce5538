"""Processes the tests start: the checkout they run in, an environment free of the caller's
affix settings, stopping a server's whole process group, and what a process holds open."""
import contextlib
import os
import signal
import subprocess
from pathlib import Path

# commands and servers run the code that sits next to these tests, whatever else is installed
REPO_ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN_TIMEOUT = 15
# what one command (affix migrate, affix cleanup, pip) may take
COMMAND_TIMEOUT = 60


def environ_without_affix(**variables) -> dict:
    """This process's environment without any AFFIX_* variable, plus ``variables``: only the
    settings a test chooses reach what it starts."""
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith("AFFIX_")}
    environ.update(variables)
    return environ


def stop(process):
    """SIGTERM for a graceful stop; SIGKILL for the whole process group if that hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        # servers are started in a session of their own: the group is the arbiter and workers
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def open_files_below(pid, directory) -> list:
    """The files below ``directory`` that process ``pid`` has open (Linux)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    targets = []
    for fd in fd_dir.iterdir():
        with contextlib.suppress(FileNotFoundError):
            targets.append(Path(os.readlink(fd)))
    return [target for target in targets if target.is_relative_to(directory)]
