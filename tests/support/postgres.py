"""Throwaway databases on a PostgreSQL server, for tests.

The server is one that CI (``.ci/run``) or the developer started; its URL, with a user allowed
to create databases, is in ``AFFIX_TEST_POSTGRES_URL``, e.g.
``postgresql://postgres@127.0.0.1:5433/postgres``. Every database made here is new and empty.
"""
import os
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

    def close(self):
        if self.connection is not None:
            self.connection.close()
