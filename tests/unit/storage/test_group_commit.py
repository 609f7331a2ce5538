"""Group commit (affix.storage.group_commit): the SQLite writers of a process that come at once
share one transaction and one commit; each member's writes are its own (a failure rolls back
only them), a failed commit fails every member and keeps nothing, and a member's block returns
only once its rows are committed. PostgreSQL keeps a transaction per writer.

That an upload answered 200 survives the whole server being SIGKILLed right after is held by
system/test_robustness.py (test_the_whole_server_killed_right_after_concurrent_uploads_...),
which has the harness for killing a real server.
"""
import fcntl
import os
import threading

import peewee
import pytest

from affix.app import open_catalog
from affix.storage.database import WriteLockTimeout
from affix.storage.group_commit import GroupCommitFailed
from support.waiting import CONDITION_TIMEOUT

only_sqlite = pytest.mark.sqlite_only("PostgreSQL has no group commit")


@pytest.fixture
def catalog(tmp_path, databases):
    catalog = open_catalog(databases.settings(tmp_path))
    yield catalog
    catalog.database.close_all()


@pytest.fixture
def observer(tmp_path, databases, catalog):
    """A second handle on the catalog's database, with connections of its own: it sees what
    is committed and nothing else."""
    observer = open_catalog(databases.settings(tmp_path))
    yield observer
    observer.database.close_all()


def committed_logins(observer) -> list:
    with observer.database.connection_context():
        return sorted(user.login for user in observer.User.select())


def add_user(catalog, login):
    catalog.User.create(login=login, name="A writer")


class Members:
    """Writers in threads of their own, made one group: the first (the leader) waits in its
    transaction, before its writes, until every other has joined; the others join while it
    waits. What each writer's block raised, and what was committed when it returned, are kept."""

    def __init__(self, catalog, observer, writes):
        self.catalog = catalog
        self.observer = observer
        self.writes = writes
        self.raised = [None] * len(writes)
        self.committed_on_return = [None] * len(writes)
        # every statement run on the leader's connection from its block on
        self.statements = []

    def run(self):
        group_commit = self.catalog.database.group_commit
        threads = [threading.Thread(target=self._write, args=(number,))
                   for number in range(len(self.writes))]
        threads[0].start()
        assert group_commit.wait_for_members(1, CONDITION_TIMEOUT)
        for thread in threads[1:]:
            thread.start()
        for thread in threads:
            thread.join(CONDITION_TIMEOUT)
            assert not thread.is_alive()
        return self

    def _write(self, number):
        database = self.catalog.database
        try:
            with database.connection_context():
                with self.catalog.write_transaction():
                    if number == 0:
                        database.connection().set_trace_callback(self.statements.append)
                        assert database.group_commit.wait_for_members(
                            len(self.writes), CONDITION_TIMEOUT)
                    self.writes[number]()
                self.committed_on_return[number] = committed_logins(self.observer)
                if number == 0:
                    database.connection().set_trace_callback(None)
        except Exception as error:  # reported by the test's assertions
            self.raised[number] = error


@only_sqlite
def test_writers_that_come_at_once_share_one_transaction_and_one_commit(catalog, observer):
    logins = [f"writer-{number}" for number in range(5)]
    members = Members(catalog, observer, [lambda login=login: add_user(catalog, login)
                                for login in logins]).run()

    assert members.raised == [None] * 5
    # each block returned after the commit that holds its row: all of them, at once
    assert members.committed_on_return == [logins] * 5
    # every member wrote on the leader's connection, in a savepoint of its own; one commit
    kinds = [statement.split()[0] for statement in members.statements]
    assert kinds == ["INSERT", "RELEASE"] + ["SAVEPOINT", "INSERT", "RELEASE"] * 4 + ["COMMIT"]
    assert committed_logins(observer) == logins


@pytest.mark.parametrize("failing", [0, 2], ids=["the leader", "a member"])
@only_sqlite
def test_a_member_whose_writes_fail_loses_only_them(catalog, observer, failing):
    with catalog.database.connection_context(), catalog.write_transaction():
        add_user(catalog, "taken")

    def write(number):
        add_user(catalog, f"writer-{number}")
        if number == failing:
            add_user(catalog, "taken")

    members = Members(catalog, observer, [lambda number=number: write(number)
                                for number in range(4)]).run()

    kept = sorted(["taken"] + [f"writer-{number}" for number in range(4) if number != failing])
    error = members.raised[failing]
    assert (type(error), str(error)) == (peewee.IntegrityError,
                                         "UNIQUE constraint failed: users.login")
    assert [raised for number, raised in enumerate(members.raised) if number != failing] == [
        None] * 3
    assert committed_logins(observer) == kept


