"""Benchmark the work-package list: pages of a project with 10,000 work packages.

    python -m tests.bench.work_packages            # 10,000 work packages, 31 rounds
    python -m tests.bench.work_packages --quick    # a smoke run: 2,000 work packages, 5 rounds

affix runs under gunicorn gthread on loopback, on SQLite, and on PostgreSQL too when
``--postgres-url`` (default ``AFFIX_TEST_POSTGRES_URL``) names a server: the benchmark makes a
database of its own there and drops it at the end. Each database is filled through affix's
catalogue (one bulk insert; types, statuses and priorities mixed; PostgreSQL then analyzed, as
autovacuum does within a minute), then a member of the project who may only view it asks for
``GET /api/v3/work_packages?offset=N&pageSize=M`` (``offset`` is OpenProject's page number):
the first, middle and last page, the same with a filter, with a ``sortBy``, and a project's own
list. Every round asks each once, in turn, on each server; the
answers are checked (200, ``total``, ``count``) and the median time of each is printed, with
the CPU time the server spent on it (its workers, and its PostgreSQL backends: on a busy machine
the part of the time that is the request's own), and ``GET /api/v3`` (the API root:
authentication and a small document) beside them as the floor of any request. The target is a
page in under 50 ms.
"""
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import peewee
import psycopg2

from affix.app import open_catalog
from affix.app.settings import Settings
from affix.app.testing import People, basic_auth
from tests.bench.run import (
    BenchError, MiB, Row, affix_server, alternating, cpu_seconds, bench_parser, print_table,
    run_bench, say,
)
from tests.support.postgres import SERVER_URL_VARIABLE, PostgresServer

PROJECT = "bench"
READER = "reader"
TARGET_MS = 50
# rows per INSERT statement: far below SQLite's limit of 32766 bound parameters
INSERT_BATCH = 500
# subjects with a 7 in their number: OpenProject's "~" (contains); an explicit filter replaces
# the default one (open work packages only), so all statuses count
SUBJECT_FILTER = json.dumps([{"subject": {"operator": "~", "values": ["7"]}}])


def parse_args(argv):
    parser = bench_parser("python -m tests.bench.work_packages", __doc__, 900,
                          "smoke run: 2,000 work packages, 5 rounds")
    parser.add_argument("--count", type=int, help="work packages (default 10000)")
    parser.add_argument("--page-size", type=int, default=20,
                        help="pageSize (default 20, OpenProject's)")
    parser.add_argument("--rounds", type=int, help="rounds (default 31)")
    parser.add_argument("--postgres-url", default=os.environ.get(SERVER_URL_VARIABLE),
                        help=f"a PostgreSQL server to run on too (default ${SERVER_URL_VARIABLE})")
    args = parser.parse_args(argv)
    args.count = args.count or (2000 if args.quick else 10_000)
    args.rounds = args.rounds or (5 if args.quick else 31)
    return args


def subject(number) -> str:
    return f"Work package {number:05d}"


def fill(settings: Settings, count):
    """``count`` work packages in the project ``bench``: the API key of a member who may only
    view them, and how many the list holds without a filter and with SUBJECT_FILTER."""
    catalog = open_catalog(settings)
    try:
        people = People(catalog)
        people.add(READER, permissions=["view_work_packages"], project=PROJECT)
        with catalog.database.connection_context(), catalog.database.atomic():
            project = catalog.Project.get(catalog.Project.identifier == PROJECT)
            author = catalog.User.get(catalog.User.login == READER)
            types = [row.id for row in catalog.Type.select().order_by(catalog.Type.id)]
            statuses = list(catalog.Status.select().order_by(catalog.Status.id))
            priorities = [row.id for row in catalog.Priority.select().order_by(
                catalog.Priority.id)]
            start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
            rows = [
                {"project": project.id, "subject": subject(number),
                 "author": author.id, "type": types[number % len(types)],
                 "status": statuses[number % len(statuses)].id,
                 "priority": priorities[number % len(priorities)],
                 "created_at": start + datetime.timedelta(minutes=number),
                 "updated_at": start + datetime.timedelta(minutes=number)}
                for number in range(count)
            ]
            for first in range(0, count, INSERT_BATCH):
                catalog.WorkPackage.insert_many(rows[first:first + INSERT_BATCH]).execute()
        if isinstance(catalog.database, peewee.PostgresqlDatabase):
            # what autovacuum does within a minute of a bulk insert: without statistics the
            # planner takes the new table for a few rows and sorts all of them for a page
            with catalog.database.connection_context():
                catalog.database.execute_sql("ANALYZE")
        totals = {
            "open": sum(not statuses[number % len(statuses)].is_closed
                        for number in range(count)),
            "subject": sum("7" in subject(number) for number in range(count)),
        }
        return people.keys[READER], totals
    finally:
        catalog.database.close()


