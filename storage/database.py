"""Opening the metadata database from a URL."""
import sqlite3

from playhouse.db_url import connect, parse
from playhouse.pool import PooledDatabase, PooledSqliteDatabase

# synchronous=FULL makes every commit durable (an upload answered 200 survives power loss);
# busy_timeout makes concurrent writers wait instead of failing at once.
SQLITE_PRAGMAS = {
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}
# Attempts at entering WAL before giving up: each failed one has waited for the connection that
# was converting the file, so the next finds it converted.
WAL_ATTEMPTS = 3


class AffixSqliteDatabase(PooledSqliteDatabase):
    """Pooled SQLite whose connections all work in WAL mode, which lets readers go on while an
    upload commits."""

    def _set_pragmas(self, conn):
        super()._set_pragmas(conn)
        enter_wal(conn)


def enter_wal(conn):
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
            if "locked" not in str(error) or attempt == WAL_ATTEMPTS:
                raise
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")


# Opening an SQLite connection and setting its pragmas costs about 3.5 ms here, a third of a
# small upload's CPU: connections are pooled, as many as there are threads.
# A pooled connection moves between threads, never used by two at once: sqlite3's
# same-thread check does not apply.
SQLITE_POOL = {"max_connections": None, "stale_timeout": 600, "check_same_thread": False}

# A PostgreSQL connection costs a process on the server and round trips to open: pooled too,
# one per thread. One idle for 5 minutes is replaced rather than reused: firewalls and servers
# drop idle connections, and a dropped one would fail the request that picks it up.
POSTGRES_POOL = {"max_connections": None, "stale_timeout": 300}
POSTGRES_SCHEMES = ("postgres:", "postgresql:")


def open_database(url: str):
    """A peewee database for ``url`` that connects only when asked to.

    ``autoconnect=False`` makes a query outside a request's connection fail loudly instead of
    silently opening a connection that nobody closes.
    """
    params = {"autoconnect": False}
    if url.startswith("sqlite:"):
        return AffixSqliteDatabase(**parse(url), **params, **SQLITE_POOL, pragmas=SQLITE_PRAGMAS)
    if url.startswith(POSTGRES_SCHEMES):
        url = "postgresql+pool:" + url.split(":", 1)[1]
        params.update(POSTGRES_POOL)
    return connect(url, **params)


def release_connections(database):
    """Really close every connection a pool keeps, so that none outlives a fork (gunicorn
    --preload creates the app before forking its workers)."""
    if isinstance(database, PooledDatabase):
        database.close_all()
