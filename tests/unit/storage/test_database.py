"""Opening the metadata database: SQLite connections all end up in WAL mode, even when two
of them convert a new file at the same moment; writers in several processes and threads take
turns."""
import multiprocessing
import sqlite3
import threading

import peewee
import pytest

from affix.storage.database import AffixSqliteDatabase, enter_wal, open_database
from affix.storage.migrations import migrate
from affix.storage.models import Catalog


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


def write_rows(database, catalog, number, rows, failures):
    try:
        with database.connection_context():
            for row in range(rows):
                with catalog.write_transaction():
                    catalog.User.create(login=f"user-{number}-{row}", name="A writer")
    except peewee.OperationalError as error:  # reported by the caller's assertion
        failures.append(f"writer {number}: {error}")


def write_from_threads(database, catalog, first_number, threads, rows, failures):
    writing = [threading.Thread(target=write_rows,
                                args=(database, catalog, first_number + each, rows, failures))
               for each in range(threads)]
    for thread in writing:
        thread.start()
    for thread in writing:
        thread.join()


def write_from_child_process(database, catalog, first_number, threads, rows, outcome):
    failures = []
    write_from_threads(database, catalog, first_number, threads, rows, failures)
    outcome.put(failures)


@pytest.mark.system  # forks writer processes
def test_writers_in_several_processes_and_threads_take_turns_instead_of_meeting_the_lock(
        tmp_path):
    path = tmp_path / "affix.db"
    # busy_timeout 0: a writer that met another's lock in SQLite would fail at once
    database = AffixSqliteDatabase(str(path), timeout=0, pragmas={"busy_timeout": 0},
                                   max_connections=None, check_same_thread=False,
                                   autoconnect=False)
    migrate(database)
    catalog = Catalog(database)
    # the parent writes first, so its children inherit an open lock file (as gunicorn's
    # workers do with --preload) and must open their own
    failures = []
    write_rows(database, catalog, 0, 1, failures)
    database.close_idle()  # no SQLite connection crosses a fork; the lock file does
    fork = multiprocessing.get_context("fork")
    outcome = fork.Queue()
    processes, threads, rows = 2, 4, 25
    children = [fork.Process(target=write_from_child_process,
                             args=(database, catalog, 1 + each * threads, threads, rows, outcome))
                for each in range(processes)]
    for child in children:
        child.start()
    write_from_threads(database, catalog, 1 + processes * threads, threads, rows, failures)
    reported = [outcome.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)

    assert (failures, reported, [child.exitcode for child in children]) == (
        [], [[]] * processes, [0] * processes)
    with database.connection_context():
        assert catalog.User.select().count() == 1 + (processes + 1) * threads * rows
    database.close_all()
    assert (tmp_path / "affix.db-writers").read_bytes() == b""
