"""Benchmark affix against the peers a user would pick instead, side by side in one run.

    python -m tests.bench.peers            # the full run (about 10 minutes)
    python -m tests.bench.peers --quick    # a smoke run of about two minutes

Four servers, each with 2 worker processes on loopback, all started before anything is timed:

- affix (``affix serve``: gunicorn gthread, 2 workers x 8 threads), durable, SQLite;
- FastAPI + python-multipart (tests/bench/fastapi_peer.py) under ``uvicorn --workers 2``, the way
  FastAPI's deployment guide runs workers (what ``fastapi run --workers 2`` starts), with uvicorn's
  standard extras (uvloop, httptools) and without its access log (gunicorn keeps none either);
- Falcon's built-in multipart parser (tests/bench/falcon_peer.py) under gunicorn gthread 2 x 8;
- the plain WSGI baseline (tests/bench/baseline.py: md5, write and fsync, no parsing), gunicorn
  gthread 2 x 8.

The peers parse the form, write the file, fsync it and answer; no key, no database. Every server
keeps its files (and FastAPI its spooled parts: ``TMPDIR``) in a folder of its own, first on tmpfs
(where fsync costs nothing, so the figures compare the servers' own work), then on disk. On each,
in this order, every scenario alternating between the servers (ABBA):

1. 4 KiB uploads from 16 concurrent keep-alive clients -> uploads/s, p50, p99, worker CPU
2. one 100 MiB upload -> MB/s (MB = 10**6 bytes), median of runs
3. 4 KiB uploads from one client, one after another -> median latency

and the ratios of affix to each peer, against the targets of issue #15 (on tmpfs). Needs the
``bench`` extra: ``pip install -e '.[bench]'``.
"""
import contextlib
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from tests.bench.run import (
    KiB, MiB, POOL_SIZE, BenchError, Payload, Server, _await_ready, _spawn, affix_server,
    alternating, baseline_server, bench_large_uploads, bench_parser, bench_small_uploads,
    check_logs, clean_environ, gunicorn_command, percentile, run_bench, run_load, say,
)
from tests.support.net import HOST, free_port

NAMES = ("affix", "fastapi", "falcon", "baseline")
# what affix must reach, as a multiple of each server's figure, on tmpfs
TARGETS = {
    "small": {"fastapi": 1.5, "falcon": 0.3},
    "large": {"fastapi": 1.2, "baseline": 1.0},
}
LATENCY_TARGET_MS = 4.0
# uvicorn's worker processes each log this line once they run
UVICORN_WORKER_STARTED = re.compile(r"Started server process \[(\d+)\]")


def peer_environ(run_dir: Path, files_dir: Path) -> dict:
    return clean_environ(BENCH_PEER_DIR=str(files_dir), TMPDIR=str(run_dir))


@contextlib.contextmanager
def fastapi_server(run_dir: Path, workers):
    files_dir = run_dir / "files"
    files_dir.mkdir(parents=True)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "tests.bench.fastapi_peer:app",
               "--host", HOST, "--port", str(port), "--workers", str(workers), "--no-access-log"]
    with _spawn("fastapi", command, peer_environ(run_dir, files_dir), run_dir) as (
            process, stdout_path, stderr_path):
        server = Server("fastapi", process, port, workers, stdout_path, stderr_path,
                        ready_path="/", upload_path="/upload", files_dir=files_dir,
                        worker_announcement=UVICORN_WORKER_STARTED, answers_file_size=True)
        _await_ready(server)
        yield server


@contextlib.contextmanager
def falcon_server(run_dir: Path, workers, threads):
    files_dir = run_dir / "files"
    files_dir.mkdir(parents=True)
    port = free_port()
    command = gunicorn_command("tests.bench.falcon_peer:app", workers, threads, port)
    with _spawn("falcon", command, peer_environ(run_dir, files_dir), run_dir) as (
            process, stdout_path, stderr_path):
        server = Server("falcon", process, port, workers, stdout_path, stderr_path,
                        ready_path="/", upload_path="/upload", files_dir=files_dir,
                        answers_file_size=True)
        _await_ready(server)
        yield server