@only_sqlite
def test_a_commit_that_fails_fails_every_member_and_keeps_nothing(catalog, observer):
    with catalog.database.connection_context(), catalog.write_transaction():
        add_user(catalog, "before")

    def dangling_key():
        # a reference checked at the commit, not at the insert: the commit itself fails
        catalog.database.execute_sql("PRAGMA defer_foreign_keys = ON")
        catalog.ApiKey.create(user=999_999, key_hash="0" * 64, created_at="2026-01-01")

    writes = [lambda number=number: add_user(catalog, f"writer-{number}") for number in range(4)]
    writes[1] = dangling_key
    members = Members(catalog, observer, writes).run()

    assert [(type(error), str(error)) for error in members.raised] == [
        (GroupCommitFailed, "the group's transaction did not commit: "
                            "FOREIGN KEY constraint failed")] * 4
    assert committed_logins(observer) == ["before"]
    with catalog.database.connection_context():
        assert catalog.ApiKey.select().count() == 0
        # the leader's connection went back to its pool out of any transaction: it writes again
        with catalog.write_transaction():
            add_user(catalog, "after")
    assert committed_logins(observer) == ["after", "before"]


@only_sqlite
def test_a_commit_that_fails_with_an_error_of_the_driver_fails_every_member(
        catalog, observer, monkeypatch):
    # a fault no real COMMIT is known to raise (peewee's InterfaceError is no DatabaseError),
    # so made by hand: nothing may pass it off as committed
    database = catalog.database
    execute_sql = database.execute_sql

    def commit_raising(sql, params=None):
        if sql == "COMMIT":
            raise peewee.InterfaceError("the driver gave up")
        return execute_sql(sql, params)

    monkeypatch.setattr(database, "execute_sql", commit_raising)
    members = Members(catalog, observer, [lambda number=number: add_user(catalog, f"w-{number}")
                                          for number in range(3)]).run()

    assert [(type(error), str(error)) for error in members.raised] == [
        (peewee.InterfaceError, "the driver gave up")] + [
        (GroupCommitFailed, "the group's transaction did not commit: the driver gave up")] * 2
    assert committed_logins(observer) == []


@only_sqlite
def test_what_a_member_runs_after_commit_runs_after_the_groups_commit_and_never_if_rolled_back(
        catalog, observer):
    with catalog.database.connection_context(), catalog.write_transaction():
        add_user(catalog, "taken")
    ran = []

    def write(number):
        add_user(catalog, f"writer-{number}")
        catalog.database.after_commit(
            lambda: ran.append((number, committed_logins(observer))))
        if number == 1:
            add_user(catalog, "taken")

    members = Members(catalog, observer, [lambda number=number: write(number)
                                          for number in range(3)]).run()

    assert [type(error) for error in members.raised] == [type(None), peewee.IntegrityError,
                                                         type(None)]
    everything = ["taken", "writer-0", "writer-2"]
    assert sorted(ran) == [(0, everything), (2, everything)]
    # nothing is left waiting on a thread for a later, unrelated commit
    with catalog.database.connection_context(), catalog.database.atomic():
        add_user(catalog, "later")
    assert sorted(number for number, _ in ran) == [0, 2]


class Interrupted(BaseException):
    """What a signal's handler raises in the thread it interrupts (KeyboardInterrupt would stop
    the test run)."""


