"""Benchmark affix against a plain WSGI baseline, both under gunicorn gthread on loopback.

    python -m tests.bench.run            # the full run (several minutes)
    python -m tests.bench.run --quick    # a smoke run with small sizes and short durations

Scenarios, each run on affix and on the baseline (tests/bench/baseline.py) in alternation:

1. one large upload (default 256 MiB; the same multipart body for both) -> MB/s, median of runs
2. worker peak RSS minus idle RSS for one 64 MiB and one 1 GiB upload -> MiB
3. 4 KiB uploads from 16 concurrent clients for a fixed duration -> uploads/s, p50, p99; run on
   the stack's floor too (tests/bench/floor.py), which tells what the libraries affix is built
   on cost from what affix adds
4. one large download (affix /download vs sendfile in the baseline) -> MB/s, median of runs

MB is 10**6 bytes. Everything runs in temporary folders that are removed at the end, as are the
servers, however the run ends (error, Ctrl-C, SIGTERM, or the --time-limit alarm).
"""
import argparse
import contextlib
import dataclasses
import hashlib
import http.client
import json
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from pathlib import Path

from tests.support.net import HOST, free_port
from tests.support.processes import REPO_ROOT, stop
from tests.support.servers import ADMIN_KEY_ANNOUNCEMENT, WORKER_BOOTED

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
MB = 10 ** 6
CHUNK_SIZE = MiB
# the payload's bytes: a pool drawn from os.urandom once and streamed cyclically, so that the
# client spends no CPU making random bytes while a transfer is being timed
POOL_SIZE = 16 * MiB
STARTUP_TIMEOUT = 60
REQUEST_TIMEOUT = 600
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {"upload": 1.0, "rss_mib": 32, "small": 0.75, "download": 0.9}


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


class TimeLimitReached(BaseException):
    """Raised by the --time-limit alarm; a BaseException so that nothing swallows it."""


# --- payloads ----------------------------------------------------------------------------------

class Payload:
    """A file of ``size`` bytes cut from the random pool, and the multipart body around it."""

    def __init__(self, pool, size, file_name="bench.bin"):
        self.pool = memoryview(pool)
        self.size = size
        boundary = "bench-" + secrets.token_hex(16)
        metadata = json.dumps({"fileName": file_name}).encode()
        self.preamble = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="metadata"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode() + metadata + (
            f"\r\n--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.epilogue = f"\r\n--{boundary}--\r\n".encode()
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.body_length = len(self.preamble) + size + len(self.epilogue)
        self._md5 = None

    def file_chunks(self):
        position = 0
        remaining = self.size
        while remaining:
            length = min(CHUNK_SIZE, remaining, len(self.pool) - position)
            yield self.pool[position:position + length]
            remaining -= length
            position = (position + length) % len(self.pool)

    def body_chunks(self):
        yield self.preamble
        yield from self.file_chunks()
        yield self.epilogue

    def body_bytes(self) -> bytes:
        return b"".join(self.body_chunks())

    @property
    def md5(self) -> str:
        if self._md5 is None:
            digest = hashlib.md5()
            for chunk in self.file_chunks():
                digest.update(chunk)
            self._md5 = digest.hexdigest()
        return self._md5

    def write_file(self, path):
        with open(path, "wb") as target:
            for chunk in self.file_chunks():
                target.write(chunk)
            target.flush()
            os.fsync(target.fileno())


# --- servers -----------------------------------------------------------------------------------

def clean_environ(**extra) -> dict:
    # only the settings chosen here reach the servers
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith(("AFFIX_", "BENCH_", "GUNICORN_"))}
    environ.update(extra)
    return environ


