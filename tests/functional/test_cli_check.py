"""``affix check`` (issue #25): one line a part, exit status 2 at the first that fails, with the
reason in its line; nothing made, nothing left behind. ``affix serve`` runs the same checks
before it prints a key or starts a worker. ``affix --version``."""
import importlib.metadata
import io
import socket
import threading
from pathlib import Path

import pytest

from affix.app.cli.commands import AffixServer, main
from affix.app.cli.listening import ADDRESS_TAKEN
from affix.app.settings import Settings
from affix.storage.database import open_database
from affix.storage.migrations import LATEST_VERSION
from support.cli import POINT_ELSEWHERE, affix, assert_refused, run_ok
from support.clamd import unreachable_clamd
from support.net import HOST, free_port

# a DNS label has at most 63 characters: Python refuses to look this one up, without the network
UNRESOLVABLE = "a" * 64 + ".example"


class NeverStarted:
    """Stands in for gunicorn, which a refused start never reaches."""

    def __init__(self, settings, options, metrics_folder=None):
        raise AssertionError("the server was started")


class Started:
    """Stands in for gunicorn: a start that goes on."""

    def __init__(self, settings, options, metrics_folder=None):
        pass

    def run(self):
        pass


def head(environ):
    """The lines of the parts checked before the database."""
    return (f"ok  settings  data folder {environ['AFFIX_DATA_DIR']}\n"
            "ok  plugins   builtin\n")


def database_line(environ):
    settings = Settings.from_environ(environ)
    return f"ok  database  {settings.database_url} at migration {LATEST_VERSION}\n"


def store_line(environ):
    return (f"ok  store     {Settings.from_environ(environ).storage_url}: a probe file written "
            "and removed\n")


def set_schema_version(environ, version):
    """The database as an affix of another version left it: its version table says so."""
    database = open_database(Settings.from_environ(environ).database_url)
    with database.connection_context():
        database.execute_sql(f'DELETE FROM "schema_version" WHERE "version" > {version}')
        if version > LATEST_VERSION:
            database.execute_sql(
                'INSERT INTO "schema_version" ("version", "description", "applied_at") '
                f"VALUES ({version}, 'from the future', CURRENT_TIMESTAMP)")


def test_check_says_ok_for_each_part_and_leaves_nothing(environ, tmp_path):
    assert run_ok(environ, "check") == (
        head(environ) + database_line(environ) + store_line(environ)
        + "off clamd     virus scanning is off (AFFIX_SCAN_MODE)\n"
        "ok  webhooks  no subscriptions\n")
    # the probe is gone from the store's staging, and nothing else was written there
    blobs = tmp_path / "data" / "blobs"
    assert [path.relative_to(blobs) for path in blobs.rglob("*")] == [Path(".staging")]


def test_check_on_a_database_never_made_names_affix_migrate_and_makes_nothing(
        tmp_path, databases, capsys):
    environ = databases.environ(tmp_path / "data")
    if databases.kind == "sqlite":
        looked = f"no database at {tmp_path}/data/affix.sqlite3 (AFFIX_DATA_DIR={tmp_path}/data)"
    else:
        looked = "no affix tables in the database"
    assert affix(environ, "check") == (2, head(environ))
    error = capsys.readouterr().err
    assert error.startswith(f"affix: error: database: {looked}")
    assert error.endswith(f": {POINT_ELSEWHERE}\n")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("version, reason", [
    (5, f"is at migration 5, this affix needs {LATEST_VERSION}: run affix migrate"),
    (99, f"is at migration 99, newer than this affix knows ({LATEST_VERSION}): upgrade affix"),
])
def test_check_on_a_database_of_another_version_says_which_and_migrates_nothing(
        environ, capsys, version, reason):
    set_schema_version(environ, version)
    url = Settings.from_environ(environ).database_url
    assert affix(environ, "check") == (2, head(environ))
    assert capsys.readouterr().err == f"affix: error: database: {url} {reason}\n"
    # the schema is as it was: check only looks
    database = open_database(url)
    with database.connection_context():
        assert database.execute_sql('SELECT MAX("version") FROM "schema_version"'
                                    ).fetchone() == (version,)


