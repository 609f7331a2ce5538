"""Opening the metadata database from a URL."""
from playhouse.db_url import connect

# WAL lets readers work while one upload commits; synchronous=FULL makes every commit durable
# (an upload answered 200 survives power loss); busy_timeout makes concurrent writers wait instead
# of failing at once.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}


def open_database(url: str):
    """A peewee database for ``url`` that connects only when asked to.

    ``autoconnect=False`` makes a query outside a request's connection fail loudly instead of
    silently opening a connection that nobody closes.
    """
    params = {"autoconnect": False}
    if url.startswith("sqlite"):
        params["pragmas"] = SQLITE_PRAGMAS
    return connect(url, **params)
