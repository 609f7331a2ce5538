"""Opening the metadata database from a URL."""
from playhouse.db_url import connect
from playhouse.pool import PooledDatabase

# WAL lets readers work while one upload commits; synchronous=FULL makes every commit durable
# (an upload answered 200 survives power loss); busy_timeout makes concurrent writers wait instead
# of failing at once.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}


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
        url = "sqlite+pool:" + url[len("sqlite:"):]
        params.update(SQLITE_POOL, pragmas=SQLITE_PRAGMAS)
    elif url.startswith(POSTGRES_SCHEMES):
        url = "postgresql+pool:" + url.split(":", 1)[1]
        params.update(POSTGRES_POOL)
    return connect(url, **params)


def release_connections(database):
    """Really close every connection a pool keeps, so that none outlives a fork (gunicorn
    --preload creates the app before forking its workers)."""
    if isinstance(database, PooledDatabase):
        database.close_all()
