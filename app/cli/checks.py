"""What ``affix check`` tells an operator, and what ``affix serve`` makes sure of before it
starts: each part affix needs, looked at for real, one line each.

A check answers the line of a part that works, or raises :class:`CheckFailed` with the reason.
``serve`` runs the same checks; it only warns of the services outside affix (clamd, webhook
receivers): at boot they may come up after affix, and an upload service that refused to start
for them would be down for a reason that fixes itself.
"""
import contextlib
import os
import socket
import urllib.parse

import peewee

from affix.app import database_exists
from affix.plugins.clamav import ScannerUnavailable
from affix.plugins.manager import PluginError
from affix.storage.blob_store import StorageError
from affix.storage.database import open_database, release_connections
from affix.storage.migrations import LATEST_VERSION, MigrationError, schema_version

# the parts whose failure serve reports as a warning and starts anyway (see above)
OUTSIDE_SERVICES = ("clamd", "webhooks")
# what the line of a part says when affix does not use it (its check answers None)
OFF = {"clamd": "virus scanning is off (AFFIX_SCAN_MODE)"}


class CheckFailed(Exception):
    """A part affix needs does not work; the message is the part's one line."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part


def database_shown(url: str) -> str:
    """The database's URL without its password."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def unreachable(url: str, error: Exception) -> str:
    """Why the database at ``url`` could not be reached: the driver's first line."""
    return f"cannot reach {database_shown(url)}: {_first_line(error)}"


def no_database(settings, environ) -> str:
    """Where a command looked for the database it did not find, and how to point it
    elsewhere; never the URL's password."""
    source = settings.config_file
    from_file = set() if source is None else source.variables
    if settings.database_url.startswith("sqlite:///"):
        where = settings.database_url.removeprefix("sqlite:///")
        if "AFFIX_DATABASE_URL" in environ:
            how = "from AFFIX_DATABASE_URL"
        elif "AFFIX_DATABASE_URL" in from_file:
            how = f"database_url of {source.path}"
        elif environ.get("AFFIX_DATA_DIR"):
            how = f"AFFIX_DATA_DIR={environ['AFFIX_DATA_DIR']}"
        elif "AFFIX_DATA_DIR" in from_file:
            how = f"data_dir of {source.path}"
        else:
            how = f"AFFIX_DATA_DIR unset: ./var of {os.getcwd()}"
        found = f"no database at {where} ({how})"
    else:
        url = urllib.parse.urlsplit(settings.database_url)
        named_by = ("AFFIX_DATABASE_URL" if "AFFIX_DATABASE_URL" not in from_file
                    else f"database_url of {source.path}")
        found = f"no affix tables in the database {url.hostname}{url.path} of {named_by}"
    return (f"{found}: run affix migrate (or affix serve) there first, or set AFFIX_DATA_DIR "
            "or AFFIX_DATABASE_URL (or data_dir or database_url in affix.toml) to the one "
            "affix serve uses")


def check_settings(services, environ, serving):
    return f"data folder {services.settings.data_dir}"


def check_plugins(services, environ, serving):
    try:
        listing = services.plugin_manager.listing()
    except PluginError as error:
        raise CheckFailed("plugins", str(error)) from None
    return ", ".join(name for name, *_ in listing)


def check_database(services, environ, serving):
    """serve makes the database, or brings it up to date (that is its job); any other command
    only looks, and makes nothing."""
    settings = services.settings
    shown = database_shown(settings.database_url)
    try:
        with _unreachable_fails(settings.database_url):
            if serving:
                database = services.catalog.database
            elif not database_exists(settings):
                raise CheckFailed("database", no_database(settings, environ))
            else:
                database = open_database(settings.database_url)
            version = _in_connection(database, schema_version)
    except peewee.DatabaseError as error:
        # reached, and not a database: a file of something else at the SQLite file's path
        raise CheckFailed("database", f"cannot read {shown}: {_first_line(error)}") from None
    except MigrationError as error:
        raise CheckFailed("database", f"{shown}: {error}") from None
    if version > LATEST_VERSION:
        raise CheckFailed("database", f"{shown} is at migration {version}, newer than this "
                                      f"affix knows ({LATEST_VERSION}): upgrade affix")
    if version < LATEST_VERSION:
        raise CheckFailed("database", f"{shown} is at migration {version}, this affix needs "
                                      f"{LATEST_VERSION}: run affix migrate")
    return f"{shown} at migration {version}"