@dataclasses.dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    workers: int
    stdout_path: Path
    stderr_path: Path
    ready_path: str
    upload_path: str
    headers: dict = dataclasses.field(default_factory=dict)
    files_dir: Path | None = None
    # the line of the server's log that names a worker's pid (gunicorn's by default)
    worker_announcement: re.Pattern = WORKER_BOOTED
    # what a server other than affix answers as "size": the whole body's (the baseline, which
    # does not parse it) or the file part's (the peers)
    answers_file_size: bool = False
    # answers an upload with an attachment's document (fileSize, digest) as affix does
    answers_attachment: bool = False

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def worker_pids(self) -> list:
        return sorted({int(pid) for pid in self.worker_announcement.findall(self.log())})

    def connection(self, timeout=REQUEST_TIMEOUT):
        return http.client.HTTPConnection(HOST, self.port, timeout=timeout)

    def get_status(self, path) -> int:
        connection = self.connection(timeout=2)
        try:
            connection.request("GET", path, headers=self.headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()


def _await_ready(server: Server):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if server.process.poll() is not None:
            problem = f"exited with status {server.process.returncode} while starting"
            break
        if len(server.worker_pids()) >= server.workers:
            try:
                if server.get_status(server.ready_path) == 200:
                    return
            except OSError:
                pass
        if time.monotonic() > deadline:
            problem = f"did not come up within {STARTUP_TIMEOUT} s"
            break
        time.sleep(0.05)
    raise BenchError(f"{server.name} {problem}.\nstderr:\n{server.log()[-3000:]}")


@contextlib.contextmanager
def _spawn(name, command, environ, run_dir):
    run_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = run_dir / "server.stdout", run_dir / "server.stderr"
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=environ, stdin=subprocess.DEVNULL, stdout=stdout,
            stderr=stderr, start_new_session=True,
        )
    try:
        yield process, stdout_path, stderr_path
    finally:
        stop(process)


def _announced_api_key(stdout_path, process) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        lines = stdout_path.read_text().split("\n")
        if len(lines) >= 3:
            if lines[0] != ADMIN_KEY_ANNOUNCEMENT:
                raise BenchError(f"unexpected output of affix serve: {lines[:2]}")
            return lines[1].strip()
        time.sleep(0.05)
    raise BenchError("affix serve printed no admin key")


def api_key_headers(api_key) -> dict:
    return {"Authorization": "Basic " + b64encode(f"apikey:{api_key}".encode()).decode()}


@contextlib.contextmanager
def affix_server(run_dir: Path, workers, threads, max_size, name="affix", extra_environ=None):
    """``name`` starts with "affix"; ``extra_environ`` adds settings (AFFIX_*)."""
    port = free_port()
    environ = clean_environ(AFFIX_DATA_DIR=str(run_dir / "data"),
                            AFFIX_MAX_ATTACHMENT_SIZE=str(max_size), **(extra_environ or {}))
    command = [sys.executable, "-m", "affix.app.cli.commands", "serve", "--bind", f"{HOST}:{port}",
               "--workers", str(workers), "--threads", str(threads)]
    with _spawn("affix", command, environ, run_dir) as (process, stdout_path, stderr_path):
        api_key = _announced_api_key(stdout_path, process)
        server = Server(
            name, process, port, workers, stdout_path, stderr_path,
            ready_path="/api/v3", upload_path="/api/v3/attachments",
            headers=api_key_headers(api_key),
        )
        _await_ready(server)
        yield server


def gunicorn_command(app, workers, threads, port) -> list:
    """gunicorn's command line for ``app`` with the settings affix serve gives it
    (app/cli/commands.py)."""
    return [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
            "--workers", str(workers), "--threads", str(threads),
            "--bind", f"{HOST}:{port}", "--no-control-socket", app]


@contextlib.contextmanager
def baseline_server(run_dir: Path, workers, threads):
    port = free_port()
    files_dir = run_dir / "files"
    files_dir.mkdir(parents=True)
    environ = clean_environ(BENCH_BASELINE_DIR=str(files_dir))
    command = gunicorn_command("tests.bench.baseline:app", workers, threads, port)
    with _spawn("baseline", command, environ, run_dir) as (process, stdout_path, stderr_path):
        server = Server("baseline", process, port, workers, stdout_path, stderr_path,
                        ready_path="/", upload_path="/upload", files_dir=files_dir)
        _await_ready(server)
        yield server


