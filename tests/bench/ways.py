"""Each way ``affix upload`` has into affix, side by side: a file (1 GiB by default) sent the
way ``--way`` forces, against affix storing in moto's S3 server and in its local folder, with
affix under gunicorn on loopback (two workers, four threads each, as the other benches).

    python -m tests.bench.ways                      # 1 GiB, three runs of each way
    python -m tests.bench.ways --size-mib 1024 256 --runs 1

For each store and way: MB/s (the file's bytes over the seconds from the command's start to
the attachment's answer, the median of the runs) and the CPU seconds affix's workers spent per
GiB of file (from /proc/<pid>/stat, user and system, the median of the runs). moto's own CPU
is not affix's, and not counted. A way the server does not offer (direct uploads with a local
folder) is named with the reason, and so is a way this client does not have. The figures go
to ``docs/_generated/ways.md`` (``--out``), a Markdown table with the date and the command,
which the guide on direct uploads in parts includes.
"""
import argparse
import datetime
import io
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from affix.app.client.uploads import DEFAULT_PARALLEL, upload_files
from affix.storage.s3 import s3_client
from tests.bench.direct_upload import written_file
from tests.bench.run import GiB, MiB, affix_server, cpu_seconds, say
from tests.bench.upload_client import client_environ
from tests.support.net import HOST
from tests.support.relays import CountingRelay
from tests.support.s3 import running_moto_server, s3_environ, s3_options

BUCKET = "affix-bench-ways"
TIMEOUT = 1800
OUT = Path(__file__).resolve().parents[2] / "docs" / "_generated" / "ways.md"
# (name in the table, --way, --parallel): tus in parallel is tus with partial uploads the
# server joins (concatenation)
WAYS_MEASURED = [
    ("multipart", "multipart", 1),
    ("tus", "tus", 1),
    ("tus parallel", "tus", DEFAULT_PARALLEL),
    ("direct", "direct", 1),
    ("direct parallel", "direct-parts", DEFAULT_PARALLEL),
]
DIRECT_WAYS = ("direct", "direct-parts")


class UploadFailed(Exception):
    """A way failed; the message is the client's reason."""


def upload_once(server, path, way, parallel, state_dir) -> tuple[float, float, int | None]:
    """(seconds, affix's worker CPU seconds, bytes the client sent to affix) of one ``affix
    upload --way way``; the attachment is deleted after, so that moto holds one file at a time.
    The bytes are counted by a relay in front of affix for the direct ways only (None for the
    others): the relay's copying would slow the ways whose every byte passes affix."""
    environ = client_environ(server, state_dir)
    out, err = io.StringIO(), io.StringIO()
    pids = server.worker_pids()
    cpu_before = cpu_seconds(pids)
    relay = CountingRelay((HOST, server.port)) if way in DIRECT_WAYS else None
    url = relay.url if relay is not None else f"http://{HOST}:{server.port}"
    started = time.perf_counter()
    try:
        status = upload_files([path], url, as_json=True, again=True, environ=environ, out=out,
                              err=err, way=way, parallel=parallel)
    finally:
        if relay is not None:
            relay.close()
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu_before
    if status != 0:
        raise UploadFailed(err.getvalue().splitlines()[0].rpartition(": ")[2])
    [result] = json.loads(out.getvalue())
    requests.delete(result["url"], headers=server.headers, timeout=TIMEOUT).raise_for_status()
    return seconds, cpu, None if relay is None else relay.counts()[0]


def measure_store(store, server, path, size, runs, state_dir) -> list:
    """(size, store, way, MB/s, CPU s/GiB, note) of each way."""
    rows = []
    for name, way, parallel in WAYS_MEASURED:
        if store == "local folder" and way in DIRECT_WAYS:
            rows.append((size, store, name, None, None, "not offered: bytes must pass affix"))
            say(f"{store}, {name}: skipped, a local folder takes no direct uploads")
            continue
        try:
            figures = [upload_once(server, path, way, parallel, state_dir)
                       for _ in range(runs)]
        except UploadFailed as failed:
            rows.append((size, store, name, None, None, f"failed: {failed}"))
            say(f"{store}, {name}: failed: {failed}")
            continue
        seconds = statistics.median(each[0] for each in figures)
        cpu = statistics.median(each[1] for each in figures)
        sent = max(each[2] or 0 for each in figures)
        note = "" if way not in DIRECT_WAYS else (
            f"sent to affix: {sent:,} bytes, {100 * sent / size:.3f} % of the file")
        rows.append((size, store, name, size / seconds / 1e6, cpu / (size / GiB), note))
        say(f"{store}, {name}: {size / seconds / 1e6:.1f} MB/s, affix CPU "
            f"{cpu / (size / GiB):.2f} s/GiB")
    return rows


def table(rows, runs, command) -> str:
    lines = [
        f"Measured {datetime.date.today().isoformat()} with `{command}`: the median of {runs} "
        f"run{'s' if runs > 1 else ''} of each way, affix under gunicorn (2 workers, 4 "
        f"threads) on loopback, {DEFAULT_PARALLEL} parts in flight for the parallel ways.",
        "",
        "| file | store | way | MB/s | affix CPU s/GiB | note |",
        "| ---: | --- | --- | ---: | ---: | --- |",
    ]
    for size, store, name, rate, cpu, note in rows:
        lines.append(f"| {size // MiB} MiB | {store} | {name} | "
                     f"{'' if rate is None else f'{rate:.1f}'} | "
                     f"{'' if cpu is None else f'{cpu:.2f}'} | {note} |")
    return "\n".join(lines) + "\n"


def measure_size(size, runs, root) -> list:
    """The rows of every store and way for a file of ``size`` bytes, in ``root``."""
    limits = {"AFFIX_TUS_MAX_SIZE": str(size)}
    path = root / "file.bin"
    written_file(path, size)
    rows = []
    with running_moto_server(root / "moto.log") as moto_url:
        s3_client(s3_options(moto_url)).create_bucket(Bucket=BUCKET)
        environ = {**s3_environ(moto_url), **limits, "AFFIX_STORAGE_URL": f"s3://{BUCKET}/blobs"}
        with affix_server(root / "s3", 2, 4, size, extra_environ=environ) as server:
            rows += measure_store("moto (S3)", server, path, size, runs, root / "c1")
    with affix_server(root / "local", 2, 4, size, extra_environ=limits) as server:
        rows += measure_store("local folder", server, path, size, runs, root / "c2")
    return rows


def run(args, command):
    rows = []
    for size_mib in args.size_mib:
        root = Path(tempfile.mkdtemp(prefix="affix-bench-ways-", dir=args.tmpdir))
        try:
            rows += measure_size(size_mib * MiB, args.runs, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table(rows, args.runs, command))
    say(f"written to {args.out}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.ways",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, nargs="+", default=[1024],
                        help="the file's size, one run of every way for each (default 1024)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--tmpdir", help="where the file and the servers' data go")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    run(args, shlex.join(["python", "-m", "tests.bench.ways", *argv]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
