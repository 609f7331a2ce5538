"""What an operator meets before anything works (issue #25): a command run from another folder,
a bad setting, a module not installed, a misspelt variable, a bad flag. Each is one line on
stderr and exit status 2, and nothing is made."""
import sys
import urllib.parse

import pytest

from affix.app.cli.commands import build_parser
from affix.app.settings import Settings
from support.cli import POINT_ELSEWHERE, affix, assert_refused, assert_usage_error, run_ok
from support.content import MiB
from support.migrations import APPLIED_ALL

SIZE_FORMS = "bytes (5242880), or K, M, G with or without iB (5M, 5MiB: 1024-based)"


@pytest.mark.parametrize("argv", [
    ["cleanup"], ["user", "add", "carol"], ["apikey", "list", "admin"], ["gc"],
    ["webhooks", "list"], ["quarantine", "list"],
])
def test_a_command_run_from_another_folder_makes_no_database(tmp_path, monkeypatch, capsys, argv):
    # a cron line that forgot its cd
    monkeypatch.chdir(tmp_path)
    assert_refused(capsys, {}, argv, f"no database at {tmp_path}/var/affix.sqlite3 "
                                     f"(AFFIX_DATA_DIR unset: ./var of {tmp_path}): "
                                     f"{POINT_ELSEWHERE}", status=2)
    assert list(tmp_path.iterdir()) == []


def test_a_command_on_a_database_never_made_says_where_it_looked(tmp_path, databases, capsys):
    environ = databases.environ(tmp_path / "data")
    if databases.kind == "sqlite":
        looked = f"no database at {tmp_path}/data/affix.sqlite3 (AFFIX_DATA_DIR={tmp_path}/data)"
    else:
        url = urllib.parse.urlsplit(environ["AFFIX_DATABASE_URL"])
        looked = f"no affix tables in the database {url.hostname}{url.path} of AFFIX_DATABASE_URL"
    assert_refused(capsys, environ, ["user", "add", "carol"], f"{looked}: {POINT_ELSEWHERE}",
                   status=2)
    assert not (tmp_path / "data").exists()
    # nothing was made: the first start on purpose makes all of it
    assert run_ok(environ, "migrate") == APPLIED_ALL
    assert run_ok(environ, "user", "add", "carol") == "created user 'carol' (id 1)\n"


@pytest.mark.parametrize("url, shown", [
    # only the scheme: the rest of a URL may hold a password
    ("mysql://affix:secret@db/affix", "mysql"),
    ("var/affix.sqlite3", "var/affix.sqlite3"),
])
def test_a_database_url_of_another_kind_is_one_line(tmp_path, monkeypatch, capsys, url, shown):
    monkeypatch.chdir(tmp_path)
    assert_refused(capsys, {"AFFIX_DATABASE_URL": url}, ["serve"],
                   f"AFFIX_DATABASE_URL must be sqlite:///PATH or "
                   f"postgresql://USER@HOST:PORT/NAME, not {shown!r}", status=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module, environ, message", [
    ("psycopg2", {"AFFIX_DATABASE_URL": "postgresql://affix@127.0.0.1:9/affix"},
     "AFFIX_DATABASE_URL is a PostgreSQL URL: PostgreSQL needs psycopg2: pip install "
     "psycopg2-binary (or, in affix's folder, pip install '.[postgres]')"),
    ("boto3", {"AFFIX_STORAGE_URL": "s3://attachments/affix"},
     "AFFIX_STORAGE_URL is an S3 URL: S3 storage needs boto3: pip install boto3 (or, in "
     "affix's folder, pip install '.[s3]')"),
])
def test_a_module_not_installed_is_named_with_how_to_install_it(
        tmp_path, monkeypatch, capsys, module, environ, message):
    monkeypatch.chdir(tmp_path)
    # what an import finds where the module is not installed
    monkeypatch.setitem(sys.modules, module, None)
    assert_refused(capsys, environ, ["serve"], message, status=2)
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_variable_is_named_with_the_one_meant(environ, capsys):
    environ.update(AFFIX_MAX_ATACHMENT_SIZE="1", AFFIX_COLOUR="blue",
                   AFFIX_API_KEY="the client's", AFFIX_TEST_POSTGRES_URL="the tests'")
    assert affix(environ, "user", "add", "carol") == (0, "created user 'carol' (id 1)\n")
    assert capsys.readouterr().err == (
        "affix: warning: AFFIX_COLOUR is none of affix's settings: a plugin's own?\n"
        "affix: warning: AFFIX_MAX_ATACHMENT_SIZE is none of affix's settings: did you mean "
        "AFFIX_MAX_ATTACHMENT_SIZE?\n")


