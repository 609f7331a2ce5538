"""The database of every test: SQLite, or a new PostgreSQL database of its own.

``tests/conftest.py``'s ``databases`` fixture is parametrized over ``DATABASE_KINDS``: every test
that stores anything runs once on each (``[sqlite]`` and ``[postgresql]`` in its name).
"""
from pathlib import Path

from affix.app.settings import Settings

# every test that stores anything runs once on each
DATABASE_KINDS = ("sqlite", "postgresql")


class Databases:
    """The database of every data dir of one test: the embedded default (an SQLite file in the
    data dir), or a new PostgreSQL database of its own. Every affix a test makes, in process,
    through the CLI or as a server, takes its settings or its environment from here, so that
    the choice is made in one place."""

    def __init__(self, kind, postgres_server):
        self.kind = kind
        self.postgres_server = postgres_server
        self.urls = {}

    def url(self, data_dir) -> str | None:
        """The database URL for ``data_dir``; None for the embedded default."""
        if self.kind == "sqlite":
            return None
        data_dir = Path(data_dir).absolute()
        if data_dir not in self.urls:
            self.urls[data_dir] = self.postgres_server.create_database()
        return self.urls[data_dir]

    def settings(self, data_dir, **overrides) -> Settings:
        url = self.url(data_dir)
        if url is not None:
            overrides.setdefault("database_url", url)
        return Settings.for_data_dir(data_dir, **overrides)

    def environ(self, data_dir, **variables) -> dict:
        """``AFFIX_*`` variables for a command or a server on ``data_dir``."""
        environ = {"AFFIX_DATA_DIR": str(data_dir), **variables}
        url = self.url(data_dir)
        if url is not None:
            environ.setdefault("AFFIX_DATABASE_URL", url)
        return environ

    def drop(self):
        for url in self.urls.values():
            self.postgres_server.drop_later(url)
