"""Group commit: the SQLite writers of one process share a transaction and its commit.

With ``synchronous=FULL`` every commit costs an fdatasync of the WAL, and handing the writers'
turn (:class:`~affix.storage.database.WriterQueue`) from one thread to the next wakes a thread
that must then take the GIL back. Writers that arrive while a transaction is being prepared
therefore join it: the first to come is the group's leader; it waits for the writers' turn and
begins the transaction; every member then runs its own writes in it, one member at a time and
each in a SAVEPOINT of its own, on the leader's connection; when the last member is done the
leader commits once and wakes them all. A member's ``with`` block returns only after the commit
that holds its rows, so a request answered 200 is committed.

A member whose writes fail rolls back to its savepoint and raises at once in its own thread;
the others commit. When the commit fails, or SQLite ends the transaction itself (a full disk),
every member whose writes had succeeded gets :class:`GroupCommitFailed` and nothing of the group
is kept.
"""
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import peewee

if TYPE_CHECKING:
    from affix.storage.database import AffixSqliteDatabase, WriterQueue


class GroupCommitFailed(peewee.OperationalError):
    """The transaction a member's writes were part of did not commit: none of them are stored
    (a 503, like a database that cannot be reached)."""


class _Group:
    """The members of one transaction."""

    def __init__(self) -> None:
        # held by the member whose writes run now; the leader holds it until the transaction began
        self.baton = threading.Lock()
        self.baton.acquire()
        # the leader's, once its transaction began
        self.connection: sqlite3.Connection | None = None
        # set when the transaction began or could not: until then the members wait as long as
        # the leader waits for the writers' turn
        self.started = threading.Event()
        self.joined = 1
        self.finished = 0
        # why the transaction never began, or why it is lost (SQLite ended it, or its commit failed)
        self.failure: BaseException | None = None
        self.committed = threading.Event()  # set when the outcome is known, failure or not

    def in_transaction(self) -> bool:
        """Whether the group's transaction began and is still open on its connection."""
        return self.connection is not None and self.connection.in_transaction