@contextlib.contextmanager
def floor_server(run_dir: Path, workers, threads):
    """The stack's floor (tests/bench/floor.py) for the small uploads, under the same gunicorn
    settings as the baseline."""
    from tests.bench import floor
    port = free_port()
    folder = run_dir / "data"
    api_key = secrets.token_hex(16)
    floor.prepare(folder, api_key)
    environ = clean_environ(BENCH_FLOOR_DIR=str(folder))
    command = gunicorn_command("tests.bench.floor:app_from_environ()", workers, threads, port)
    with _spawn("floor", command, environ, run_dir) as (process, stdout_path, stderr_path):
        server = Server(
            "floor", process, port, workers, stdout_path, stderr_path,
            ready_path="/", upload_path="/upload",
            headers=api_key_headers(api_key),
        )
        _await_ready(server)
        yield server


def is_affix(server: Server) -> bool:
    """affix (whatever its storage) rather than the baseline."""
    return server.name.startswith("affix")


# --- talking to the servers --------------------------------------------------------------------

def upload(server: Server, payload: Payload, connection=None):
    """(seconds, response document) of one upload whose body is streamed from the pool."""
    own = connection is None
    connection = connection or server.connection()
    try:
        started = time.perf_counter()
        connection.putrequest("POST", server.upload_path, skip_accept_encoding=True)
        for name, value in server.headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Type", payload.content_type)
        connection.putheader("Content-Length", str(payload.body_length))
        connection.endheaders()
        for chunk in payload.body_chunks():
            connection.send(chunk)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
    finally:
        if own:
            connection.close()
    if response.status != 200:
        raise BenchError(f"{server.name} answered an upload with {response.status}: {body[:500]!r}")
    return elapsed, json.loads(body)


def check_upload(server, payload, document):
    if is_affix(server) or server.answers_attachment:
        got = (document["fileSize"], document["digest"]["hash"])
        expected = (payload.size, payload.md5)
    else:
        # the baseline counts the whole multipart body
        got = (document["size"],)
        expected = (payload.size if server.answers_file_size else payload.body_length,)
    if got != expected:
        raise BenchError(f"{server.name} stored something else: {got} != {expected}")


def forget_uploads(server, document):
    """Remove what an upload stored, so that the disk does not fill up between runs."""
    if is_affix(server):
        connection = server.connection()
        try:
            connection.request("DELETE", f"/api/v3/attachments/{document['id']}",
                               headers=server.headers)
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        if response.status != 204:
            raise BenchError(f"affix answered DELETE with {response.status}")
    else:
        for path in server.files_dir.glob("upload-*"):
            path.unlink()


def download(server: Server, path, expected_size, digest=None) -> float:
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    connection = server.connection()
    try:
        started = time.perf_counter()
        connection.request("GET", path, headers=server.headers)
        response = connection.getresponse()
        if response.status != 200:
            raise BenchError(f"{server.name} answered a download with {response.status}: "
                             f"{response.read()[:500]!r}")
        received = 0
        while True:
            count = response.readinto(buffer)
            if not count:
                break
            received += count
            if digest is not None:
                digest.update(view[:count])
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if received != expected_size:
        raise BenchError(f"{server.name} sent {received} of {expected_size} bytes")
    return elapsed


def cpu_seconds(pids) -> float:
    """User plus system CPU time of the given processes so far."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def cpu_per_call(call, calls, evict=b"") -> float:
    """CPU seconds (this process's) per call of ``call()``, ``calls`` times, each after copying
    ``evict``, as a worker's other work evicts from the caches what a call touches (empty: the
    caches as the call before left them). Only the calls are timed."""
    spent = 0.0
    for _ in range(calls):
        if evict:
            bytes(evict)
        started = time.process_time()
        call()
        spent += time.process_time() - started
    return spent / calls


def memory_kib(pid, field) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} for pid {pid}")


def reset_peak_rss(pid) -> bool:
    """Linux resets VmHWM to the current RSS when 5 is written to clear_refs."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


# --- output ------------------------------------------------------------------------------------

def say(message=""):
    print(message, flush=True)


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclasses.dataclass
class Row:
    scenario: str
    affix: str
    baseline: str
    ratio: str
    target: str
    met: str


def verdict(value, target, at_least=True) -> str:
    if value != value:  # NaN
        return "n/a"
    return "yes" if (value >= target if at_least else value <= target) else "NO"


# the header row of every table; print_table only reads it
TABLE_HEADERS = Row("scenario", "affix", "baseline", "affix/base", "target", "met")