def file_system_of(path) -> str:
    """The type of the file system ``path`` is on (the longest mount point above it)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, mount_point, fs_type = line.split()[:3]
            inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) > len(best):
                best, kind = mount_point, fs_type
    return kind


def one_client_latencies(servers, payload, duration):
    """Median latency in ms of 4 KiB uploads from one client, in two ABBA halves."""
    latencies = {server.name: [] for server in servers}
    for _, order in alternating(servers, 2):
        for server in order:
            measured, samples, errors, _ = run_load(server, payload, 1, 1, duration / 2)
            if errors:
                raise BenchError(f"{server.name}: {errors} failed uploads, e.g. {samples}")
            latencies[server.name] += measured
    for name, measured in latencies.items():
        say(f"    {name:8} {len(measured):6} uploads  median "
            f"{percentile(measured, 0.5) * 1000:6.2f} ms  "
            f"p99 {percentile(measured, 0.99) * 1000:6.2f} ms")
    return {name: statistics.median(measured) * 1000 for name, measured in latencies.items()}


def bench_medium(args, medium, folder, pool):
    say(f"\n=== {medium}: {folder} ({file_system_of(folder)}) ===")
    root = Path(tempfile.mkdtemp(prefix="affix-bench-peers-", dir=folder))
    try:
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(affix_server(root / "affix", args.workers, args.threads,
                                                 args.size + MiB)),
                stack.enter_context(fastapi_server(root / "fastapi", args.workers)),
                stack.enter_context(falcon_server(root / "falcon", args.workers, args.threads)),
                stack.enter_context(baseline_server(root / "baseline", args.workers,
                                                    args.threads)),
            ]
            say("servers up: " + ", ".join(
                f"{server.name} (workers {server.worker_pids()})" for server in servers))
            small = bench_small_uploads(servers, pool, args.clients, args.client_processes,
                                        args.duration, number=1)
            large = bench_large_uploads(servers, pool, args.size, args.runs, number=2)
            say(f"\n[3] 4 KiB uploads from one client, {args.latency_duration:g} s per server "
                "(two halves in ABBA order)")
            latency = one_client_latencies(servers, Payload(pool, 4 * KiB),
                                           args.latency_duration)
            check_logs(servers)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"small": small, "large": large, "latency": latency}


def table(rows, headers):
    widths = [max(len(str(row[column])) for row in [headers, *rows])
              for column in range(len(headers))]

    def line(row):
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |"
    say(line(headers))
    say("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in rows:
        say(line(row))


def verdicts(ratios, targets):
    return ", ".join(f"{name} {'yes' if ratios[name] >= target else 'NO'} (>= {target})"
                     for name, target in targets.items())


def report(args, medium, results):
    small, large, latency = results["small"], results["large"], results["latency"]
    peers = NAMES[1:]
    rows = []

    def add(label, figures, fmt, higher_is_better=True, targets=None):
        ratios = {name: (figures["affix"] / figures[name] if higher_is_better
                         else figures[name] / figures["affix"]) for name in peers}
        rows.append([label, *(fmt.format(figures[name]) for name in NAMES),
                     *(f"{ratios[name]:.2f}" for name in peers),
                     verdicts(ratios, targets) if targets and medium == "tmpfs" else ""])

    add(f"4 KiB uploads/s, {args.clients} clients", {n: small[n]["rate"] for n in NAMES}, "{:.1f}",
        targets=TARGETS["small"])
    add("  latency p50, ms", {n: small[n]["p50"] for n in NAMES}, "{:.1f}", False)
    add("  latency p99, ms", {n: small[n]["p99"] for n in NAMES}, "{:.1f}", False)
    add("  worker CPU ms per upload", {n: small[n]["cpu_ms"] for n in NAMES}, "{:.2f}", False)
    add(f"{args.size // MiB} MiB upload, MB/s (median of {args.runs})",
        {n: large[n]["mbps"] for n in NAMES}, "{:.1f}", targets=TARGETS["large"])
    add("  worker CPU s per GiB", {n: large[n]["cpu"] for n in NAMES}, "{:.2f}", False)
    add("one client: 4 KiB median latency, ms", latency, "{:.2f}", False)
    rows[-1][-1] = (f"affix {'yes' if latency['affix'] < LATENCY_TARGET_MS else 'NO'} "
                    f"(< {LATENCY_TARGET_MS:g} ms)") if medium == "tmpfs" else ""
    say(f"\n{medium}: ratios are affix's advantage (higher is better for affix; for times, "
        "the peer's over affix's)")
    table(rows, ["scenario", *NAMES, *(f"affix/{name}" for name in peers), "target met"])


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.peers", __doc__, 1800,
                          "smoke run: 32 MiB uploads, 2 runs, 6 s loads")
    parser.add_argument("--size-mib", type=int, help="size of the large upload (default 100)")
    parser.add_argument("--runs", type=int, help="large uploads per server (default 5)")
    parser.add_argument("--duration", type=float,
                        help="seconds of 4 KiB uploads from many clients per server (default 20)")
    parser.add_argument("--latency-duration", type=float,
                        help="seconds of 4 KiB uploads from one client per server (default 6)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--client-processes", type=int, default=2,
                        help="processes the clients are spread over (default 2)")
    parser.add_argument("--tmpfs-dir", default="/dev/shm", help="a folder on tmpfs "
                                                               "(default %(default)s)")
    parser.add_argument("--media", default="tmpfs,disk",
                        help="where to run, in order: tmpfs, disk or both (default %(default)s; "
                             "disk is --tmpdir, or the system's temporary folder)")
    args = parser.parse_args(argv)
    args.size = (args.size_mib or (32 if args.quick else 100)) * MiB
    args.runs = args.runs or (2 if args.quick else 5)
    args.duration = args.duration or (6.0 if args.quick else 20.0)
    args.latency_duration = args.latency_duration or (3.0 if args.quick else 6.0)
    args.media = args.media.split(",")
    if not set(args.media) <= {"tmpfs", "disk"}:
        parser.error("--media takes tmpfs, disk or both")
    return args


def run(args):
    folders = {"tmpfs": args.tmpfs_dir, "disk": args.tmpdir or tempfile.gettempdir()}
    for medium in args.media:
        is_tmpfs = file_system_of(folders[medium]) == "tmpfs"
        if is_tmpfs != (medium == "tmpfs"):
            raise BenchError(f"{folders[medium]} is on {file_system_of(folders[medium])}, "
                             f"not {'tmpfs' if medium == 'tmpfs' else 'a disk'}")
    say(f"affix peer benchmark: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}"
        + (" -- QUICK smoke run" if args.quick else ""))
    pool = os.urandom(POOL_SIZE)
    results = {medium: bench_medium(args, medium, folders[medium], pool)
               for medium in args.media}
    for medium in args.media:
        report(args, medium, results[medium])
    say(f"\nload average now {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
