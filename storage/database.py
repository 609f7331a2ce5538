"""Opening the metadata database from a URL."""
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TypedDict, cast

import peewee
from playhouse.db_url import connect, parse
from playhouse.pool import PooledDatabase, PooledSqliteDatabase

from affix.storage.group_commit import GroupCommit

# synchronous=FULL makes every commit durable (an upload answered 200 survives power loss);
# busy_timeout makes concurrent writers wait instead of failing at once.
BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS: dict[str, str | int] = {
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": BUSY_TIMEOUT_MS,
}
# How long a writer waits for its turn, SQLite's busy_timeout included: the same bound
WRITE_WAIT_SECONDS = BUSY_TIMEOUT_MS / 1000
# Attempts at entering WAL before giving up: each failed one has waited for the connection that
# was converting the file, so the next finds it converted.
WAL_ATTEMPTS = 3


class WriteLockTimeout(peewee.OperationalError):
    """A writer waited longer than its queue allows: the database is locked too long (a 503,
    like any other database that cannot be reached)."""


class _FileLock:
    """``flock`` of a file, taken within a time limit.

    ``flock`` waits without a limit, so a turn that may have to wait is taken by a thread of
    its own while the caller waits for it with one. A caller that gives up leaves that thread
    behind: the lock it takes later goes to the next caller of this process, or, when nobody
    came for it meanwhile, straight back.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._taking: threading.Event | None = None  # set once the thread in flight took the lock
        self._wanted = False

    def acquire(self, fd: int, timeout: float) -> bool:
        with self._mutex:
            if self._taking is None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pass
                self._taking = threading.Event()
                # the thread locks through a descriptor of its own for the same open file: a
                # queue closed while it waits cannot leave it unlocking whatever file reuses
                # the number (its own lock file reopened, in the middle of another's turn)
                threading.Thread(target=self._take, args=(os.dup(fd), self._taking),
                                 daemon=True, name="affix-writers-flock").start()
            taking = self._taking
            self._wanted = True
        taking.wait(timeout)
        with self._mutex:
            if taking.is_set():
                self._taking = None
                return True
            self._wanted = False
            return False

    def _take(self, fd: int, taking: threading.Event) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._mutex:
                if self._wanted:
                    # the lock belongs to the open file, which the queue's descriptor keeps
                    taking.set()
                    return
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._taking = None
        finally:
            os.close(fd)


class WriterQueue:
    """The writers of one SQLite file, waiting their turn in a queue rather than in SQLite.

    SQLite makes a writer that finds the file locked sleep and try again, up to 100 ms a time,
    so under load a commit could wait most of a second after the lock was free. Here the
    threads of one process queue on a lock, and one thread of each process on ``flock`` of a
    file beside the database, which the kernel hands over the moment it is released. A writer
    waits at most ``timeout`` seconds in all, then gives up with :class:`WriteLockTimeout`.
    The threads that queue here are the leaders of group commits
    (:mod:`affix.storage.group_commit`), each taking the turn for the writers of its group.
    """

    def __init__(self, database_path: str | os.PathLike[str], timeout: float | None = None) -> None:
        self.lock_path = f"{database_path}-writers"
        self.timeout = WRITE_WAIT_SECONDS if timeout is None else timeout
        self._threads = threading.RLock()
        self._depth = 0  # transactions nest; only the outermost takes and gives the file lock
        self._file_lock = _FileLock()
        self._lock_fd: int | None = None
        self._lock_fd_pid: int | None = None
        self._close_lock_fd: Callable[[], object] | None = None

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            raise self.timed_out()
        try:
            outermost = self._depth == 0
            if outermost:
                fd = self._fd()
                if not self._file_lock.acquire(fd, max(deadline - time.monotonic(), 0)):
                    raise self.timed_out()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if outermost:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def timed_out(self) -> WriteLockTimeout:
        """The error of a writer that waited its longest for its turn."""
        return WriteLockTimeout(f"waited {self.timeout} s for the database's write lock")

    def close(self) -> None:
        with self._threads:
            if self._close_lock_fd is not None:
                self._close_lock_fd()
            self._lock_fd = self._lock_fd_pid = self._close_lock_fd = None

    def _fd(self) -> int:
        # a process forked from this one (gunicorn --preload) shares the open file and so the
        # lock: each process opens its own (a closed queue has neither descriptor nor pid)
        if self._lock_fd is None or self._lock_fd_pid != os.getpid():
            self.close()
            self._lock_fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
            self._lock_fd_pid = os.getpid()
            # a turn a thread of the parent was waiting for is none of this process's
            self._file_lock = _FileLock()
            # closed with the queue when it goes, or at close_all()
            self._close_lock_fd = weakref.finalize(self, os.close, self._lock_fd)
        return self._lock_fd


# playhouse has no type information: its classes are Any to mypy
class AffixSqliteDatabase(PooledSqliteDatabase):  # type: ignore[misc]
    """Pooled SQLite whose connections all work in WAL mode, which lets readers go on while an
    upload commits, whose writers queue (:class:`WriterQueue`), and whose writers of one process
    share their transactions (:class:`~affix.storage.group_commit.GroupCommit`)."""

    def __init__(self, database: str, *, write_wait_seconds: float = WRITE_WAIT_SECONDS,
                 **kwargs: object) -> None:
        super().__init__(database, **kwargs)
        self.writers = WriterQueue(database, timeout=write_wait_seconds)
        self.group_commit = GroupCommit(self, self.writers)

    def _set_pragmas(self, conn: sqlite3.Connection) -> None:
        super()._set_pragmas(conn)
        enter_wal(conn)

    def close_all(self) -> None:
        super().close_all()
        self.writers.close()


def enter_wal(conn: sqlite3.Connection) -> None:
    """Put the database file in WAL mode (it stays so; later connections find it done).

    Two connections converting a new file at once deadlock, and SQLite fails one of them at
    once, busy_timeout or not ("database is locked"). The loser waits for the winner's
    write lock with BEGIN IMMEDIATE, which does honour busy_timeout, and tries again.
    """
    for attempt in range(1, WAL_ATTEMPTS + 1):
        try:
            conn.execute("PRAGMA journal_mode = wal").fetchall()
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or attempt == WAL_ATTEMPTS:
                raise
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")


class ConnectOptions(TypedDict, total=False):
    """What affix passes to playhouse's pooled databases besides the URL's parts."""

    autoconnect: bool
    max_connections: int | None
    stale_timeout: int
    check_same_thread: bool


# Opening an SQLite connection and setting its pragmas costs about 3.5 ms here, a third of a
# small upload's CPU: connections are pooled, as many as there are threads.
# A pooled connection moves between threads, never used by two at once: sqlite3's
# same-thread check does not apply.
SQLITE_POOL: ConnectOptions = {"max_connections": None, "stale_timeout": 600,
                               "check_same_thread": False}

# A PostgreSQL connection costs a process on the server and round trips to open: pooled too,
# one per thread. One idle for 5 minutes is replaced rather than reused: firewalls and servers
# drop idle connections, and a dropped one would fail the request that picks it up.
POSTGRES_POOL: ConnectOptions = {"max_connections": None, "stale_timeout": 300}
POSTGRES_SCHEMES = ("postgres:", "postgresql:")
# affix is installed from a clone, not from PyPI: its extras are named by the clone's path
MISSING_PSYCOPG2 = ("PostgreSQL needs psycopg2: pip install psycopg2-binary (or, in affix's "
                    "folder, pip install '.[postgres]')")


def open_database(url: str, *, write_wait_seconds: float = WRITE_WAIT_SECONDS
                  ) -> peewee.Database:
    """A peewee database for ``url`` that connects only when asked to; on SQLite, a writer
    waits at most ``write_wait_seconds`` for its turn.

    ``autoconnect=False`` makes a query outside a request's connection fail loudly instead of
    silently opening a connection that nobody closes.
    """
    params: ConnectOptions = {"autoconnect": False}
    if url.startswith("sqlite:"):
        params.update(SQLITE_POOL)
        return AffixSqliteDatabase(**parse(url), **params, pragmas=SQLITE_PRAGMAS,
                                   write_wait_seconds=write_wait_seconds)
    if url.startswith(POSTGRES_SCHEMES):
        url = "postgresql+pool:" + url.split(":", 1)[1]
        params.update(POSTGRES_POOL)
    # playhouse has no type information; connect gives a peewee database
    return cast(peewee.Database, connect(url, **params))


def release_connections(database: peewee.Database) -> None:
    """Really close every connection a pool keeps, so that none outlives a fork (gunicorn
    --preload creates the app before forking its workers)."""
    if isinstance(database, PooledDatabase):
        database.close_all()