def print_table(rows, title, headers=TABLE_HEADERS):
    table = [headers, *rows]
    # a column no header or row fills (a comparison without targets) is left out
    fields = [field.name for field in dataclasses.fields(Row)
              if any(getattr(row, field.name) for row in table)]
    widths = [max(len(getattr(row, field)) for row in table) for field in fields]

    def line(row):
        cells = [getattr(row, field) for field in fields]
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"
    say(title)
    say(line(headers))
    say("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in rows:
        say(line(row))


# --- scenarios ---------------------------------------------------------------------------------

def alternating(servers, runs):
    """ABBA order: A B, B A, A B, ... so that neither server always goes first."""
    for number in range(runs):
        yield number, (servers if number % 2 == 0 else servers[::-1])


def summarise(results):
    """Medians of every measure, and the best (fastest) run: on a busy machine the best run is
    the one least disturbed by other work."""
    summary = {}
    for name, result in results.items():
        summary[name] = {key: statistics.median(values) for key, values in result.items()}
        summary[name]["best"] = max(result["mbps"])
    return summary


def bench_large_uploads(servers, pool, size, runs, number=1):
    payload = Payload(pool, size)
    payload.md5  # noqa: B018 - computed before any timing
    say(f"\n[{number}] one {size // MiB} MiB upload, {runs} runs each "
        "(after one unrecorded warm-up)")
    warm_up = Payload(pool, min(size, 16 * MiB))
    for server in servers:
        _, document = upload(server, warm_up)
        check_upload(server, warm_up, document)
        forget_uploads(server, document)

    def one_upload(server):
        elapsed, document = upload(server, payload)
        check_upload(server, payload, document)
        forget_uploads(server, document)
        return elapsed

    return timed_transfers(servers, runs, size, one_upload)


def timed_transfers(servers, runs, size, transfer):
    """Medians of MB/s and worker CPU per GiB, ``transfer(server)`` returning its seconds, run
    on the servers in alternation."""
    results = {server.name: {"mbps": [], "cpu": []} for server in servers}
    for number, order in alternating(servers, runs):
        for server in order:
            pids = server.worker_pids()
            cpu_before = cpu_seconds(pids)
            elapsed = transfer(server)
            cpu = cpu_seconds(pids) - cpu_before
            mbps = size / MB / elapsed
            results[server.name]["mbps"].append(mbps)
            results[server.name]["cpu"].append(cpu / (size / GiB))
            say(f"    run {number + 1} {server.name:8} {elapsed:7.2f} s  {mbps:8.1f} MB/s  "
                f"worker CPU {cpu:6.2f} s")
    return summarise(results)


def _rss_of_one_upload(server, payload):
    pids = server.worker_pids()
    reset = all(reset_peak_rss(pid) for pid in pids)
    idle = {pid: memory_kib(pid, "VmRSS") for pid in pids}
    _, document = upload(server, payload)
    check_upload(server, payload, document)
    peaks = {pid: memory_kib(pid, "VmHWM") for pid in pids}
    forget_uploads(server, document)
    growth = {pid: peaks[pid] - idle[pid] for pid in pids}
    pid = max(growth, key=growth.get)
    return growth[pid] / KiB, idle[pid] / KiB, peaks[pid] / KiB, reset


def bench_rss(servers, pool, sizes):
    """Peak RSS over idle RSS of the worker that took the upload (the one that grew most)."""
    say(f"\n[2] worker peak RSS minus idle RSS, uploads of "
        f"{' and '.join(f'{size // MiB} MiB' for size in sizes)}")
    small = Payload(pool, 4 * KiB)
    results = {}
    for server in servers:
        # every worker has served uploads before: what is measured is the upload, not imports
        for _ in range(4 * server.workers):
            _, document = upload(server, small)
            forget_uploads(server, document)
        for size in sizes:
            growth, idle, peak, reset = _rss_of_one_upload(server, Payload(pool, size))
            results[(server.name, size)] = growth
            say(f"    {server.name:8} {size // MiB:5} MiB upload: idle {idle:6.1f} MiB, "
                f"peak {peak:6.1f} MiB, growth {growth:6.1f} MiB"
                + ("" if reset else "  (peak could not be reset: fresh server assumed)"))
    return results


def _load_client(port, path, headers, body, threads, start_at, stop_at, results):
    """One client process: ``threads`` keep-alive connections, each posting in a loop."""
    latencies = []
    errors = []
    lock = threading.Lock()

    def client():
        mine = []
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < stop_at:
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=60)
                status = repr(error)
            if status == 200:
                mine.append(time.perf_counter() - started)
            else:
                with lock:
                    errors.append(str(status))
        connection.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((latencies, errors[:5], len(errors), time.process_time()))


