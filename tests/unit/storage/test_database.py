"""Opening the metadata database: SQLite connections all end up in WAL mode, even when two
of them convert a new file at the same moment. (Writers in several processes and threads taking
turns: system/test_database_processes.py.)"""
import sqlite3
import threading

import pytest

from affix.storage.database import enter_wal, open_database


def journal_mode(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]


def test_an_sqlite_database_is_opened_in_wal_mode_with_its_pragmas(tmp_path):
    database = open_database(f"sqlite:///{tmp_path / 'affix.db'}")
    with database.connection_context():
        pragmas = [database.execute_sql(f"PRAGMA {name}").fetchone()[0]
                   for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]
    # synchronous 2 is FULL
    assert pragmas == ["wal", 2, 1, 10_000]
    assert journal_mode(tmp_path / "affix.db") == "wal"


def test_entering_wal_while_another_connection_writes_waits_for_it_and_succeeds(tmp_path):
    path = tmp_path / "affix.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    opening = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    statements = []
    waiting = threading.Event()

    def traced(statement):
        statements.append(statement)
        if statement == "BEGIN IMMEDIATE":
            waiting.set()

    opening.set_trace_callback(traced)
    failures = []

    def enter():
        try:
            enter_wal(opening)
        except sqlite3.Error as error:  # reported by the assertion below
            failures.append(error)

    entering = threading.Thread(target=enter)
    entering.start()
    # SQLite refused the conversion at once (a writer holds the lock, busy_timeout or not);
    # enter_wal now waits for the writer instead of failing
    assert waiting.wait(timeout=30)
    writer.execute("COMMIT")
    entering.join(timeout=30)

    assert failures == []
    assert statements == ["PRAGMA journal_mode = wal", "BEGIN IMMEDIATE", "ROLLBACK",
                          "PRAGMA journal_mode = wal"]
    assert journal_mode(path) == "wal"
    assert writer.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_a_database_that_stays_locked_is_reported_as_locked(tmp_path):
    path = tmp_path / "affix.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN EXCLUSIVE")
    # busy_timeout 0: the wait for the writer gives up at once, as it would after 10 s
    opening = sqlite3.connect(path, isolation_level=None, timeout=0)

    with pytest.raises(sqlite3.OperationalError, match="^database is locked$"):
        enter_wal(opening)
    writer.execute("ROLLBACK")
    assert journal_mode(path) == "delete"
