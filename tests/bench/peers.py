"""Benchmark affix against the services a user would write instead, side by side in one run.

    python -m tests.bench.peers --write docs/_generated/peers.md   # the full run
    python -m tests.bench.peers --quick                             # a smoke run of a few minutes

Five servers, each with 2 worker processes on loopback, all started before anything is timed:

- affix (``affix serve``: gunicorn gthread, 2 workers x 8 threads), durable, SQLite;
- "FastAPI doing affix's work" (tests/bench/fastapi_full_peer.py): the API key looked up in
  SQLite, the metadata parsed, libmagic, md5, fsync, one row committed, a HAL answer;
- minimal FastAPI + python-multipart (tests/bench/fastapi_peer.py): parse, write, fsync;
  both FastAPI peers under ``uvicorn --workers 2``, the way FastAPI's deployment guide runs
  workers (what ``fastapi run --workers 2`` starts), with uvicorn's standard extras (uvloop,
  httptools) and without its access log (gunicorn keeps none either);
- Falcon's built-in multipart parser (tests/bench/falcon_peer.py) under gunicorn gthread 2 x 8;
- the plain WSGI baseline (tests/bench/baseline.py: md5, write and fsync, no parsing), gunicorn
  gthread 2 x 8.

Every server keeps its files (and FastAPI its spooled parts: ``TMPDIR``) in a folder of its own,
first on tmpfs (where fsync costs nothing, so the figures compare the servers' own work), then on
disk. On each, in this order, every scenario alternating between the servers (ABBA):

1. 4 KiB uploads from 16 concurrent keep-alive clients -> uploads/s, p50, p99, worker CPU
2. one 100 MiB upload at a time -> MB/s (MB = 10**6 bytes), median of runs
3. 4 KiB uploads from one client, one after another -> median latency

and, on the console only, affix's ratios to the peers against the targets of issue #28.
``--write`` also writes the figures, with the date, the command and the machine, to a Markdown
file (the docs include ``docs/_generated/peers.md``). Needs the ``bench`` extra:
``pip install -e '.[bench]'``.
"""
import contextlib
import datetime
import os
import platform
import re
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from tests.bench.run import (
    KiB, MiB, POOL_SIZE, BenchError, Payload, Server, _await_ready, _spawn, affix_server,
    alternating, api_key_headers, baseline_server, bench_large_uploads, bench_parser,
    bench_small_uploads, check_logs, clean_environ, gunicorn_command, percentile, run_bench,
    run_load, say,
)
from tests.support.net import HOST, free_port

NAMES = ("affix", "fastapi-full", "fastapi", "falcon", "baseline")
LABELS = {
    "affix": "affix",
    "fastapi-full": "FastAPI doing affix's work",
    "fastapi": "FastAPI minimal",
    "falcon": "Falcon's multipart",
    "baseline": "baseline (md5 + write + fsync)",
}
# what affix must reach, as a multiple of each server's figure, on tmpfs and on disk (issue #28)
TARGETS = {
    "small": {"fastapi-full": 1.5, "fastapi": 1.0},
    "large": {"fastapi": 2.0, "baseline": 1.5},
}
# uvicorn's worker processes each log this line once they run
UVICORN_WORKER_STARTED = re.compile(r"Started server process \[(\d+)\]")


def peer_environ(run_dir: Path, files_dir: Path) -> dict:
    return clean_environ(BENCH_PEER_DIR=str(files_dir), TMPDIR=str(run_dir))