def run_load(server, payload, clients, processes, duration):
    """(latencies, error samples, error count, client CPU seconds) of ``clients`` clients
    posting for ``duration`` seconds, spread over ``processes`` client processes."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    headers = {**server.headers, "Content-Type": payload.content_type,
               "Content-Length": str(payload.body_length)}
    body = payload.body_bytes()
    start_at = time.time() + 0.5
    stop_at = start_at + duration
    shares = [clients // processes + (1 if number < clients % processes else 0)
              for number in range(processes)]
    children = [
        context.Process(target=_load_client, daemon=True, args=(
            server.port, server.upload_path, headers, body, share, start_at, stop_at, results))
        for share in shares if share
    ]
    try:
        for child in children:
            child.start()
        collected = [results.get(timeout=duration + 120) for _ in children]
        for child in children:
            child.join(timeout=30)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join()
    latencies = [value for result in collected for value in result[0]]
    samples = [sample for result in collected for sample in result[1]]
    error_count = sum(result[2] for result in collected)
    client_cpu = sum(result[3] for result in collected)
    return latencies, samples, error_count, client_cpu


def bench_small_uploads(servers, pool, clients, processes, duration, number=3):
    say(f"\n[{number}] 4 KiB uploads, {clients} concurrent keep-alive clients in {processes} "
        f"processes, {duration:g} s per server (two halves in ABBA order, after a 1 s warm-up)")
    payload = Payload(pool, 4 * KiB)
    for server in servers:
        run_load(server, payload, clients, processes, 1.0)
    latencies_of = {server.name: [] for server in servers}
    cpu_of = {server.name: 0.0 for server in servers}
    for number, order in alternating(servers, 2):
        for server in order:
            pids = server.worker_pids()
            cpu_before = cpu_seconds(pids)
            latencies, samples, errors, client_cpu = run_load(
                server, payload, clients, processes, duration / 2)
            server_cpu = cpu_seconds(pids) - cpu_before
            if errors:
                raise BenchError(f"{server.name}: {errors} failed small uploads, e.g. {samples}")
            latencies_of[server.name] += latencies
            cpu_of[server.name] += server_cpu
            say(f"    half {number + 1} {server.name:8} {len(latencies) / (duration / 2):8.1f} "
                f"uploads/s  p50 {percentile(latencies, 0.5) * 1000:6.1f} ms  "
                f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms  "
                f"worker CPU {server_cpu:5.1f} s  client CPU {client_cpu:5.1f} s")
    return {
        name: {
            "rate": len(latencies) / duration,
            "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "cpu_ms": cpu_of[name] / max(1, len(latencies)) * 1000,
        }
        for name, latencies in latencies_of.items()
    }


def bench_downloads(servers, pool, size, runs):
    say(f"\n[4] one {size // MiB} MiB download, {runs} runs each (after one checked warm-up)")
    payload = Payload(pool, size)
    paths = {}
    for server in servers:
        if is_affix(server):
            _, document = upload(server, payload)
            check_upload(server, payload, document)
            paths[server.name] = document["_links"]["downloadLocation"]["href"]
        else:
            payload.write_file(server.files_dir / "download.bin")
            paths[server.name] = "/files/download.bin"
        # the warm-up checks the bytes; the timed runs only count them
        digest = hashlib.md5()
        download(server, paths[server.name], size, digest)
        if digest.hexdigest() != payload.md5:
            raise BenchError(f"{server.name} served other bytes than were stored")
    return timed_transfers(
        servers, runs, size, lambda server: download(server, paths[server.name], size)
    )


# --- the run -----------------------------------------------------------------------------------

def bench_parser(prog, doc, time_limit, quick_help) -> argparse.ArgumentParser:
    """The options every bench script shares: --quick, the servers' gunicorn settings, the time
    limit and where temporary folders go."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=8,
                        help="threads per worker (default 8)")
    parser.add_argument("--time-limit", type=int, default=time_limit,
                        help="seconds after which the run is stopped and cleaned up "
                             "(default %(default)s)")
    parser.add_argument("--tmpdir", help="where the temporary folders go (default: the "
                                         "system's; it should be a real disk, not tmpfs)")
    return parser