def query(path, **parameters) -> str:
    return path + ("?" + urllib.parse.urlencode(parameters) if parameters else "")


def pages(total, size, page) -> tuple:
    """(offset, elements on it) of ``page``: "first", "middle" or "last"."""
    last = max(1, -(-total // size))
    offset = {"first": 1, "middle": max(1, last // 2), "last": last}[page]
    return offset, max(0, min(size, total - (offset - 1) * size))


def requests_to_time(size, project_id, totals) -> dict:
    """name -> (path, expected total, expected count) of every request a round makes.
    ``totals``: how many work packages the list holds without a filter (the open ones, as in
    OpenProject) and with the subject filter."""
    collection = "/api/v3/work_packages"
    requests = {"API root (the floor)": ("/api/v3", None, None)}
    for page in ("first", "middle", "last"):
        offset, count = pages(totals["open"], size, page)
        requests[f"page {offset} ({page})"] = (
            query(collection, offset=offset, pageSize=size), totals["open"], count)
    offset, count = pages(totals["subject"], size, "middle")
    requests[f"filter subject ~ 7 (all statuses), page {offset}"] = (
        query(collection, offset=offset, pageSize=size, filters=SUBJECT_FILTER),
        totals["subject"], count)
    offset, count = pages(totals["open"], size, "middle")
    requests[f"sortBy subject desc, page {offset}"] = (
        query(collection, offset=offset, pageSize=size, sortBy=json.dumps([["subject", "desc"]])),
        totals["open"], count)
    offset, count = pages(totals["open"], size, "last")
    requests[f"the project's list, page {offset}"] = (
        query(f"/api/v3/projects/{project_id}/work_packages", offset=offset, pageSize=size),
        totals["open"], count)
    return requests


def get(server, path, headers):
    """(seconds, document) of one GET on the server's kept-alive connection."""
    started = time.perf_counter()
    server.keep_alive.request("GET", path, headers=headers)
    response = server.keep_alive.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise BenchError(f"{server.name} answered GET {path} with {response.status}: "
                         f"{body[:500]!r}")
    return elapsed, json.loads(body)


def check(server, name, document, total, count):
    if total is None:
        return
    got = (document.get("total"), document.get("count"), len(document["_embedded"]["elements"]))
    if got != (total, count, count):
        raise BenchError(f"{server.name}, {name}: total, count, elements {got}, "
                         f"expected {(total, count, count)}")


def serving_pids(server) -> list:
    """The server's workers, and the PostgreSQL backends serving its database: their CPU is
    what a request costs, whatever else the machine is busy with."""
    pids = server.worker_pids()
    if server.database_url:
        name = urllib.parse.urlsplit(server.database_url).path.lstrip("/")
        with contextlib.closing(psycopg2.connect(server.database_url)) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                               "AND pid <> pg_backend_pid()", (name,))
                pids += [pid for (pid,) in cursor.fetchall()]
    return pids


def bench(args, servers) -> dict:
    """{server name: {request name: (median ms, mean CPU ms)}}, rounds interleaved over servers
    and requests."""
    timings = {server.name: {} for server in servers}
    cpu = {server.name: {} for server in servers}
    plans = {server.name: requests_to_time(args.page_size, server.project_id, server.totals)
             for server in servers}
    for server in servers:
        # a warm-up that checks every answer (the timed rounds check them too) and opens the
        # database connections the rounds use
        for name, (path, total, count) in plans[server.name].items():
            _, document = get(server, path, server.reader_headers)
            check(server, name, document, total, count)
    for _, order in alternating(servers, args.rounds):
        for server in order:
            pids = serving_pids(server)
            for name, (path, total, count) in plans[server.name].items():
                cpu_before = cpu_seconds(pids)
                elapsed, document = get(server, path, server.reader_headers)
                cpu[server.name].setdefault(name, []).append(
                    (cpu_seconds(pids) - cpu_before) * 1000)
                check(server, name, document, total, count)
                timings[server.name].setdefault(name, []).append(elapsed * 1000)
    # CPU time comes in clock ticks (10 ms): a mean over the rounds, not a median
    return {server: {name: (statistics.median(values), statistics.mean(cpu[server][name]))
                     for name, values in by_name.items()}
            for server, by_name in timings.items()}


@contextlib.contextmanager
def filled_server(args, run_dir: Path, name, database_url=None):
    data_dir = run_dir / "data"
    extra = {"AFFIX_DATABASE_URL": database_url} if database_url else {}
    with affix_server(run_dir, args.workers, args.threads, MiB, name=name,
                      extra_environ=extra) as server:
        settings = Settings.for_data_dir(data_dir, **(
            {"database_url": database_url} if database_url else {}))
        started = time.perf_counter()
        key, server.totals = fill(settings, args.count)
        say(f"  {name}: {args.count} work packages inserted in "
            f"{time.perf_counter() - started:.1f} s")
        catalog = open_catalog(settings)
        with catalog.database.connection_context():
            server.project_id = catalog.Project.get(catalog.Project.identifier == PROJECT).id
        catalog.database.close()
        server.reader_headers = {"Authorization": basic_auth(key)}
        server.database_url = database_url
        server.keep_alive = server.connection()
        try:
            yield server
        finally:
            server.keep_alive.close()


def run(args):
    say(f"affix work-package list benchmark: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs (nproc "
        f"{len(os.sched_getaffinity(0))}), load average "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    say(f"gunicorn gthread, {args.workers} workers x {args.threads} threads, loopback; "
        f"{args.count} work packages, pageSize {args.page_size}, {args.rounds} rounds"
        + (" -- QUICK smoke run" if args.quick else ""))
    postgres = PostgresServer(args.postgres_url) if args.postgres_url else None
    database_url = postgres.create_database() if postgres else None
    root = Path(tempfile.mkdtemp(prefix="affix-bench-work-packages-", dir=args.tmpdir))
    try:
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(filled_server(args, root / "sqlite", "SQLite"))]
            if database_url:
                servers.append(stack.enter_context(filled_server(
                    args, root / "postgresql", "PostgreSQL", database_url)))
            medians = bench(args, servers)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if postgres:
            postgres.drop_database(database_url)
            postgres.close()
    report(args, medians)


def report(args, results):
    kinds = list(results)
    names = list(results[kinds[0]])
    rows = []
    for name in names:
        medians = [results[kind][name][0] for kind in kinds]
        floor = name.startswith("API root")
        rows.append(Row(
            name,
            *[f"{results[kind][name][0]:.1f} ({results[kind][name][1]:.1f})" for kind in kinds],
            *[""] * (2 - len(kinds)),
            "" if floor else f"< {TARGET_MS} ms",
            "" if floor else ("met" if max(medians) < TARGET_MS else "NOT met"), ""))
    say()
    print_table(
        rows,
        f"Median ms per request (in parentheses: mean CPU ms of the server's workers and its "
        f"PostgreSQL backends), {args.rounds} rounds, {args.count} work packages, pageSize "
        f"{args.page_size}; load average now "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}"
        + (" -- QUICK run" if args.quick else ""),
        headers=Row("request", *kinds, *[""] * (2 - len(kinds)), "target", "met", ""))


def main(argv=None):
    return run_bench(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