def reach_database_server(services, environ, serving):
    """A connection to the database server, made and closed (it makes nothing there); nothing
    for SQLite, whose file is the database that serve makes."""
    url = services.settings.database_url
    if not url.startswith("sqlite:"):
        with _unreachable_fails(url):
            _in_connection(open_database(url), lambda database: None)
    return None


@contextlib.contextmanager
def _unreachable_fails(url):
    """A database at ``url`` that cannot be reached fails the check, in one line."""
    try:
        yield
    except (peewee.OperationalError, peewee.InterfaceError) as error:
        raise CheckFailed("database", unreachable(url, error)) from None


def _in_connection(database, read):
    """``read(database)`` in a connection; every connection of the pool closed after."""
    try:
        with database.connection_context():
            return read(database)
    finally:
        release_connections(database)


def check_store(services, environ, serving):
    url = services.settings.storage_url
    try:
        store = services.blob_store
        store.check_reachable()
        store.probe()
    except StorageError as error:
        raise CheckFailed("store", f"{url}: {error}") from None
    except OSError as error:
        # the folder could not even be made
        raise CheckFailed("store", f"{url}: cannot make {error.filename}: {error.strerror}"
                          ) from None
    kind = "object" if url.startswith("s3://") else "file"
    return f"{url}: a probe {kind} written and removed"


def check_clamd(services, environ, serving):
    scan = services.settings.scan
    if not scan.enabled:
        return None
    try:
        version = services.scanner.version()
    except ScannerUnavailable as error:
        raise CheckFailed("clamd", str(error)) from None
    return f"{scan.clamd} answers: {version}"


def check_webhooks(services, environ, serving):
    catalog = services.catalog
    try:
        with catalog.database.connection_context():
            receivers = services.outbox.receivers()
    finally:
        # serve forks its workers after the checks: none may inherit a pooled connection
        release_connections(catalog.database)
    # one look-up a host, named by its first subscription
    hosts: dict[str, int] = {}
    for subscription_id, url in receivers:
        hosts.setdefault(urllib.parse.urlsplit(url).hostname, subscription_id)
    for host, subscription_id in hosts.items():
        try:
            socket.getaddrinfo(host, None)
        # a label longer than DNS allows fails in Python's IDNA encoding, before any look-up
        except (OSError, UnicodeError) as error:
            raise CheckFailed("webhooks", f"the host {host!r} of webhook {subscription_id} "
                                          f"does not resolve: {_first_line(error)}") from None
    if not hosts:
        return "no subscriptions"
    return f"the receivers' hosts resolve: {', '.join(hosts)}"


def run_checks(services, environ, out, err, *, serving=False):
    """Check each part, in order, printing its line on ``out`` (not when ``serving``); raise
    :class:`CheckFailed` at the first that fails.

    serve makes nothing before the store is known usable: a start refused for a missing bucket
    leaves no database whose admin key scrolled by unseen; and it makes no blob folder before
    a database server answers. Any other command looks at the database before the store, so
    that, run from the wrong folder, it makes no blob folder."""
    database_and_store = ((("database", reach_database_server), ("store", check_store),
                           ("database", check_database)) if serving
                          else (("database", check_database), ("store", check_store)))
    for part, check in (("settings", check_settings), ("plugins", check_plugins),
                        *database_and_store, ("clamd", check_clamd),
                        ("webhooks", check_webhooks)):
        try:
            detail = check(services, environ, serving)
        except CheckFailed as failure:
            if serving and failure.part in OUTSIDE_SERVICES:
                print(f"affix: warning: {failure}", file=err, flush=True)
                continue
            raise
        if not serving:
            status, detail = ("ok", detail) if detail is not None else ("off", OFF[part])
            print(f"{status:<4}{part:<10}{detail}", file=out)