def add_small_upload_options(parser, where=""):
    """The options of the small-upload load; --duration is left None for the caller's default
    (shorter with --quick)."""
    parser.add_argument("--duration", type=float,
                        help=f"seconds of small uploads per server{where} (default 20)")
    parser.add_argument("--clients", type=int, default=16,
                        help=f"concurrent clients{where} (default 16)")
    parser.add_argument("--client-processes", type=int, default=2,
                        help=f"processes the clients{where} are spread over (default 2)")


def parse_args(argv):
    parser = bench_parser(
        "python -m tests.bench.run", __doc__, 1800,
        "smoke run: 32 MiB transfers, 2 runs, RSS at 16 and 64 MiB, 4 s load")
    parser.add_argument("--size-mib", type=int, help="size of scenarios 1 and 4 (default 256)")
    parser.add_argument("--runs", type=int, help="runs per server in scenarios 1 and 4 "
                                                 "(default 5)")
    add_small_upload_options(parser, " in scenario 3")
    args = parser.parse_args(argv)
    quick = args.quick
    args.size = (args.size_mib or (32 if quick else 256)) * MiB
    args.runs = args.runs or (2 if quick else 5)
    args.duration = args.duration or (4.0 if quick else 20.0)
    args.rss_sizes = (16 * MiB, 64 * MiB) if quick else (64 * MiB, GiB)
    return args


def check_logs(servers):
    for server in servers:
        if "Traceback" in server.log() or "[ERROR]" in server.log():
            raise BenchError(f"{server.name} logged an error:\n{server.log()[-3000:]}")


def _on_signal(signum, frame):
    if signum == signal.SIGALRM:
        raise TimeLimitReached()
    raise SystemExit(128 + signum)


def run(args):
    say(f"affix benchmark: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    say(f"gunicorn gthread, {args.workers} workers x {args.threads} threads, loopback"
        + (" -- QUICK smoke run, sizes below the targets'" if args.quick else ""))
    pool = os.urandom(POOL_SIZE)
    max_size = max(args.size, *args.rss_sizes) + MiB
    root = Path(tempfile.mkdtemp(prefix="affix-bench-", dir=args.tmpdir))
    try:
        with contextlib.ExitStack() as stack:
            affix = stack.enter_context(
                affix_server(root / "affix", args.workers, args.threads, max_size))
            baseline = stack.enter_context(
                baseline_server(root / "baseline", args.workers, args.threads))
            servers = [affix, baseline]
            say(f"servers up: affix on port {affix.port} (workers {affix.worker_pids()}), "
                f"baseline on port {baseline.port} (workers {baseline.worker_pids()})")
            uploads = bench_large_uploads(servers, pool, args.size, args.runs)
            # scenario 2 on fresh servers: nothing before has raised the workers' memory
            with contextlib.ExitStack() as fresh:
                rss = bench_rss([
                    fresh.enter_context(affix_server(
                        root / "affix-rss", args.workers, args.threads, max_size)),
                    fresh.enter_context(baseline_server(
                        root / "baseline-rss", args.workers, args.threads)),
                ], pool, args.rss_sizes)
            # the stack's floor runs beside them in this scenario only
            with floor_server(root / "floor", args.workers, args.threads) as floor:
                small = bench_small_uploads([affix, floor, baseline], pool, args.clients,
                                            args.client_processes, args.duration)
                check_logs([floor])
            downloads = bench_downloads(servers, pool, args.size, args.runs)
            check_logs(servers)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(args, uploads, rss, small, downloads)


def ratio_text(value, reference) -> str:
    """value / reference to two places; "n/a" where the reference rounds to nothing (a quick
    run's download can take less CPU than the clock's tick)."""
    return f"{value / reference:.2f}" if reference else "n/a"