def test_a_database_server_that_does_not_answer_is_one_line(tmp_path, capsys):
    port = free_port()
    # the password is never shown
    environ = {"AFFIX_DATA_DIR": str(tmp_path / "data"),
               "AFFIX_DATABASE_URL": f"postgresql://affix:secret@{HOST}:{port}/affix"}
    reason = (f"cannot reach postgresql://affix@{HOST}:{port}/affix: connection to server at "
              f"\"{HOST}\", port {port} failed: Connection refused")
    assert affix(environ, "check") == (2, head(environ))
    assert capsys.readouterr().err == f"affix: error: database: {reason}\n"
    # every command that needs the database says the same, rather than a traceback
    assert_refused(capsys, environ, ["user", "list"], reason, status=2)
    # and serve stops at its database check, no key printed, no blob folder made
    out = io.StringIO()
    assert main(["serve"], environ=environ, out=out, server=NeverStarted) == 2
    assert (out.getvalue(), capsys.readouterr().err) == (
        "", f"affix: error: database: {reason}\n")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_setting_is_the_one_line_before_any_part(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert affix({"AFFIX_MAX_ATTACHMENT_SIZE": "5MB"}, "check") == (2, "")
    assert capsys.readouterr().err.startswith(
        "affix: error: AFFIX_MAX_ATTACHMENT_SIZE must be a size: ")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_database_is_one_line(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "affix.sqlite3").write_bytes(b"a note, not a database " * 100)
    environ = {"AFFIX_DATA_DIR": str(data)}
    assert affix(environ, "check") == (2, head(environ))
    assert capsys.readouterr().err == (
        f"affix: error: database: cannot read sqlite:///{data}/affix.sqlite3: file is not a "
        "database\n")
    assert (data / "affix.sqlite3").read_bytes() == b"a note, not a database " * 100


def test_a_store_that_is_no_folder_is_one_line(environ, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a folder")
    environ["AFFIX_STORAGE_URL"] = str(blocker)
    assert affix(environ, "check") == (2, head(environ) + database_line(environ))
    assert capsys.readouterr().err == (
        f"affix: error: store: {blocker}: cannot make {blocker}/.staging: Not a directory\n")
    assert blocker.read_bytes() == b"not a folder"


def test_clamd_that_does_not_answer_is_one_line(environ, tmp_path, capsys):
    address = unreachable_clamd(tmp_path)
    environ.update(AFFIX_SCAN_MODE="after", AFFIX_CLAMD=address)
    assert affix(environ, "check") == (
        2, head(environ) + database_line(environ) + store_line(environ))
    assert capsys.readouterr().err == (
        f"affix: error: clamd: clamd at {address} cannot be reached: [Errno 2] No such file or "
        "directory\n")


def test_something_else_than_clamd_at_its_address_is_one_line(environ, capsys):
    """AFFIX_CLAMD pointed at a web server: it answers, but not as clamd would."""
    with socket.create_server((HOST, 0)) as listener:
        address = "%s:%d" % listener.getsockname()

        def answer_as_a_web_server():
            connection, _ = listener.accept()
            with connection:
                connection.recv(64)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        web_server = threading.Thread(target=answer_as_a_web_server)
        web_server.start()
        environ.update(AFFIX_SCAN_MODE="after", AFFIX_CLAMD=address)
        assert affix(environ, "check") == (
            2, head(environ) + database_line(environ) + store_line(environ))
        web_server.join()
    assert capsys.readouterr().err == (
        f"affix: error: clamd: clamd at {address} answered 'HTTP/1.1 400 Bad Request\\r\\n"
        "Content-Length: 0' to VERSION: is that clamd?\n")


def test_each_webhook_receivers_host_must_resolve(environ, capsys):
    for url in (f"http://{HOST}:9/hook", "http://localhost:9/hook", f"http://{HOST}:9/other"):
        run_ok(environ, "webhooks", "add", url)
    assert run_ok(environ, "check").endswith(
        f"ok  webhooks  the receivers' hosts resolve: {HOST}, localhost\n")

    run_ok(environ, "webhooks", "add", f"https://{UNRESOLVABLE}/hook")
    status, printed = affix(environ, "check")
    assert (status, printed.splitlines()[-1]) == (2, "off clamd     virus scanning is off "
                                                     "(AFFIX_SCAN_MODE)")
    assert capsys.readouterr().err == (
        f"affix: error: webhooks: the host '{UNRESOLVABLE}' of webhook 4 does not resolve: "
        "encoding with 'idna' codec failed (UnicodeError: label empty or too long)\n")


def test_serve_stops_at_a_failing_check_before_the_key_and_makes_nothing(
        tmp_path, databases, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a folder")
    environ = databases.environ(tmp_path / "data", AFFIX_STORAGE_URL=str(blocker))
    out = io.StringIO()
    assert main(["serve"], environ=environ, out=out, server=NeverStarted) == 2
    # the line of affix check, and not a key
    assert (out.getvalue(), capsys.readouterr().err) == (
        "", f"affix: error: store: {blocker}: cannot make {blocker}/.staging: Not a directory\n")
    # the store is checked before the database is made: no admin whose key nobody saw
    assert not (tmp_path / "data").exists()
    assert affix(environ, "user", "list")[0] == 2


def test_serve_warns_of_the_services_outside_and_starts(tmp_path, databases, capsys):
    """clamd and webhook receivers may come up after affix at boot: serve says so, and
    starts."""
    address = unreachable_clamd(tmp_path)
    environ = databases.environ(tmp_path / "data", AFFIX_SCAN_MODE="after", AFFIX_CLAMD=address)
    out = io.StringIO()
    assert main(["serve"], environ=environ, out=out, server=Started) == 0
    assert out.getvalue().startswith("affix: created the admin user 'admin'.")
    assert capsys.readouterr().err == (
        f"affix: warning: clamd: clamd at {address} cannot be reached: [Errno 2] No such file "
        "or directory\n")
    assert run_ok(environ, "user", "list") == "1\tadmin\tAdmin\tadmin\n1 user\n"


class NeverRun(AffixServer):
    """gunicorn's server, as serve makes it, that must not get as far as listening."""

    def run(self):
        raise AssertionError("the server was started")


def test_serve_on_an_address_in_use_says_so_before_the_key(tmp_path, databases, capsys):
    """As a newcomer met it: another program on port 8000. gunicorn would find it only after
    the key was printed, and retry for five seconds: the key scrolled by, never shown again."""
    environ = databases.environ(tmp_path / "data")
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        bind = f"{HOST}:{taken.getsockname()[1]}"
        out = io.StringIO()
        assert main(["serve", "--bind", bind], environ=environ, out=out, server=NeverRun) == 2

    assert (out.getvalue(), capsys.readouterr().err) == (
        "", f"affix: error: bind: cannot listen on {bind}: Address already in use: "
            f"{ADDRESS_TAKEN}\n")
    # refused before the database was made
    assert affix(environ, "user", "list")[0] == 2
    # once the address is free, the first start that gets as far prints the key
    out = io.StringIO()
    assert main(["serve", "--bind", bind], environ=environ, out=out, server=Started) == 0
    assert out.getvalue().startswith("affix: created the admin user 'admin'.")


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"], environ={})
    assert stopped.value.code == 0
    assert capsys.readouterr() == (f"affix {importlib.metadata.version('affix')}\n", "")
