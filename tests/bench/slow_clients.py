"""Measure what slow and idle clients cost an affix server with its default settings, served
directly and behind nginx configured as deploy/nginx.conf says.

    python -m tests.bench.slow_clients            # about a minute
    python -m tests.bench.slow_clients --quick    # a smoke run

For each mix of hostile clients (uploads stalled after their first KiB, connections that send
nothing), it opens them, then makes 12 normal requests at once (every other one a small
upload) and counts those answered within the wait (3 s by default).
"""
import shutil
import sys
import tempfile
from pathlib import Path

from tests.bench.run import Row, affix_server, bench_parser, print_table, run_bench, say
from tests.support.nginx import nginx_in_front
from tests.support.slow_clients import hostile_clients, normal_requests

NORMAL_REQUESTS = 12
MIXES = [(0, 0), (16, 0), (0, 24), (16, 24)]


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.slow_clients", __doc__, 300,
                          "smoke run: the last mix only")
    parser.add_argument("--wait", type=float, default=3.0,
                        help="seconds a normal request may take (default 3)")
    return parser.parse_args(argv)


def answered(base_url, auth, stalled, idle, wait) -> int:
    with hostile_clients(base_url, auth, stalled, idle):
        statuses = normal_requests(base_url, auth, NORMAL_REQUESTS, wait)
    return sum(status == 200 for status in statuses)


def run(args):
    if shutil.which("nginx") is None:
        raise SystemExit("bench: nginx is not installed (apt-get install nginx-light)")
    mixes = MIXES[-1:] if args.quick else MIXES
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        tmp = Path(tmp)
        with affix_server(tmp / "affix", args.workers, args.threads, 5 * 1024 * 1024) as server, \
                nginx_in_front(tmp / "nginx", server.port) as proxied:
            direct = f"http://127.0.0.1:{server.port}"
            say(f"affix serve --workers {args.workers} --threads {args.threads}; "
                f"{NORMAL_REQUESTS} normal requests, each given {args.wait:g} s")
            rows = []
            for stalled, idle in mixes:
                rows.append(Row(
                    f"{stalled} stalled uploads, {idle} idle connections",
                    f"{answered(direct, server.headers, stalled, idle, args.wait)} of "
                    f"{NORMAL_REQUESTS}",
                    f"{answered(proxied, server.headers, stalled, idle, args.wait)} of "
                    f"{NORMAL_REQUESTS}", "", "", ""))
            print_table(rows, "normal requests answered in time",
                        Row("hostile clients", "affix alone", "behind nginx", "", "", ""))


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
