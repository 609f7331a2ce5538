"""Benchmark uploads to S3-compatible storage: affix storing in a bucket of moto's standalone S3
server, next to affix storing in a local folder, both under gunicorn gthread on loopback.

    python -m tests.bench.s3            # 64 MiB uploads, 5 runs; RSS at 16 and 64 MiB
    python -m tests.bench.s3 --quick    # a smoke run: 16 MiB uploads, 2 runs

Scenarios (the same code as tests/bench/run.py's, with the S3 server in the baseline's place):

1. one upload of --size-mib (default 64) -> MB/s, median of runs, alternating S3 and local
2. worker peak RSS minus idle RSS for one 16 MiB and one 64 MiB upload, on fresh servers: what
   a worker holds per upload must not grow with the file (a part of 8 MiB at most, plus reads)

moto runs on the same machine and does work a real object store does elsewhere (it holds every
object in memory, and a multipart upload about 5 times over while completing it): the MB/s are
a floor, not what a real S3 service gives. At the end the bucket must hold nothing: every upload
was deleted, and no multipart upload may be left pending.
"""
import contextlib
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from affix.storage.s3 import s3_client
from tests.bench.run import (
    MiB, POOL_SIZE, TARGETS, BenchError, Row, affix_server, bench_large_uploads, bench_parser,
    bench_rss, check_logs, print_table, run_bench, say, verdict,
)
from tests.support.s3 import running_moto_server, s3_environ, s3_options

BUCKET = "affix-bench"
PREFIX = "blobs"


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.s3", __doc__, 900,
                          "smoke run: 16 MiB uploads, 2 runs")
    parser.add_argument("--size-mib", type=int, help="size of scenario 1 (default 64)")
    parser.add_argument("--runs", type=int, help="runs per server in scenario 1 (default 5)")
    args = parser.parse_args(argv)
    args.size = (args.size_mib or (16 if args.quick else 64)) * MiB
    args.runs = args.runs or (2 if args.quick else 5)
    args.rss_sizes = (16 * MiB, 64 * MiB)
    return args


@contextlib.contextmanager
def servers(root, args, max_size, endpoint_url, label):
    """(affix on S3, affix on a local folder), named so that the tables tell them apart."""
    s3 = {**s3_environ(endpoint_url), "AFFIX_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}"}
    with contextlib.ExitStack() as stack:
        yield (
            stack.enter_context(affix_server(root / f"s3-{label}", args.workers, args.threads,
                                             max_size, name="affix-s3", extra_environ=s3)),
            stack.enter_context(affix_server(root / f"local-{label}", args.workers,
                                             args.threads, max_size, name="affix-local")),
        )


def assert_bucket_empty(client):
    objects = client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
    pending = len(client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", ()))
    if objects or pending:
        raise BenchError(f"the bucket holds {objects} objects and {pending} pending multipart "
                         "uploads after every upload was deleted")


def run(args):
    say(f"affix S3 benchmark: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    say(f"gunicorn gthread, {args.workers} workers x {args.threads} threads, moto's S3 server, "
        "loopback" + (" -- QUICK smoke run" if args.quick else ""))
    pool = os.urandom(POOL_SIZE)
    max_size = max(args.size, *args.rss_sizes) + MiB
    root = Path(tempfile.mkdtemp(prefix="affix-bench-s3-", dir=args.tmpdir))
    try:
        with running_moto_server(root / "moto.log") as endpoint_url:
            client = s3_client(s3_options(endpoint_url))
            client.create_bucket(Bucket=BUCKET)
            with servers(root, args, max_size, endpoint_url, "uploads") as pair:
                uploads = bench_large_uploads(list(pair), pool, args.size, args.runs)
                check_logs(pair)
            # on fresh servers: nothing before has raised the workers' memory
            with servers(root, args, max_size, endpoint_url, "rss") as pair:
                rss = bench_rss(list(pair), pool, args.rss_sizes)
                check_logs(pair)
            assert_bucket_empty(client)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(args, uploads, rss)


def report(args, uploads, rss):
    s3, local = uploads["affix-s3"], uploads["affix-local"]
    rows = [
        Row(f"1 upload {args.size // MiB} MiB, MB/s (median of {args.runs})",
            f"{s3['mbps']:.1f}", f"{local['mbps']:.1f}", f"{s3['mbps'] / local['mbps']:.2f}",
            "", ""),
        Row("  best run, MB/s", f"{s3['best']:.1f}", f"{local['best']:.1f}",
            f"{s3['best'] / local['best']:.2f}", "", ""),
        Row("  worker CPU s per GiB (median)", f"{s3['cpu']:.2f}", f"{local['cpu']:.2f}",
            f"{s3['cpu'] / local['cpu']:.2f}", "", ""),
    ]
    for size in args.rss_sizes:
        growth = rss[("affix-s3", size)]
        rows.append(Row(f"2 worker RSS growth, {size // MiB} MiB upload, MiB", f"{growth:.1f}",
                        f"{rss[('affix-local', size)]:.1f}", "", f"<= {TARGETS['rss_mib']} MiB",
                        verdict(growth, TARGETS["rss_mib"], at_least=False)))
    say()
    print_table(rows, f"Results (gunicorn gthread {args.workers}x{args.threads}, loopback; "
                      "MB = 10^6 bytes; load average now "
                      f"{' '.join(f'{value:.2f}' for value in os.getloadavg())})"
                      + (" -- QUICK run" if args.quick else ""),
                headers=Row("scenario", "S3 (moto)", "local folder", "S3/local", "target",
                            "met"))


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
