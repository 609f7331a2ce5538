"""What sniffing costs a served upload: affix as it runs, beside the same affix whose libmagic
loads a database of one rule.

    python -m tests.bench.sniffing_served            # about 3 minutes
    python -m tests.bench.sniffing_served --quick    # a smoke run

Both servers are ``affix serve`` (gunicorn gthread, 2 workers x 8 threads by default), durable,
SQLite, their data in a folder of tmpfs (``--tmpfs-dir``), so that syncs cost nothing and the
figures compare CPU. The second one runs with ``MAGIC`` naming a database compiled here from a
single rule (libmagic reads ``MAGIC`` where its caller names no database, as affix does): every
sniff still goes through libmagic, but walks one entry instead of the several thousand of the
system's database. Its answers are wrong (everything is data or text); nothing else differs.

Scenarios, each alternating the servers (ABBA): 4 KiB of random bytes and 4 KiB of text, from
16 concurrent keep-alive clients, then the same from one client. The difference between the
two servers' worker CPU per upload is what libmagic's database costs an upload in a worker, with
the caches as the rest of the request leaves them (``python -m tests.bench.sniffing`` times the
call alone, warm and cold).
"""
import contextlib
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import magic

from tests.bench.run import (
    MiB, POOL_SIZE, affix_server, bench_parser, bench_small_uploads, check_logs, run_bench, say,
)

# one rule, in magic(5)'s syntax: PNG's signature
ONE_RULE = "0\tstring\t\\x89PNG\\r\\n\\x1a\\n\tPNG image data\n!:mime\timage/png\n"


def one_rule_database(folder: Path) -> Path:
    """A compiled magic database of ONE_RULE, in ``folder``; its path."""
    source = folder / "one-rule.magic"
    source.write_text(ONE_RULE)
    cookie = magic.magic_open(magic.MAGIC_NONE)
    try:
        previous = os.getcwd()
        os.chdir(folder)  # libmagic writes the compiled file into the current folder
        try:
            if magic.magic_compile(cookie, os.fsencode(source)) != 0:
                raise RuntimeError(f"libmagic could not compile {source}")
        finally:
            os.chdir(previous)
    finally:
        magic.magic_close(cookie)
    return folder / "one-rule.magic.mgc"


def text_pool(size) -> bytes:
    """Numbered lines of ASCII, as the test suite's long text file (libmagic's text path: about
    1.5 ms a call on 4 KiB, warm)."""
    lines = (b"line %05d of a long text file\n" % (number % 100_000)
             for number in range(size // 30 + 1))
    return b"".join(lines)[:size]


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.sniffing_served", __doc__, 1200,
                          "smoke run: 4 s loads")
    parser.add_argument("--duration", type=float,
                        help="seconds of uploads from 16 clients per server and kind "
                             "(default 20)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--client-processes", type=int, default=2,
                        help="processes the clients are spread over (default 2)")
    parser.add_argument("--tmpfs-dir", default="/dev/shm",
                        help="a folder on tmpfs for both servers' data (default %(default)s)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (4.0 if args.quick else 20.0)
    args.latency_duration = 2.0 if args.quick else 6.0
    return args


def run(args):
    say(f"affix sniffing, served: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}"
        + (" -- QUICK smoke run" if args.quick else ""))
    root = Path(tempfile.mkdtemp(prefix="affix-bench-sniffing-", dir=args.tmpfs_dir))
    pools = {"random bytes": os.urandom(POOL_SIZE), "text": text_pool(POOL_SIZE)}
    results = {}
    try:
        database = one_rule_database(root)
        for kind, pool in pools.items():
            # new servers for each kind: neither starts with the other's rows and blobs
            with contextlib.ExitStack() as stack:
                folder = root / kind.replace(" ", "-")
                servers = [
                    stack.enter_context(affix_server(folder / "stock", args.workers,
                                                     args.threads, MiB, name="affix")),
                    stack.enter_context(affix_server(folder / "one-rule", args.workers,
                                                     args.threads, MiB, name="affix-1rule",
                                                     extra_environ={"MAGIC": str(database)})),
                ]
                small = bench_small_uploads(servers, pool, args.clients, args.client_processes,
                                            args.duration, number=f"4 KiB of {kind}")
                alone = bench_small_uploads(servers, pool, 1, 1, args.latency_duration,
                                            number=f"4 KiB of {kind}, one client")
                results[kind] = (small, alone)
                check_logs(servers)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(args, results)


def report(args, results):
    say("\n| file | clients | measure | affix | affix, one-rule database | difference |")
    say("|---|---|---|---|---|---|")
    for kind, (small, alone) in results.items():
        stock, one_rule = small["affix"], small["affix-1rule"]
        say(f"| {kind} | {args.clients} | uploads/s | {stock['rate']:.0f} | "
            f"{one_rule['rate']:.0f} | x {one_rule['rate'] / stock['rate']:.2f} |")
        say(f"| {kind} | {args.clients} | worker CPU ms per upload | {stock['cpu_ms']:.2f} | "
            f"{one_rule['cpu_ms']:.2f} | {stock['cpu_ms'] - one_rule['cpu_ms']:.2f} |")
        stock, one_rule = alone["affix"], alone["affix-1rule"]
        say(f"| {kind} | 1 | median latency, ms | {stock['p50']:.2f} | {one_rule['p50']:.2f} | "
            f"{stock['p50'] - one_rule['p50']:.2f} |")
        say(f"| {kind} | 1 | worker CPU ms per upload | {stock['cpu_ms']:.2f} | "
            f"{one_rule['cpu_ms']:.2f} | {stock['cpu_ms'] - one_rule['cpu_ms']:.2f} |")
    say(f"\nload average now {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