@pytest.mark.parametrize("written, size", [
    ("5242880", 5 * MiB), ("5M", 5 * MiB), ("5MiB", 5 * MiB), ("5m", 5 * MiB), ("5mib", 5 * MiB),
    ("512K", 512 * 1024), ("512KiB", 512 * 1024), ("2G", 2 * 1024 * MiB),
])
def test_a_size_is_written_alike_in_settings_and_flags(written, size):
    assert Settings.from_environ({"AFFIX_MAX_ATTACHMENT_SIZE": written}).max_attachment_size == size
    assert Settings.from_environ({"AFFIX_TUS_MAX_SIZE": written}).tus_max_size == size
    assert build_parser().parse_args(
        ["upload", "--url", "http://127.0.0.1:9", "--chunk-size", written, "a.bin"]
    ).chunk_size == size


@pytest.mark.parametrize("written", [
    "5MB", "5 MB", "5.5M", "-1", "5B", "5T", "M", "",
    # past the 4,300 digits Python's int() converts
    pytest.param("9" * 5000, id="5000 digits")])
def test_a_size_in_no_known_form_is_refused_alike_by_settings_and_flags(
        tmp_path, monkeypatch, capsys, written):
    monkeypatch.chdir(tmp_path)
    if written:
        assert_refused(capsys, {"AFFIX_MAX_ATTACHMENT_SIZE": written}, ["serve"],
                       f"AFFIX_MAX_ATTACHMENT_SIZE must be a size: {SIZE_FORMS}; "
                       f"not {written!r}", status=2)
    assert_usage_error(
        capsys, {}, ["upload", "--url", "http://127.0.0.1:9", "--chunk-size", written, "a.bin"],
        f"affix upload: error: argument --chunk-size: not a size: {written!r}; "
        f"write {SIZE_FORMS}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bind, address", [
    # a bare number is a port: gunicorn alone would take it for a host on port 8000
    ("19105", "127.0.0.1:19105"),
    (":19105", "127.0.0.1:19105"),
    ("0.0.0.0:19105", "0.0.0.0:19105"),
    ("localhost:19105", "localhost:19105"),
    ("[::1]:19105", "[::1]:19105"),
    ("unix:/run/affix/affix.sock", "unix:/run/affix/affix.sock"),
])
def test_bind_takes_a_port_a_host_and_port_or_a_socket(bind, address):
    assert build_parser().parse_args(["serve", "--bind", bind]).bind == address


@pytest.mark.parametrize("argv, line", [
    (["--bind", "19105x"], "argument --bind: not an address: '19105x'; write HOST:PORT, "
                           "[IPv6]:PORT, PORT (on 127.0.0.1) or unix:PATH"),
    (["--bind", "localhost:"], "argument --bind: not an address: 'localhost:'; write "
                               "HOST:PORT, [IPv6]:PORT, PORT (on 127.0.0.1) or unix:PATH"),
    (["--bind", "70000"], "argument --bind: not an address: '70000'; write HOST:PORT, "
                          "[IPv6]:PORT, PORT (on 127.0.0.1) or unix:PATH"),
    (["--workers", "0"], "argument --workers: must be a whole number of 1 or more, not '0'"),
    (["--threads", "-1"], "argument --threads: must be a whole number of 1 or more, not '-1'"),
    (["--workers", "two"], "argument --workers: must be a whole number of 1 or more, not 'two'"),
])
def test_a_bad_serve_flag_is_one_line(tmp_path, monkeypatch, capsys, argv, line):
    monkeypatch.chdir(tmp_path)
    assert_usage_error(capsys, {}, ["serve", *argv], f"affix serve: error: {line}")
    assert list(tmp_path.iterdir()) == []


