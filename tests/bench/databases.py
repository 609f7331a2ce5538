"""Benchmark small uploads with PostgreSQL against SQLite: affix on each, both storing in a
local folder, under gunicorn gthread on loopback, in one run.

    python -m tests.bench.databases --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m tests.bench.databases --quick ...     # a smoke run of a few seconds per server

The URL names a server and a user that may create databases (it defaults to
``AFFIX_TEST_POSTGRES_URL``, as the test suite's); the benchmark makes a database of its own
there and drops it at the end. The scenario is tests/bench/run.py's small uploads: 4 KiB
uploads from concurrent keep-alive clients, halves in ABBA order -> uploads/s, p50, p99 and
worker CPU per upload.
"""
import contextlib
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from tests.bench.run import (
    MiB, POOL_SIZE, Row, add_small_upload_options, affix_server, bench_parser, bench_small_uploads,
    print_table, run_bench, say, small_upload_detail_rows,
)
from tests.support.postgres import SERVER_URL_VARIABLE, PostgresServer


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.databases", __doc__, 600,
                          "smoke run: 4 s per server")
    parser.add_argument("--postgres-url", default=os.environ.get(SERVER_URL_VARIABLE),
                        help=f"a PostgreSQL server (default ${SERVER_URL_VARIABLE})")
    add_small_upload_options(parser)
    args = parser.parse_args(argv)
    if not args.postgres_url:
        parser.error(f"name a PostgreSQL server: --postgres-url or ${SERVER_URL_VARIABLE}")
    args.duration = args.duration or (4.0 if args.quick else 20.0)
    return args


def run(args):
    say(f"affix database benchmark: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs (nproc "
        f"{len(os.sched_getaffinity(0))}), load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    say(f"gunicorn gthread, {args.workers} workers x {args.threads} threads, loopback, local "
        "blob folder" + (" -- QUICK smoke run" if args.quick else ""))
    postgres = PostgresServer(args.postgres_url)
    database_url = postgres.create_database()
    root = Path(tempfile.mkdtemp(prefix="affix-bench-databases-", dir=args.tmpdir))
    try:
        with contextlib.ExitStack() as stack:
            sqlite = stack.enter_context(affix_server(
                root / "sqlite", args.workers, args.threads, MiB, name="affix-sqlite"))
            postgresql = stack.enter_context(affix_server(
                root / "postgresql", args.workers, args.threads, MiB, name="affix-postgresql",
                extra_environ={"AFFIX_DATABASE_URL": database_url}))
            results = bench_small_uploads([postgresql, sqlite], os.urandom(POOL_SIZE),
                                          args.clients, args.client_processes, args.duration)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        postgres.drop_database(database_url)
        postgres.close()
    report(args, results["affix-postgresql"], results["affix-sqlite"])


def report(args, postgresql, sqlite):
    say()
    print_table(
        [Row(f"4 KiB uploads/s, {args.clients} clients, {args.duration:g} s",
             f"{postgresql['rate']:.1f}", f"{sqlite['rate']:.1f}",
             f"{postgresql['rate'] / sqlite['rate']:.2f}", "", ""),
         *small_upload_detail_rows(postgresql, sqlite)],
        f"Results (gunicorn gthread {args.workers}x{args.threads}, loopback; load average now "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())})"
        + (" -- QUICK run" if args.quick else ""),
        headers=Row("scenario", "PostgreSQL", "SQLite", "PG/SQLite", "", ""))


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
