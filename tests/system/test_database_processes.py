"""Processes sharing one database: SQLite writers in several processes and threads take turns
instead of meeting the lock, and two ``affix migrate`` commands started together both succeed.
(The database opened and migrated in process: unit/storage/test_database.py and
test_migrations.py.)"""
import multiprocessing
import subprocess
import sys
import threading

import peewee

from affix.storage.database import AffixSqliteDatabase
from affix.storage.migrations import migrate
from affix.storage.models import Catalog
from support.migrations import APPLIED_ALL, UP_TO_DATE
from support.processes import COMMAND_TIMEOUT, REPO_ROOT


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


def test_two_affix_migrate_commands_started_together_both_succeed(tmp_path, databases):
    environ = {"PATH": "/usr/bin:/bin", **databases.environ(tmp_path / "data")}
    migrate = [sys.executable, "-m", "affix.app.cli.commands", "migrate"]
    commands = [subprocess.Popen(migrate, cwd=REPO_ROOT,
                                 env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    outputs = [command.communicate(timeout=COMMAND_TIMEOUT) for command in commands]
    results = [(command.returncode, *output) for command, output in zip(commands, outputs)]

    # a failure shows what the command printed on stderr
    assert sorted(results) == sorted([(0, APPLIED_ALL, ""), (0, UP_TO_DATE, "")])