def _not_a_number(least):
    return f"must be a whole number of {least} or more, not"


@pytest.mark.parametrize("argv, line", [
    (["apikey", "create", "ada", "--expires", "0"], f"argument --expires: {_not_a_number(1)} '0'"),
    (["apikey", "create", "ada", "--expires", "-2"],
     f"argument --expires: {_not_a_number(1)} '-2'"),
    (["apikey", "revoke", "x"], f"argument KEY_ID: {_not_a_number(1)} 'x'"),
    (["gc", "--min-age", "-1"], f"argument --min-age: {_not_a_number(0)} '-1'"),
    (["gc", "--min-age", "1.5"], f"argument --min-age: {_not_a_number(0)} '1.5'"),
    (["scan", "--batch-size", "0"], f"argument --batch-size: {_not_a_number(1)} '0'"),
    (["quarantine", "delete", "3", "1_000"], f"argument ID: {_not_a_number(1)} '1_000'"),
    (["webhooks", "remove", " 2"], f"argument id: {_not_a_number(1)} ' 2'"),
    # past what a database column holds: a one-line refusal, not the driver's overflow
    (["webhooks", "remove", "9" * 19],
     f"argument id: must be a whole number of at most 18 digits of 1 or more, not '{'9' * 19}'"),
    (["webhooks", "run", "--poll-interval", "0"],
     "argument --poll-interval: must be a number of seconds greater than 0 (2, 0.5), not '0'"),
    (["webhooks", "run", "--poll-interval", "inf"],
     "argument --poll-interval: must be a number of seconds greater than 0 (2, 0.5), not 'inf'"),
    (["webhooks", "run", "--max-backoff", "-5"],
     f"argument --max-backoff: {_not_a_number(1)} '-5'"),
    (["webhooks", "run", "--keep-delivered", "0"],
     f"argument --keep-delivered: {_not_a_number(1)} '0'"),
    # times past what datetime counts: an overflow's traceback before
    (["apikey", "create", "ada", "--expires", "1000000000"],
     "argument --expires: must be at most 36500 days (a hundred years), not '1000000000'"),
    (["gc", "--min-age", "9" * 18],
     f"argument --min-age: must be at most 52560000 minutes (a hundred years), not '{'9' * 18}'"),
    (["webhooks", "run", "--max-backoff", "3153600001"],
     "argument --max-backoff: must be at most 3153600000 seconds (a hundred years), not "
     "'3153600001'"),
    (["webhooks", "run", "--keep-delivered", "876001"],
     "argument --keep-delivered: must be at most 876000 hours (a hundred years), not '876001'"),
    (["upload", "--url", "http://127.0.0.1:9", "--work-package", "0", "a.bin"],
     f"argument --work-package: {_not_a_number(1)} '0'"),
])
def test_a_bad_number_of_any_command_is_one_line(tmp_path, monkeypatch, capsys, argv, line):
    monkeypatch.chdir(tmp_path)
    command = " ".join(argv[:2] if argv[0] in ("apikey", "quarantine", "webhooks") else argv[:1])
    assert_usage_error(capsys, {}, argv, f"affix {command}: error: {line}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, value", [
    (["gc", "--min-age", "0"], ("min_age", 0)),
    (["webhooks", "run", "--poll-interval", "0.05"], ("poll_interval", 0.05)),
    (["apikey", "create", "ada", "--expires", "30"], ("expires", 30)),
    (["apikey", "create", "ada", "--expires", "36500"], ("expires", 36500)),
    (["webhooks", "run", "--keep-delivered", "876000"], ("keep_delivered", 876000)),
])
def test_a_number_in_range_is_taken(argv, value):
    name, number = value
    assert getattr(build_parser().parse_args(argv), name) == number