@only_sqlite
def test_a_leader_interrupted_while_it_waits_for_its_members_leaves_no_group_behind(
        catalog, observer, monkeypatch):
    group_commit = catalog.database.group_commit
    await_members = group_commit._await_members
    interruptions = [Interrupted("a signal")]

    def interrupted_once(group):
        if interruptions:
            raise interruptions.pop()
        await_members(group)

    monkeypatch.setattr(group_commit, "_await_members", interrupted_once)
    outcomes = {}

    def write(name):
        try:
            with catalog.database.connection_context(), catalog.write_transaction():
                add_user(catalog, name)
                if name == "leader":
                    assert group_commit.wait_for_members(2, CONDITION_TIMEOUT)
            outcomes[name] = None
        except BaseException as error:  # reported by the assertion below
            outcomes[name] = error

    leader = threading.Thread(target=write, args=("leader",))
    leader.start()
    assert group_commit.wait_for_members(1, CONDITION_TIMEOUT)
    member = threading.Thread(target=write, args=("member",))
    member.start()
    for thread in (leader, member):
        thread.join(CONDITION_TIMEOUT)
        assert not thread.is_alive()

    assert {name: (type(error), str(error)) for name, error in outcomes.items()} == {
        "leader": (Interrupted, "a signal"),
        "member": (GroupCommitFailed, "the group's transaction did not commit: a signal"),
    }
    assert committed_logins(observer) == []
    # the next writer leads a group of its own instead of joining the one that never ended
    write("later")
    assert outcomes["later"] is None
    assert committed_logins(observer) == ["later"]


@only_sqlite
def test_write_transactions_nest_within_a_member_as_savepoints(catalog, observer):
    def write(number):
        add_user(catalog, f"outer-{number}")
        with pytest.raises(peewee.IntegrityError):
            with catalog.write_transaction():
                add_user(catalog, f"inner-{number}")
                add_user(catalog, f"outer-{number}")
        with catalog.write_transaction():
            add_user(catalog, f"second-{number}")

    members = Members(catalog, observer, [lambda number=number: write(number)
                                for number in range(3)]).run()

    assert members.raised == [None] * 3
    assert committed_logins(observer) == sorted(
        [f"outer-{number}" for number in range(3)] + [f"second-{number}" for number in range(3)])


@only_sqlite
def test_a_group_whose_leader_cannot_get_the_writers_turn_fails_every_member(catalog, observer):
    writers = catalog.database.writers
    writers.timeout = 0.5
    outcomes = {}

    def write(name):
        try:
            with catalog.database.connection_context(), catalog.write_transaction():
                add_user(catalog, name)
        except Exception as error:  # reported by the assertion below
            outcomes[name] = error

    # another process's writer holds the turn for longer than the leader waits
    holder = os.open(writers.lock_path, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        leader = threading.Thread(target=write, args=("leader",))
        leader.start()
        assert catalog.database.group_commit.wait_for_members(1, CONDITION_TIMEOUT)
        member = threading.Thread(target=write, args=("member",))
        member.start()
        assert catalog.database.group_commit.wait_for_members(2, CONDITION_TIMEOUT)
        leader.join(CONDITION_TIMEOUT)
        member.join(CONDITION_TIMEOUT)
    finally:
        os.close(holder)

    waited = "waited 0.5 s for the database's write lock"
    assert {name: (type(error), str(error)) for name, error in outcomes.items()} == {
        "leader": (WriteLockTimeout, waited),
        "member": (GroupCommitFailed, f"the group's transaction did not commit: {waited}"),
    }
    assert committed_logins(observer) == []
    write("later")
    assert committed_logins(observer) == ["later"]



def test_writers_in_many_threads_each_return_with_their_rows_committed(catalog, observer):
    """On both databases: on PostgreSQL each writer has a transaction of its own."""
    seen = {}

    def write(number):
        with catalog.database.connection_context():
            for row in range(5):
                login = f"writer-{number}-{row}"
                with catalog.write_transaction():
                    add_user(catalog, login)
                seen[login] = login in committed_logins(observer)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CONDITION_TIMEOUT)
        assert not thread.is_alive()

    logins = sorted(f"writer-{number}-{row}" for number in range(8) for row in range(5))
    assert seen == dict.fromkeys(logins, True)
    assert committed_logins(observer) == logins


@only_sqlite
def test_a_write_transaction_within_a_transaction_of_the_threads_own_nests_in_it(
        catalog, observer):
    database = catalog.database
    with database.connection_context():
        with database.atomic():
            add_user(catalog, "outer")
            with pytest.raises(peewee.IntegrityError):
                with catalog.write_transaction():
                    add_user(catalog, "inner")
                    add_user(catalog, "outer")
            with catalog.write_transaction():
                add_user(catalog, "second")
            assert committed_logins(observer) == []
    assert committed_logins(observer) == ["outer", "second"]
