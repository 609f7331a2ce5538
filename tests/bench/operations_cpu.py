"""The CPU a small upload costs with and without what operating affix adds, in one process: no
server, no clients, no scheduling between processes, so less noise than the served comparison
(tests/bench/operations.py) on a machine shared with other work.

    python -m tests.bench.operations_cpu                 # 20 rounds of 100 uploads each way
    python -m tests.bench.operations_cpu --rounds 4 --uploads 50

Two apps on their own SQLite database and blob folder, in three configurations: "plain" (no
metrics), "metrics" (metrics in prometheus_client's multiprocess mode, as under affix serve) and
"observed" (the same, and the JSON access line gunicorn's logger writes for each request, to a
file). Rounds rotate which goes first; the figures are the medians of the CPU per upload and of
the per-round ratios to plain, and the time the access line took on its own.
"""
import argparse
import datetime
import logging
import logging.config
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import falcon.testing

from affix import create_app
from affix.app import open_catalog
from affix.app.accounts.auth import issue_api_key
from affix.app.http.logs import AccessLogger, logging_config
from affix.app.metrics import use_multiprocess_folder
from affix.app.settings import Settings
from affix.app.testing import basic_auth, upload_form
from affix.storage.models import utc_now


class Sent:
    """What gunicorn's logger reads of a response: the bytes it sent."""
    sent = 700


def bench_user_headers(settings) -> dict:
    """The headers of a new admin's API key in ``settings``' database (made if need be)."""
    catalog = open_catalog(settings)
    with catalog.database.connection_context():
        user = catalog.User.create(login="bench", name="bench", admin=True)
        key = issue_api_key(catalog, user, utc_now())
    catalog.database.close()
    return {"Authorization": basic_auth(key)}


def make_app(root, name, metrics_folder):
    settings = Settings.for_data_dir(
        root / name, metrics_bind="127.0.0.1:9464" if metrics_folder else None)
    app = create_app(settings, metrics_folder=metrics_folder)
    return app, bench_user_headers(settings)


def access_logger(path):
    logging.config.dictConfig(logging_config("json", True))
    logger = AccessLogger.__new__(AccessLogger)
    logger.access_log = logging.getLogger("gunicorn.access")
    logger.access_log.handlers[0].setStream(open(path, "w"))
    return logger


def post_upload(app, headers, body, path="/api/v3/attachments") -> dict:
    """POST ``body`` (bytes, Content-Type) to ``path`` of the WSGI ``app``, called directly (no
    test client's work in the figures); the request's environ. Anything but 200 raises."""
    environ = falcon.testing.create_environ(
        path, method="POST", body=body[0], headers={**headers, "Content-Type": body[1]})
    statuses = []
    b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    if not statuses[0].startswith("200"):
        raise RuntimeError(f"an upload to {path} was answered {statuses[0]}")
    return environ


def upload_cpu_ms(app, headers, body, uploads, log=None, access_times=None) -> float:
    """CPU ms per upload of ``uploads`` uploads of ``body`` through ``app``."""
    started = time.process_time()
    for _ in range(uploads):
        environ = post_upload(app, headers, body)
        if log is not None:
            logged = time.process_time()
            log.access(Sent(), None, environ, datetime.timedelta(milliseconds=1))
            access_times.append(time.process_time() - logged)
    return (time.process_time() - started) / uploads * 1000


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.operations_cpu",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--uploads", type=int, default=100,
                        help="4 KiB uploads per app and round (default 100)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="affix-bench-operations-cpu-"))
    try:
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def run(args, root):
    metrics_folder = root / "metrics"
    use_multiprocess_folder(metrics_folder)
    apps = {"plain": make_app(root, "plain", None),
            "observed": make_app(root, "observed", metrics_folder)}
    log = access_logger(root / "access.log")
    body = upload_form("bench.bin", os.urandom(4096))
    access_times = []
    # (app, access logger) of each configuration; "metrics" is the observed app without the
    # access line, as with AFFIX_ACCESS_LOG=0
    configurations = {"plain": (apps["plain"], None), "metrics": (apps["observed"], None),
                      "observed": (apps["observed"], log)}
    for (app, headers), _ in configurations.values():
        upload_cpu_ms(app, headers, body, 20)
    cpu = {name: [] for name in configurations}
    names = list(configurations)
    for number in range(args.rounds):
        # each configuration first, second and third in turn
        for name in names[number % 3:] + names[:number % 3]:
            (app, headers), logger = configurations[name]
            cpu[name].append(upload_cpu_ms(app, headers, body, args.uploads, logger,
                                           access_times))
    print(f"CPU ms per 4 KiB upload, median of {args.rounds} rounds of {args.uploads} "
          f"(load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}):")
    print(f"  plain    {statistics.median(cpu['plain']):.3f}")
    for name in ("metrics", "observed"):
        ratios = [each / plain for each, plain in zip(cpu[name], cpu["plain"])]
        print(f"  {name:8} {statistics.median(cpu[name]):.3f}  / plain: median of the rounds' "
              f"ratios {statistics.median(ratios):.3f} (rounds {min(ratios):.3f} to "
              f"{max(ratios):.3f})")
    print(f"  the access line alone {statistics.median(access_times) * 1000:.3f}")


if __name__ == "__main__":
    sys.exit(main())
