"""What each piece of a durable 4 KiB upload costs in CPU, measured in this process.

    python -m tests.bench.stack

The pieces are those of the stack's floor (tests/bench/floor.py), each timed alone with
``time.process_time()`` (user and system time) over many repetitions, as the median of several
rounds: streaming-form-data parsing the two-part body of scenario 3 of tests/bench/run.py, the
baseline's write and fsync, the floor's durable commit of the blob, and the key lookup and the
insert with peewee and with sqlite3 alone. Nothing runs concurrently, so the figures are the
least each piece costs; under load they only grow.
"""
import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from streaming_form_data.targets import ValueTarget

from affix.app.accounts.auth import hash_api_key
from tests.bench import floor
from tests.bench.run import KiB, POOL_SIZE, Payload, Row, print_table

API_KEY = "bench"


def cpu_ms(action, repetitions, rounds) -> float:
    """Median over ``rounds`` of the CPU milliseconds one ``action()`` takes."""
    for _ in range(max(1, repetitions // 10)):
        action()
    per_round = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(repetitions):
            action()
        per_round.append((time.process_time() - started) / repetitions * 1000)
    return statistics.median(per_round)


def multipart_parse(payload):
    body = payload.body_bytes()
    # both parts kept in memory: the parse alone, without the file's write
    return lambda: floor.parse_body(payload.content_type, [body], ValueTarget(), ValueTarget())


def baseline_write(folder, payload):
    return lambda: payload.write_file(folder / os.urandom(16).hex())


def durable_commit(folder, content):
    def commit():
        staged = floor.StagedFile(folder)
        staged.on_data_received(content)
        staged.commit()
    return commit


def peewee_queries(catalog):
    key_hash = hash_api_key(API_KEY)

    def queries():
        catalog.knows(key_hash)
        catalog.record(file_name="a.bin", file_size=4 * KiB, md5="0" * 32, storage_key="0" * 32)
    return queries


def sqlite3_queries(folder, catalog):
    # the floor's file, tables and pragmas, through the standard library alone
    connection = sqlite3.connect(folder / floor.DATABASE_FILE, isolation_level=None)
    for name, value in floor.PRAGMAS.items():
        connection.execute(f"PRAGMA {name} = {value}")
    lookup = f"SELECT id FROM {catalog.Key._meta.table_name} WHERE key_hash = ?"
    insert = (f"INSERT INTO {catalog.Upload._meta.table_name} "
              "(file_name, file_size, md5, storage_key) VALUES (?, ?, ?, ?)")
    key_hash = hash_api_key(API_KEY)

    def queries():
        connection.execute(lookup, (key_hash,)).fetchone()
        connection.execute("BEGIN")
        connection.execute(insert, ("a.bin", 4 * KiB, "0" * 32, "0" * 32))
        connection.execute("COMMIT")
    return queries


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.stack",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=500,
                        help="repetitions per round (default 500)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--tmpdir", help="where the temporary folder goes (default: the "
                                         "system's; it should be a real disk, not tmpfs)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    payload = Payload(os.urandom(POOL_SIZE), 4 * KiB)
    content = b"".join(payload.file_chunks())
    root = Path(tempfile.mkdtemp(prefix="affix-bench-stack-", dir=args.tmpdir))
    try:
        folder = root / "floor"
        floor.prepare(folder, API_KEY)
        catalog = floor.FloorCatalog(folder)
        pieces = [
            ("streaming-form-data: parse the 2-part body", multipart_parse(payload)),
            ("the baseline's write and fsync", baseline_write(root, payload)),
            ("the floor's blob commit: write, fsync, rename, fsync folder",
             durable_commit(folder, content)),
            ("peewee: key lookup, insert, commit (synchronous=FULL)", peewee_queries(catalog)),
            ("sqlite3: the same two statements", sqlite3_queries(folder, catalog)),
        ]
        rows = [Row(label, f"{cpu_ms(action, args.repetitions, args.rounds):.2f}", "", "", "", "")
                for label, action in pieces]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(rows, f"CPU per 4 KiB upload, median of {args.rounds} rounds of "
                      f"{args.repetitions}; load average now "
                      f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}",
                headers=Row("piece", "CPU ms", "", "", "", ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
