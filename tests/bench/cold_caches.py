"""What a 4 KiB upload costs in one process with the CPU's caches warm and cold: affix, affix with
a one-rule magic database, and the Falcon peer.

    python -m tests.bench.cold_caches            # about a minute
    python -m tests.bench.cold_caches --quick    # a smoke run

Each upload is a call of the WSGI app (no server, no other process, no test client), its data
on tmpfs (``--tmpfs-dir``). Before each one, a buffer of N MiB is copied (0: the caches as the
upload before left them), as a served worker's other work (its other requests, the other
worker, the clients) evicts what the upload touches; only the upload itself is timed (CPU,
``time.process_time``). The rounds rotate which goes first; the figures are medians of the
rounds. affix's second app loads a magic database of one
rule (``tests/bench/sniffing_served.py``), so that its figures are affix without libmagic's walk
of the system's database. The Falcon peer (``tests/bench/falcon_peer.py``) parses the form with
Falcon's own parser, writes and fsyncs the file and answers its size.
"""
import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from affix.app.testing import upload_form
from tests.bench.operations_cpu import make_app, post_upload
from tests.bench.run import cpu_per_call
from tests.bench.sniffing_served import one_rule_database

MiB = 1024 * 1024
EVICT_MIB = (0, 4, 16)


def falcon_peer(folder: Path):
    os.environ["BENCH_PEER_DIR"] = str(folder)
    from tests.bench.falcon_peer import app
    return app, "/upload", {}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cold_caches",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and uploads")
    parser.add_argument("--tmpfs-dir", default="/dev/shm",
                        help="a folder on tmpfs for the data (default %(default)s): syncs there "
                             "cost no CPU of the kernel's, so the figures compare the code")
    args = parser.parse_args(argv)
    rounds, uploads = (2, 40) if args.quick else (4, 150)

    with tempfile.TemporaryDirectory(prefix="affix-bench-cold-", dir=args.tmpfs_dir) as folder:
        root = Path(folder)
        affix_app, affix_headers = make_app(root, "affix", None)
        # libmagic reads MAGIC when a handle loads its database: the handle of the app made now
        # (one thread uploads, so its sniffer never needs a second)
        os.environ["MAGIC"] = str(one_rule_database(root))
        try:
            one_rule_app, one_rule_headers = make_app(root, "one-rule", None)
        finally:
            del os.environ["MAGIC"]
        (root / "peer").mkdir()
        peer_app, peer_path, peer_headers = falcon_peer(root / "peer")
        body = upload_form("bench.bin", os.urandom(4096))
        subjects = {
            "affix": (affix_app, "/api/v3/attachments", affix_headers),
            "affix, one-rule database": (one_rule_app, "/api/v3/attachments", one_rule_headers),
            "Falcon peer": (peer_app, peer_path, peer_headers),
        }
        evictions = {size: bytearray(os.urandom(size * MiB)) for size in EVICT_MIB}
        for app, path, headers in subjects.values():
            for _ in range(20):
                post_upload(app, headers, body, path)
        cpu = {(name, size): [] for name in subjects for size in EVICT_MIB}
        order = [(name, size) for name in subjects for size in EVICT_MIB]
        for number in range(rounds):
            shift = number % len(order)
            for name, size in order[shift:] + order[:shift]:
                app, path, headers = subjects[name]
                cpu[(name, size)].append(1000 * cpu_per_call(
                    lambda: post_upload(app, headers, body, path), uploads, evictions[size]))

    print(f"CPU ms per 4 KiB upload in one process, median of {rounds} rounds of {uploads} "
          f"(load average {' '.join(f'{value:.2f}' for value in os.getloadavg())})")
    print("| copied before each upload, MiB | "
          + " | ".join(subjects) + " | affix / Falcon peer | one-rule / Falcon peer |")
    print("|---" * (len(subjects) + 3) + "|")
    for size in EVICT_MIB:
        figures = {name: statistics.median(cpu[(name, size)]) for name in subjects}
        print(f"| {size} | " + " | ".join(f"{value:.3f}" for value in figures.values())
              + f" | {figures['affix'] / figures['Falcon peer']:.1f}"
              f" | {figures['affix, one-rule database'] / figures['Falcon peer']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