class GroupCommit:
    """The group commits of one SQLite database in this process (see the module's docstring)."""

    def __init__(self, database: "AffixSqliteDatabase", writers: "WriterQueue") -> None:
        self._database = database
        self._writers = writers
        # guards _open and the counts of every group; notified whenever a member joins or ends.
        # Its lock is reentrant: _close takes it within _commit's hold.
        self._changes = threading.Condition(threading.RLock())
        self._open: _Group | None = None  # the group that writers arriving now join
        self._member_of = threading.local()  # per thread: the group whose writes it runs now

    @contextlib.contextmanager
    def member(self) -> Iterator[None]:
        """A write transaction shared with the writers that come meanwhile; nested in a member's
        writes, a savepoint of its own."""
        if getattr(self._member_of, "group", None) is not None:
            with self._database.atomic():
                yield
            return
        if self._database.in_transaction():
            # within a transaction of the thread's own (an atomic() block, not a write
            # transaction): a savepoint in it, with the writers' turn, as before group commit
            with self._writers.turn(), self._database.atomic():
                yield
            return
        if self._database.is_closed():
            self._database.cursor()  # raises peewee's own error for a connection not opened
        with self._changes:
            open_group = self._open
            leading = open_group is None
            if open_group is None:
                group = self._open = _Group()
            else:
                group = open_group
                group.joined += 1
            self._changes.notify_all()
        # what the member's writes ask peewee to run after their commit (after_commit)
        callbacks: list[Callable[[], object]] = []
        if leading:
            with self._leading(group), self._writing(group, callbacks):
                yield
        else:
            self._take_baton(group)
            with self._writing(group, callbacks):
                yield
            group.committed.wait()
            if group.failure is not None:
                raise _did_not_commit(group.failure)
        for callback in callbacks:
            callback()

    def wait_for_members(self, count: int, timeout: float) -> bool:
        """Whether the group open now has ``count`` members within ``timeout`` seconds (for
        observing the grouping from outside, as the tests do)."""
        with self._changes:
            return self._changes.wait_for(
                lambda: self._open is not None and self._open.joined >= count, timeout)

    @contextlib.contextmanager
    def _leading(self, group: _Group) -> Iterator[None]:
        with contextlib.ExitStack() as turn:
            try:
                turn.enter_context(self._writers.turn())
                # taking the write lock at the start: a deferred transaction that reads and then
                # writes would fail at once when another process committed in between
                self._database.execute_sql("BEGIN IMMEDIATE")
            except BaseException as error:
                self._close(group)
                group.failure = error
                group.committed.set()
                group.started.set()
                group.baton.release()  # to the members, which find the failure
                raise
            group.connection = self._database.connection()
            group.started.set()
            try:
                yield
            except BaseException:
                self._commit(group)  # the others' writes; the leader's own error goes on
                raise
            failure = self._commit(group)
        if failure is not None:
            raise _did_not_commit(failure)

    def _take_baton(self, group: _Group) -> None:
        group.started.wait()
        if not group.baton.acquire(timeout=self._writers.timeout):
            with self._changes:
                group.joined -= 1
                self._changes.notify_all()
            raise self._writers.timed_out()
        try:
            self._notice_a_lost_transaction(group)
        except BaseException:
            self._end_turn(group)
            raise
        if group.failure is not None:
            self._end_turn(group)
            raise _did_not_commit(group.failure)

    @contextlib.contextmanager
    def _writing(self, group: _Group,
                 callbacks: list[Callable[[], object]]) -> Iterator[None]:
        """The member's writes, on the group's connection, in a savepoint of their own; what
        they register with after_commit goes to ``callbacks``, kept only if they succeed."""
        state = self._database._state
        own = (state.conn, state.closed, state.transactions, state.commit_callbacks)
        try:
            state.conn, state.closed, state.transactions = group.connection, False, []
            state.commit_callbacks = callbacks
            savepoint = self._database.savepoint()
            # atomic() blocks within the member's writes see a transaction and nest as savepoints
            self._database.push_transaction(savepoint)
            self._member_of.group = group
            savepoint.__enter__()
            try:
                yield
                savepoint.commit(begin=False)
            except BaseException as error:
                callbacks.clear()
                self._undo(group, savepoint, error)
                raise
        finally:
            self._member_of.group = None
            state.conn, state.closed, state.transactions, state.commit_callbacks = own
            self._end_turn(group)

    def _undo(self, group: _Group, savepoint: peewee._savepoint, error: BaseException) -> None:
        """Roll back one member's writes; when that fails, or SQLite already ended the whole
        transaction (it does on a full disk), the group's transaction is lost."""
        try:
            savepoint.rollback(begin=False)
            savepoint.commit(begin=False)
        except peewee.DatabaseError:
            group.failure = group.failure or error
            return
        if not group.in_transaction():
            group.failure = group.failure or error

    @staticmethod
    def _notice_a_lost_transaction(group: _Group) -> None:
        """SQLite may end the transaction under a member that went on after a failed statement
        (a full disk): later writes would run outside it, each committed on its own."""
        if group.failure is None and not group.in_transaction():
            group.failure = peewee.OperationalError("SQLite ended the group's transaction")

    def _end_turn(self, group: _Group) -> None:
        with self._changes:
            group.finished += 1
            self._changes.notify_all()
        group.baton.release()

    def _close(self, group: _Group) -> None:
        """No member joins ``group`` any more: the next writer leads a group of its own."""
        with self._changes:
            if self._open is group:
                self._open = None

    def _commit(self, group: _Group) -> BaseException | None:
        """Wait for every member's writes, commit them once and wake the members; the failure
        of the commit, or None. Anything but a database's error (an interrupt while waiting,
        an error of the driver's) is raised after the members were told their writes are lost.
        """
        try:
            try:
                # closed first: a writer that came later would find its writes outside any
                # transaction, or (were this wait interrupted) join a group that never ends
                self._close(group)
                self._await_members(group)
                self._notice_a_lost_transaction(group)
                if group.failure is None:
                    self._database.execute_sql("COMMIT")
            except BaseException as error:
                group.failure = group.failure or error
                if not isinstance(error, peewee.DatabaseError):
                    # the members still writing do so on this connection: roll back after them
                    self._await_members(group)
                    raise
            finally:
                if group.failure is not None and group.in_transaction():
                    self._database.execute_sql("ROLLBACK")
        finally:
            group.committed.set()
        return group.failure

    def _await_members(self, group: _Group) -> None:
        with self._changes:
            self._changes.wait_for(lambda: group.finished >= group.joined)


def _did_not_commit(failure: BaseException) -> GroupCommitFailed:
    error = GroupCommitFailed(f"the group's transaction did not commit: {failure}")
    error.__cause__ = failure
    return error
