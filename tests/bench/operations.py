"""What operating affix costs: small uploads on affix as an operator runs it (metrics on their
listener, JSON logs with an access line per request, /health/ready probed every second and the
metrics scraped every 5 s) against affix with none of it (text logs, no access lines, no
metrics, nobody probing), side by side under gunicorn gthread on loopback.

    python -m tests.bench.operations            # 3 rounds of 20 s per server
    python -m tests.bench.operations --quick    # a smoke run of a few seconds per server

Each round is tests/bench/run.py's small-upload scenario on both servers (halves in ABBA order);
the figures are the medians over the rounds of observed / plain: uploads per second (the target:
at least 0.95) and worker CPU per upload (which a machine shared with other work disturbs less).
"""
import contextlib
import http.client
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

from tests.bench.run import (
    MiB, POOL_SIZE, BenchError, Row, add_small_upload_options, affix_server, bench_parser,
    bench_small_uploads,
    print_table, run_bench, say, verdict,
)
from tests.support.net import HOST, free_port

TARGET = 0.95
PROBE_INTERVAL = 1.0
SCRAPES_EVERY = 5


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.operations", __doc__, 900,
                          "smoke run: 1 round of 4 s per server")
    add_small_upload_options(parser)
    parser.add_argument("--rounds", type=int, help="rounds of both servers (default 3)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (4.0 if args.quick else 20.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    return args


def _get(port, path):
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@contextlib.contextmanager
def probing(server, metrics_port):
    """What a load balancer and Prometheus ask of ``server``, in a thread, while the block
    runs; raises if one of their requests failed."""
    stopped = threading.Event()
    failures = []

    def probe():
        count = 0
        while not stopped.wait(PROBE_INTERVAL):
            checks = [(server.port, "/health/ready")]
            if count % SCRAPES_EVERY == 0:
                checks.append((metrics_port, "/metrics"))
            for port, path in checks:
                status = _get(port, path)
                if status != 200:
                    failures.append(f"{path}: {status}")
            count += 1

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()
    if failures:
        raise BenchError(f"probes failed: {failures[:3]}")


def run(args):
    say(f"affix operations benchmark: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    say(f"gunicorn gthread, {args.workers} workers x {args.threads} threads, loopback, SQLite, "
        "local blob folder" + (" -- QUICK smoke run" if args.quick else ""))
    root = Path(tempfile.mkdtemp(prefix="affix-bench-operations-", dir=args.tmpdir))
    metrics_port = free_port()
    rounds = []
    try:
        with contextlib.ExitStack() as stack:
            plain = stack.enter_context(affix_server(
                root / "plain", args.workers, args.threads, MiB, name="affix-plain",
                extra_environ={"AFFIX_LOG_FORMAT": "text", "AFFIX_ACCESS_LOG": "0"}))
            observed = stack.enter_context(affix_server(
                root / "observed", args.workers, args.threads, MiB, name="affix-observed",
                extra_environ={"AFFIX_LOG_FORMAT": "json", "AFFIX_ACCESS_LOG": "1",
                               "AFFIX_METRICS_BIND": f"{HOST}:{metrics_port}"}))
            stack.enter_context(probing(observed, metrics_port))
            pool = os.urandom(POOL_SIZE)
            for number in range(args.rounds):
                say(f"\nround {number + 1} of {args.rounds}")
                rounds.append(bench_small_uploads([observed, plain], pool, args.clients,
                                                  args.client_processes, args.duration))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(args, rounds)


def report(args, rounds):
    def median(server, key):
        return statistics.median(each[server][key] for each in rounds)

    rate_ratios = [each["affix-observed"]["rate"] / each["affix-plain"]["rate"]
                   for each in rounds]
    rate_ratio = statistics.median(rate_ratios)
    cpu_ratios = [each["affix-observed"]["cpu_ms"] / each["affix-plain"]["cpu_ms"]
                  for each in rounds]
    cpu_ratio = statistics.median(cpu_ratios)
    say()
    print_table(
        [Row(f"4 KiB uploads/s, {args.clients} clients, {args.duration:g} s, median of "
             f"{args.rounds}", f"{median('affix-observed', 'rate'):.1f}",
             f"{median('affix-plain', 'rate'):.1f}", f"{rate_ratio:.3f}", f">= {TARGET}",
             verdict(rate_ratio, TARGET)),
         Row("  worker CPU ms per upload", f"{median('affix-observed', 'cpu_ms'):.2f}",
             f"{median('affix-plain', 'cpu_ms'):.2f}", f"{cpu_ratio:.3f}", "", ""),
         Row("  latency p50, ms", f"{median('affix-observed', 'p50'):.1f}",
             f"{median('affix-plain', 'p50'):.1f}", "", "", ""),
         Row("  latency p99, ms", f"{median('affix-observed', 'p99'):.1f}",
             f"{median('affix-plain', 'p99'):.1f}", "", "", "")],
        f"Results (observed/plain by round, uploads/s: "
        f"{', '.join(f'{ratio:.3f}' for ratio in rate_ratios)}, worker CPU per upload: "
        f"{', '.join(f'{ratio:.3f}' for ratio in cpu_ratios)}; load average now "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())})"
        + (" -- QUICK run" if args.quick else ""),
        headers=Row("scenario", "observed", "plain", "obs/plain", "target", "met"))


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
