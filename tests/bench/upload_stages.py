"""What each stage of a 4 KiB upload costs in CPU, found by subtraction: the same upload through
affix's WSGI app with one stage turned off at a time, in one process (no server, no clients).

    python -m tests.bench.upload_stages                  # 20 rounds of 200 uploads each way
    python -m tests.bench.upload_stages --rounds 4 --uploads 50

The configurations, each an app of its own on its own data folder (``--tmpdir``, tmpfs by
default, so that no disk's sync is in the figures):

- ``full``: affix as ``affix serve`` composes it;
- ``no sniffing``: a sniffer that answers application/octet-stream without libmagic;
- ``no key lookup``: the API key's user found once and remembered, no query per request;
- ``no row``: no transaction and no row, the attachment only made in memory;
- ``no blob``: a blob store that keeps no bytes (no file made, written, renamed or synced).

Rounds rotate which goes first; the figures are the medians of the CPU ms per upload and of the
per-round differences to ``full``: what the stage costs.
"""
import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from affix import create_app
from affix.app.composition import compose
from affix.app.settings import Settings
from affix.app.testing import upload_form
from affix.app.uploads.content_types import OCTET_STREAM, Sniffed
from affix.storage.blob_store import new_storage_key
from tests.bench.operations_cpu import bench_user_headers, post_upload, upload_cpu_ms


class ConstantSniffer:
    def sniff(self, head):
        return Sniffed(OCTET_STREAM, None)


class NoBlob:
    """A staged blob that keeps nothing."""

    def write(self, data):
        pass

    def commit(self):
        # a key of the store's form, as the row's storage key must be unique
        return new_storage_key()

    def discard(self):
        pass


def without_blobs(blob_store):
    blob_store.stage = NoBlob
    return blob_store


def without_key_lookup(catalog):
    lookup = catalog.user_of_key
    remembered = {}

    def user_of_key(key_hash):
        if key_hash not in remembered:
            remembered[key_hash] = lookup(key_hash)
        return remembered[key_hash]
    catalog.user_of_key = user_of_key
    return catalog


def without_rows(catalog):
    catalog.write_transaction = contextlib.nullcontext
    catalog.add_attachment = lambda **values: catalog.Attachment(id=1, **values)
    return catalog


def make_app(root, name, change):
    settings = Settings.for_data_dir(root / name)
    headers = bench_user_headers(settings)
    services = compose(settings)
    change(services)
    return create_app(services=services), headers


CONFIGURATIONS = {
    "full": lambda services: None,
    "no sniffing": lambda services: setattr(services, "sniffer", ConstantSniffer()),
    "no key lookup": lambda services: without_key_lookup(services.catalog),
    "no row": lambda services: without_rows(services.catalog),
    "no blob": lambda services: without_blobs(services.blob_store),
}


def run(args, root):
    apps = {name: make_app(root, name.replace(" ", "-"), change)
            for name, change in CONFIGURATIONS.items()}
    body = upload_form("bench.bin", os.urandom(4096))
    for app, headers in apps.values():
        post_upload(app, headers, body)
        upload_cpu_ms(app, headers, body, 20)
    cpu = {name: [] for name in apps}
    names = list(apps)
    for number in range(args.rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            app, headers = apps[name]
            cpu[name].append(upload_cpu_ms(app, headers, body, args.uploads))
    print(f"CPU ms per 4 KiB upload in process, median of {args.rounds} rounds of "
          f"{args.uploads} (load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}):")
    print("| configuration | CPU ms per upload | the stage costs, ms | share of full |")
    print("| --- | --- | --- | --- |")
    full = statistics.median(cpu["full"])
    print(f"| full | {full:.3f} | | |")
    for name in names[1:]:
        saved = statistics.median(
            [whole - part for whole, part in zip(cpu["full"], cpu[name])])
        print(f"| {name} | {statistics.median(cpu[name]):.3f} | {saved:.3f} | "
              f"{saved / full:.0%} |")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.upload_stages",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--uploads", type=int, default=200,
                        help="4 KiB uploads per configuration and round (default 200)")
    parser.add_argument("--tmpdir", default="/dev/shm",
                        help="where the data folders go (default %(default)s)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="affix-bench-upload-stages-", dir=args.tmpdir))
    try:
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
