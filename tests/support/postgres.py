"""Throwaway databases on a PostgreSQL server, for tests.

The server is one that CI (``.ci/run``) or the developer started; its URL, with a user allowed
to create databases, is in ``AFFIX_TEST_POSTGRES_URL``, e.g.
``postgresql://postgres@127.0.0.1:5433/postgres``. Every database made here is new and empty.
"""
import os
import queue
import threading
import urllib.parse
import uuid

import psycopg2

SERVER_URL_VARIABLE = "AFFIX_TEST_POSTGRES_URL"


class PostgresServer:
    """Creates and drops databases on the server at ``url`` (a database URL; its own database
    is where the administrative connection goes)."""

    def __init__(self, url: str):
        self.url = url
        self.connection = None
        # the databases of finished tests, dropped by a thread of their own (see drop_later)
        self._to_drop: queue.Queue = queue.Queue()
        self._dropper: threading.Thread | None = None
        self._drop_failed: Exception | None = None

    @classmethod
    def from_environ(cls, environ=None) -> "PostgresServer | None":
        url = (os.environ if environ is None else environ).get(SERVER_URL_VARIABLE)
        return cls(url) if url else None

    def _execute(self, statement):
        if self.connection is None or self.connection.closed:
            self.connection = psycopg2.connect(self.url)
            # CREATE and DROP DATABASE refuse to run inside a transaction
            self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(statement)

    def create_database(self) -> str:
        """The URL of a new, empty database."""
        name = "affix_test_" + uuid.uuid4().hex
        # FILE_COPY: a copy of the tiny template0 is twice as fast as WAL_LOG, the default
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return self.database_url(name)

    def database_url(self, name: str) -> str:
        return urllib.parse.urlsplit(self.url)._replace(path="/" + name).geturl()

    def drop_database(self, url: str):
        """Drop the database of ``url``, closing whatever connections are still open on it."""
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_later(self, url: str):
        """Drop the database of ``url`` in a thread of its own: a test's teardown need not
        wait the tenth of a second a DROP DATABASE takes; :meth:`close` waits for them all."""
        if self._dropper is None:
            self._dropper = threading.Thread(target=self._drop_queued, daemon=True)
            self._dropper.start()
        self._to_drop.put(url)

    def _drop_queued(self):
        dropping = PostgresServer(self.url)
        try:
            while (url := self._to_drop.get()) is not None:
                dropping.drop_database(url)
        except Exception as failed:  # said by close(), in the test session's thread
            self._drop_failed = failed
        finally:
            dropping.close()

    def close(self):
        if self._dropper is not None:
            self._to_drop.put(None)
            self._dropper.join()
        if self.connection is not None:
            self.connection.close()
        if self._drop_failed is not None:
            raise self._drop_failed