def detail_rows(results):
    affix, baseline = results["affix"], results["baseline"]
    return [
        Row("  best run, MB/s", f"{affix['best']:.1f}", f"{baseline['best']:.1f}",
            f"{affix['best'] / baseline['best']:.2f}", "", ""),
        Row("  worker CPU s per GiB (median)", f"{affix['cpu']:.2f}", f"{baseline['cpu']:.2f}",
            ratio_text(affix['cpu'], baseline['cpu']), "", ""),
    ]


def small_upload_detail_rows(server, baseline):
    return [
        Row(label, f"{server[key]:.1f}", f"{baseline[key]:.1f}",
            f"{server[key] / baseline[key]:.2f}", "", "")
        for key, label in (("p50", "  latency p50, ms"), ("p99", "  latency p99, ms"),
                           ("cpu_ms", "  worker CPU ms per upload"))
    ]


def report(args, uploads, rss, small, downloads):
    size = f"{args.size // MiB} MiB"
    rows = []
    ratio = uploads["affix"]["mbps"] / uploads["baseline"]["mbps"]
    rows.append(Row(f"1 upload {size}, MB/s (median of {args.runs})",
                    f"{uploads['affix']['mbps']:.1f}", f"{uploads['baseline']['mbps']:.1f}",
                    f"{ratio:.2f}", f">= {TARGETS['upload']}", verdict(ratio, TARGETS['upload'])))
    rows.extend(detail_rows(uploads))
    for rss_size in args.rss_sizes:
        growth = rss[("affix", rss_size)]
        rows.append(Row(f"2 worker RSS growth, {rss_size // MiB} MiB upload, MiB",
                        f"{growth:.1f}", f"{rss[('baseline', rss_size)]:.1f}", "",
                        f"<= {TARGETS['rss_mib']} MiB",
                        verdict(growth, TARGETS["rss_mib"], at_least=False)))
    ratio = small["affix"]["rate"] / small["baseline"]["rate"]
    rows.append(Row(f"3 4 KiB uploads/s, {args.clients} clients, {args.duration:g} s",
                    f"{small['affix']['rate']:.1f}", f"{small['baseline']['rate']:.1f}",
                    f"{ratio:.2f}", f">= {TARGETS['small']}", verdict(ratio, TARGETS['small'])))
    rows.extend(small_upload_detail_rows(small["affix"], small["baseline"]))
    ratio = downloads["affix"]["mbps"] / downloads["baseline"]["mbps"]
    rows.append(Row(f"4 download {size}, MB/s (median of {args.runs})",
                    f"{downloads['affix']['mbps']:.1f}", f"{downloads['baseline']['mbps']:.1f}",
                    f"{ratio:.2f}", f">= {TARGETS['download']}",
                    verdict(ratio, TARGETS['download'])))
    rows.extend(detail_rows(downloads))
    say()
    print_table(rows, f"Results (gunicorn gthread {args.workers}x{args.threads}, loopback; "
                      f"MB = 10^6 bytes; load average now "
                      f"{' '.join(f'{value:.2f}' for value in os.getloadavg())})"
                      + (" -- QUICK run: sizes are not the targets'" if args.quick else ""))
    say()
    floor, baseline = small["floor"], small["baseline"]
    print_table(
        [Row("3 4 KiB uploads/s", f"{floor['rate']:.1f}", f"{baseline['rate']:.1f}",
             f"{floor['rate'] / baseline['rate']:.2f}", f"{small['affix']['rate']:.1f}",
             f"{small['affix']['rate'] / floor['rate']:.2f}"),
         *small_upload_detail_rows(floor, baseline)],
        "The stack's floor in scenario 3 (tests/bench/floor.py: Falcon, streaming-form-data "
        "and peewee doing a durable upload and nothing else)",
        headers=Row("scenario", "floor", "baseline", "floor/base", "affix", "affix/floor"))


def run_bench(run, args) -> int:
    """``run(args)`` stopped after ``args.time_limit`` seconds or on SIGTERM (its temporary
    folders and servers cleaned up either way); the exit status."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(args.time_limit)
    try:
        run(args)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1
    except TimeLimitReached:
        print(f"bench: stopped after the time limit of {args.time_limit} s", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
    return 0


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