def uvicorn_command(app, workers, port) -> list:
    return [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--no-access-log"]


@contextlib.contextmanager
def uvicorn_server(name, module, run_dir: Path, workers, headers=None, prepare=None,
                   **server_options):
    """The FastAPI app of ``module`` (tests.bench.<module>:app) under uvicorn, its files in a
    folder of its own, which ``prepare(folder)`` fills first when given."""
    files_dir = run_dir / "files"
    files_dir.mkdir(parents=True)
    if prepare is not None:
        prepare(files_dir)
    port = free_port()
    command = uvicorn_command(f"tests.bench.{module}:app", workers, port)
    with _spawn(name, command, peer_environ(run_dir, files_dir), run_dir) as (
            process, stdout_path, stderr_path):
        server = Server(name, process, port, workers, stdout_path, stderr_path,
                        ready_path="/", upload_path="/upload", files_dir=files_dir,
                        headers=headers or {}, worker_announcement=UVICORN_WORKER_STARTED,
                        **server_options)
        _await_ready(server)
        yield server


def fastapi_server(run_dir: Path, workers):
    return uvicorn_server("fastapi", "fastapi_peer", run_dir, workers, answers_file_size=True)


def fastapi_full_server(run_dir: Path, workers):
    from tests.bench import fastapi_full_peer
    api_key = secrets.token_hex(16)
    return uvicorn_server("fastapi-full", "fastapi_full_peer", run_dir, workers,
                          headers=api_key_headers(api_key),
                          prepare=lambda folder: fastapi_full_peer.prepare(folder, api_key),
                          answers_attachment=True)


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
        say(f"    {name:12} {len(measured):6} uploads  median "
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
                stack.enter_context(fastapi_full_server(root / "fastapi-full", args.workers)),
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


def markdown_table(headers, rows) -> list:
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |",
            *("| " + " | ".join(row) + " |" for row in rows)]


def figures_table(args, results) -> list:
    """One row per server, one column per scenario and medium: what the issue's table shows."""
    headers = ["server"]
    columns = []
    for medium in args.media:
        figures = results[medium]
        headers += [f"4 KiB uploads/s, {args.clients} clients, {medium}",
                    f"{args.size // MiB} MiB MB/s, {medium}"]
        columns += [{name: f"{figures['small'][name]['rate']:.0f}" for name in NAMES},
                    {name: f"{figures['large'][name]['mbps']:.0f}" for name in NAMES}]
    rows = [[LABELS[name], *(column[name] for column in columns)] for name in NAMES]
    return markdown_table(headers, rows)


def targets_table(args, results) -> list:
    """affix's ratio to each peer a target names, on each medium, and whether it is met."""
    rows = []
    for scenario, measure, label in (("small", "rate", "4 KiB uploads/s"),
                                     ("large", "mbps", f"{args.size // MiB} MiB MB/s")):
        for name, target in TARGETS[scenario].items():
            cells = [f"{label}: affix / {LABELS[name]}", f">= {target:g}"]
            for medium in args.media:
                figures = results[medium][scenario]
                ratio = figures["affix"][measure] / figures[name][measure]
                cells.append(f"{ratio:.2f} ({'met' if ratio >= target else 'not met'})")
            rows.append(cells)
    return markdown_table(["ratio", "target", *args.media], rows)


def details_table(args, medium, figures) -> list:
    """Every measure of one medium, for every server."""
    small, large, latency = figures["small"], figures["large"], figures["latency"]
    rows = [
        ["4 KiB: latency p50, ms", *(f"{small[name]['p50']:.1f}" for name in NAMES)],
        ["4 KiB: latency p99, ms", *(f"{small[name]['p99']:.1f}" for name in NAMES)],
        ["4 KiB: worker CPU ms per upload", *(f"{small[name]['cpu_ms']:.2f}" for name in NAMES)],
        [f"{args.size // MiB} MiB: worker CPU s per GiB",
         *(f"{large[name]['cpu']:.2f}" for name in NAMES)],
        ["one client, 4 KiB: median latency, ms", *(f"{latency[name]:.2f}" for name in NAMES)],
    ]
    return markdown_table([medium, *(LABELS[name] for name in NAMES)], rows)


def report(args, results, command, targets=False) -> list:
    """The run's results as Markdown lines; with ``targets``, affix's ratios against the
    targets it is measured for (the console's, not the docs': a user has no use for them)."""
    lines = [
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`{command}`" + (" (a QUICK smoke run: not the targets' sizes)" if args.quick else "")
        + ".",
        "",
        f"Machine: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), load average at the end "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}; every server "
        f"{args.workers} workers; media: "
        + ", ".join(f"{medium} ({args.folders[medium]}, {file_system_of(args.folders[medium])})"
                    for medium in args.media) + ".",
        "",
        *figures_table(args, results),
    ]
    if targets:
        lines += ["", "affix's ratio to the peers, against the targets of issue #28:", "",
                  *targets_table(args, results)]
    for medium in args.media:
        lines += ["", *details_table(args, medium, results[medium])]
    return lines


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.peers", __doc__, 2400,
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
    parser.add_argument("--write", metavar="FILE",
                        help="also write the results as Markdown to FILE")
    args = parser.parse_args(argv)
    args.size = (args.size_mib or (32 if args.quick else 100)) * MiB
    args.runs = args.runs or (2 if args.quick else 5)
    args.duration = args.duration or (6.0 if args.quick else 20.0)
    args.latency_duration = args.latency_duration or (3.0 if args.quick else 6.0)
    args.media = args.media.split(",")
    if not set(args.media) <= {"tmpfs", "disk"}:
        parser.error("--media takes tmpfs, disk or both")
    args.folders = {"tmpfs": args.tmpfs_dir, "disk": args.tmpdir or tempfile.gettempdir()}
    args.command = " ".join(["python -m tests.bench.peers", *(argv or sys.argv[1:])])
    return args


def run(args):
    for medium in args.media:
        folder = args.folders[medium]
        is_tmpfs = file_system_of(folder) == "tmpfs"
        if is_tmpfs != (medium == "tmpfs"):
            raise BenchError(f"{folder} is on {file_system_of(folder)}, "
                             f"not {'tmpfs' if medium == 'tmpfs' else 'a disk'}")
    say(f"affix peer benchmark: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}"
        + (" -- QUICK smoke run" if args.quick else ""))
    pool = os.urandom(POOL_SIZE)
    results = {medium: bench_medium(args, medium, args.folders[medium], pool)
               for medium in args.media}
    say()
    for line in report(args, results, args.command, targets=True):
        say(line)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text("\n".join(report(args, results, args.command)) + "\n")
        say(f"\nwritten to {args.write}")


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
