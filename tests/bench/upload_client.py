"""Measure ``affix upload``, the client, against affix under gunicorn on loopback: its rate and
its peak memory by tus (4 MiB chunks, the default) with 1, 2 and 4 partial uploads at once
(``--parallel``, tus's concatenation) and by the plain multipart upload, and what a tus upload
interrupted in the middle sends again when the same command is run once more.

    python -m tests.bench.upload_client                 # a 512 MiB file, 3 runs of each
    python -m tests.bench.upload_client --size-mib 64 --runs 1 --workers 2

The client runs as a user runs it, ``affix upload FILE --url URL``, in a process of its own
whose peak RSS is its kernel's account (wait4). The interrupted upload goes through a gate
(tests/support/relays.py) that holds the client's bytes once half the file went through; the
client gets SIGINT there, and the bytes of the second run are counted by the same gate.
"""
import argparse
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.direct_upload import written_file
from tests.bench.run import MB, MiB, affix_server, clean_environ, say
from tests.support.processes import REPO_ROOT
from tests.support.relays import Gate

HOLD_TIMEOUT = 120


def client_environ(server, home) -> dict:
    key = base64.b64decode(server.headers["Authorization"].split()[1]).decode().split(":")[1]
    return clean_environ(AFFIX_API_KEY=key, HOME=str(home), XDG_STATE_HOME=str(home / "state"),
                         XDG_CONFIG_HOME=str(home / "config"))


# the --parallel counts measured by tus
PARALLEL_COUNTS = (1, 2, 4)


def upload_command(path, url, parallel=1):
    return [sys.executable, "-m", "affix.app.cli.commands", "upload", str(path), "--url", url,
            "--parallel", str(parallel)]


def timed_upload(path, url, environ, parallel) -> tuple:
    """(seconds, the client's peak RSS in MiB) of one ``affix upload``: ``--again``, since
    every run but the first would only report the first's attachment."""
    started = time.monotonic()
    process = subprocess.Popen(upload_command(path, url, parallel) + ["--again"], cwd=REPO_ROOT,
                               env=environ,
                               stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"affix upload exited with {process.returncode}")
    return seconds, usage.ru_maxrss / 1024


def rate_and_memory(way, path, size, server, environ, runs, parallel=1):
    figures = [timed_upload(path, f"http://127.0.0.1:{server.port}", environ, parallel)
               for _ in range(runs)]
    seconds = statistics.median(each[0] for each in figures)
    rss = statistics.median(each[1] for each in figures)
    say(f"{way}: {size / seconds / MB:.0f} MB/s (median of {runs}, {seconds:.2f} s), "
        f"client peak RSS {rss:.0f} MiB")


def interrupted_and_resumed(path, size, server, environ):
    gate = Gate(server.port, hold_after=size // 2)
    try:
        command = upload_command(path, gate.url)
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environ,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not gate.holding.wait(HOLD_TIMEOUT):
            raise SystemExit("the client never reached the middle of the file")
        first = gate.forwarded
        process.send_signal(signal.SIGINT)
        if process.wait() != 130:
            raise SystemExit(f"the interrupted client exited with {process.returncode}")
        gate.release()
        subprocess.run(command, cwd=REPO_ROOT, env=environ, stdout=subprocess.DEVNULL,
                       check=True)
        again = gate.forwarded
    finally:
        gate.close()
    # the first run's bytes all reached the server: what the second sends beyond the rest of
    # the file is what resuming costs (requests' headers, bytes the server did not keep)
    say(f"tus interrupted after {first} bytes of {size} went out, resumed: sent again {again} "
        f"bytes, {again / size:.1%} of the file; beyond the rest of the file: "
        f"{again - (size - first)} bytes")


def run(args):
    size = args.size_mib * MiB
    root = Path(tempfile.mkdtemp(prefix="affix-bench-client-", dir=args.tmpdir))
    try:
        path = root / "file.bin"
        written_file(path, size)
        say(f"file: {size} bytes ({args.size_mib} MiB); affix: {args.workers} workers, "
            f"4 threads each")
        for way, tus_limit in (("tus", size), ("multipart", 0)):
            with affix_server(root / way, args.workers, 4, size, extra_environ={
                    "AFFIX_TUS_MAX_SIZE": str(tus_limit)}) as server:
                environ = client_environ(server, root / f"home-{way}")
                for parallel in PARALLEL_COUNTS if way == "tus" else (1,):
                    rate_and_memory(f"{way} --parallel {parallel}" if way == "tus" else way,
                                    path, size, server, environ, args.runs, parallel)
                if way == "tus":
                    interrupted_and_resumed(path, size, server, environ)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.upload_client",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="affix's gunicorn workers")
    parser.add_argument("--tmpdir", help="where the file and the server's data go")
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
