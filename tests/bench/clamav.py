"""Benchmark uploads scanned by ClamAV while they stream (AFFIX_SCAN_MODE=stream), next to the
same uploads without scanning, both under gunicorn gthread on loopback.

    python -m tests.bench.clamav            # 256 MiB uploads, 3 runs; RSS at 256 MiB
    python -m tests.bench.clamav --quick    # a smoke run: 16 MiB uploads, 2 runs

Scenarios (the same code as tests/bench/run.py's, with affix without scanning in the baseline's
place):

1. one upload of --size-mib (default 256) -> MB/s, median of runs, alternating the two servers
2. worker peak RSS minus idle RSS for one upload of --size-mib, on fresh servers: a worker
   holds a chunk or two per upload however large the file, and clamd holds the stream, not
   affix

clamd is Debian's (apt-get install clamav-daemon), started with a one-signature database of its
own (tests/support/clamd.py), its size limits raised so that it scans the whole file. It
receives the stream as fast as the upload arrives and scans the file once the last byte is
in: the upload's answer waits for that scan, which is most of what scanning costs.
"""
import contextlib
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from tests.bench.run import (
    MiB, POOL_SIZE, TARGETS, Row, affix_server, bench_large_uploads, bench_parser, bench_rss,
    check_logs, print_table, run_bench, say, verdict,
)
from tests.support.clamd import running_clamd

SCANNING = "affix-scan"
PLAIN = "affix-plain"


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.clamav", __doc__, 1800,
                          "smoke run: 16 MiB uploads, 2 runs")
    parser.add_argument("--size-mib", type=int, help="size of both scenarios (default 256)")
    parser.add_argument("--runs", type=int, help="runs per server in scenario 1 (default 3)")
    args = parser.parse_args(argv)
    args.size = (args.size_mib or (16 if args.quick else 256)) * MiB
    args.runs = args.runs or (2 if args.quick else 3)
    return args


@contextlib.contextmanager
def servers(root, args, clamd, label):
    """(affix scanning with clamd, affix without scanning)."""
    scanning = {"AFFIX_SCAN_MODE": "stream", "AFFIX_CLAMD": clamd.socket_path,
                # a scan of a large file takes clamd a while on a busy machine
                "AFFIX_CLAMD_TIMEOUT": "600"}
    max_size = args.size + MiB
    with contextlib.ExitStack() as stack:
        yield (
            stack.enter_context(affix_server(root / f"scan-{label}", args.workers, args.threads,
                                             max_size, name=SCANNING, extra_environ=scanning)),
            stack.enter_context(affix_server(root / f"plain-{label}", args.workers,
                                             args.threads, max_size, name=PLAIN)),
        )


def run(args):
    say(f"affix ClamAV benchmark: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs (nproc "
        f"{len(os.sched_getaffinity(0))}), load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    say(f"gunicorn gthread, {args.workers} workers x {args.threads} threads, clamd on a unix "
        "socket, loopback" + (" -- QUICK smoke run" if args.quick else ""))
    pool = os.urandom(POOL_SIZE)
    root = Path(tempfile.mkdtemp(prefix="affix-bench-clamav-", dir=args.tmpdir))
    try:
        with running_clamd() as clamd:
            with servers(root, args, clamd, "uploads") as pair:
                uploads = bench_large_uploads(list(pair), pool, args.size, args.runs)
                check_logs(pair)
            # on fresh servers: nothing before has raised the workers' memory
            with servers(root, args, clamd, "rss") as pair:
                rss = bench_rss(list(pair), pool, [args.size])
                check_logs(pair)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(args, uploads, rss)


def report(args, uploads, rss):
    scan, plain = uploads[SCANNING], uploads[PLAIN]
    growth = rss[(SCANNING, args.size)]
    rows = [
        Row(f"1 upload {args.size // MiB} MiB, MB/s (median of {args.runs})",
            f"{scan['mbps']:.1f}", f"{plain['mbps']:.1f}",
            f"{scan['mbps'] / plain['mbps']:.2f}", "", ""),
        Row("  best run, MB/s", f"{scan['best']:.1f}", f"{plain['best']:.1f}",
            f"{scan['best'] / plain['best']:.2f}", "", ""),
        Row("  worker CPU s per GiB (median)", f"{scan['cpu']:.2f}", f"{plain['cpu']:.2f}",
            f"{scan['cpu'] / plain['cpu']:.2f}", "", ""),
        Row(f"2 worker RSS growth, {args.size // MiB} MiB upload, MiB", f"{growth:.1f}",
            f"{rss[(PLAIN, args.size)]:.1f}", "", f"<= {TARGETS['rss_mib']} MiB",
            verdict(growth, TARGETS["rss_mib"], at_least=False)),
    ]
    say()
    print_table(rows, f"Results (gunicorn gthread {args.workers}x{args.threads}, loopback; "
                      "MB = 10^6 bytes; load average now "
                      f"{' '.join(f'{value:.2f}' for value in os.getloadavg())})"
                      + (" -- QUICK run" if args.quick else ""),
                headers=Row("scenario", "scanning", "no scanning", "scan/plain", "target",
                            "met"))


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
