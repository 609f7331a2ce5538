"""The ``affix`` command: what each command prints, what it stores, and how it refuses bad input
(exit status 1, one line on stderr, nothing changed)."""
import hashlib
import io
import re
from pathlib import Path

import falcon.testing
import pytest

from affix.app import create_app, open_catalog
from affix.app.cli.commands import ensure_admin, main
from affix.app.settings import Settings
from affix.app.testing import basic_auth
from affix.plugins.manager import create_plugin_manager
from support.cli import BUILT_IN_PERMISSIONS, assert_refused, run_ok
from support.state import roles


@pytest.fixture
def cli_catalog(environ):
    """An independent handle on the database the commands write to (``environ``: the
    fixture of support.cli)."""
    catalog = open_catalog(Settings.from_environ(environ))
    yield catalog
    catalog.database.close()


def users(catalog):
    with catalog.database.connection_context():
        return [(u.login, u.name, u.admin, u.locked)
                for u in catalog.User.select().order_by(catalog.User.id)]


def key_hashes(catalog):
    with catalog.database.connection_context():
        return [(k.user.login, k.key_hash)
                for k in catalog.ApiKey.select().order_by(catalog.ApiKey.id)]


def projects(catalog):
    with catalog.database.connection_context():
        return [(p.identifier, p.name) for p in catalog.Project.select()]


def memberships(catalog):
    with catalog.database.connection_context():
        return [(m.user.login, m.project.identifier, m.role.name)
                for m in catalog.Membership.select()]


def sha256(key):
    return hashlib.sha256(key.encode()).hexdigest()


def test_user_add_creates_an_admin_with_its_name(environ, cli_catalog, capsys):
    assert run_ok(environ, "user", "add", "ada", "--name", "Ada Lovelace", "--admin") == (
        "created user 'ada' (id 1)\n"
    )
    assert run_ok(environ, "user", "add", "bob") == "created user 'bob' (id 2)\n"
    assert users(cli_catalog) == [
        ("ada", "Ada Lovelace", True, False),
        # without --name the login is the name; without --admin a plain user
        ("bob", "bob", False, False),
    ]
    assert capsys.readouterr().err == ""


def test_user_add_with_a_taken_login_is_refused(environ, cli_catalog, capsys):
    run_ok(environ, "user", "add", "ada", "--name", "Ada Lovelace")
    assert_refused(capsys, environ, ["user", "add", "ada", "--name", "Other", "--admin"],
                   "a user with the login 'ada' already exists")
    assert users(cli_catalog) == [("ada", "Ada Lovelace", False, False)]


def test_apikey_create_prints_a_key_that_authenticates(environ, cli_catalog):
    run_ok(environ, "user", "add", "ada", "--name", "Ada Lovelace")
    printed = run_ok(environ, "apikey", "create", "ada")

    # alone on stdout, so that a script can capture it
    assert re.fullmatch(r"[0-9a-f]{64}\n", printed)
    key = printed.strip()
    client = falcon.testing.TestClient(create_app(
        Settings.from_environ(environ),
        plugin_manager=create_plugin_manager(load_entry_points=False),
    ))
    for authorization in (basic_auth(key), f"Bearer {key}"):
        response = client.simulate_get("/api/v3", headers={"Authorization": authorization})
        assert response.status_code == 200
        assert response.json["_links"]["user"] == {"href": "/api/v3/users/1",
                                                   "title": "Ada Lovelace"}
    assert client.simulate_get(
        "/api/v3", headers={"Authorization": basic_auth("0" * 64)}
    ).status_code == 401


@pytest.mark.sqlite_only("reads the database's files; key_hashes above checks both databases")
def test_apikey_create_stores_only_the_hash_of_the_key(environ, cli_catalog, tmp_path):
    run_ok(environ, "user", "add", "ada")
    key = run_ok(environ, "apikey", "create", "ada").strip()

    assert key_hashes(cli_catalog) == [("ada", sha256(key))]
    # every file of the database (the main file, its write-ahead log, its shared memory)
    database_bytes = b"".join(
        path.read_bytes() for path in (tmp_path / "data").glob("affix.sqlite3*")
    )
    # the hash is found, so these are the bytes that hold the key's row; the key itself is not
    assert sha256(key).encode() in database_bytes
    assert key.encode() not in database_bytes


def test_apikey_create_for_an_unknown_login_is_refused(environ, cli_catalog, capsys):
    assert_refused(capsys, environ, ["apikey", "create", "nobody"],
                   "no user with the login 'nobody'")
    assert key_hashes(cli_catalog) == []


def test_project_add_creates_a_project_once(environ, cli_catalog, capsys):
    assert run_ok(environ, "project", "add", "demo", "--name", "Demo project") == (
        "created project 'demo' (id 1)\n"
    )
    assert_refused(capsys, environ, ["project", "add", "demo", "--name", "Other"],
                   "a project 'demo' already exists")
    assert projects(cli_catalog) == [("demo", "Demo project")]


def test_role_add_creates_a_role_with_each_permission_once(environ, cli_catalog):
    printed = run_ok(environ, "role", "add", "developer",
                     "edit_work_packages", "view_work_packages", "edit_work_packages")
    assert printed == "created role 'developer' with edit_work_packages, view_work_packages\n"
    assert roles(cli_catalog) == {"developer": ["edit_work_packages", "view_work_packages"]}


@pytest.mark.parametrize("permission, message", [
    ("edit_work_package", "unknown permission 'edit_work_package'; did you mean "
                          "edit_work_packages, add_work_packages, delete_work_packages?"),
    ("Edit-WP", f"unknown permission 'Edit-WP'; known permissions: {BUILT_IN_PERMISSIONS}"),
])
def test_role_add_with_an_unknown_permission_creates_nothing(
        environ, cli_catalog, capsys, permission, message):
    assert_refused(capsys, environ, ["role", "add", "developer", "edit_work_packages", permission],
                   message)
    with cli_catalog.database.connection_context():
        assert cli_catalog.RolePermission.select().count() == 0
    assert roles(cli_catalog) == {}


def test_role_add_with_a_taken_name_leaves_the_role_as_it_was(environ, cli_catalog, capsys):
    run_ok(environ, "role", "add", "developer", "edit_work_packages")
    assert_refused(capsys, environ, ["role", "add", "developer", "edit_wiki_pages"],
                   "a role 'developer' already exists")
    assert roles(cli_catalog) == {"developer": ["edit_work_packages"]}


@pytest.fixture
def user_project_role(environ):
    run_ok(environ, "user", "add", "bob")
    run_ok(environ, "project", "add", "demo")
    run_ok(environ, "role", "add", "developer", "edit_work_packages")


def test_member_add_gives_a_user_a_role_in_a_project(
        environ, cli_catalog, user_project_role, capsys):
    assert run_ok(environ, "member", "add", "bob", "demo", "developer") == (
        "'bob' is now 'developer' in 'demo'\n"
    )
    assert_refused(capsys, environ, ["member", "add", "bob", "demo", "developer"],
                   "'bob' already has the role 'developer' in 'demo'")
    assert memberships(cli_catalog) == [("bob", "demo", "developer")]


@pytest.mark.parametrize("argv, message", [
    (["nobody", "demo", "developer"], "no user with the login 'nobody'"),
    (["bob", "nowhere", "developer"], "no project 'nowhere'"),
    (["bob", "demo", "nothing"], "no role 'nothing'"),
])
def test_member_add_naming_something_missing_is_refused(
        environ, cli_catalog, user_project_role, capsys, argv, message):
    assert_refused(capsys, environ, ["member", "add", *argv], message)
    assert memberships(cli_catalog) == []


@pytest.mark.parametrize("value, message", [
    ("abc", "AFFIX_MAX_ATTACHMENT_SIZE must be a size: bytes (5242880), or K, M, G with or "
            "without iB (5M, 5MiB: 1024-based); not 'abc'"),
    ("0", "AFFIX_MAX_ATTACHMENT_SIZE must be greater than 0, not '0'"),
])
def test_unusable_setting_is_refused_before_anything_is_written(
        databases, tmp_path, capsys, value, message):
    environ = databases.environ(tmp_path / "data", AFFIX_MAX_ATTACHMENT_SIZE=value)
    assert_refused(capsys, environ, ["migrate"], message, status=2)
    # the settings are read before the database is opened: not even the data dir is made
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("bind, address", [
    ("127.0.0.1:8123", "127.0.0.1:8123"),
    # a wildcard bind is no address a client can use; the example uses loopback instead
    ("0.0.0.0:8123", "127.0.0.1:8123"),
])
def test_ensure_admin_creates_the_first_admin_and_shows_its_key_once(
        cli_catalog, bind, address):
    out = io.StringIO()
    ensure_admin(cli_catalog, out, bind)

    assert users(cli_catalog) == [("admin", "Admin", True, False)]
    [(_, key_hash)] = key_hashes(cli_catalog)
    lines = out.getvalue().splitlines()
    key = lines[1].strip()
    assert sha256(key) == key_hash
    assert lines == [
        "affix: created the admin user 'admin'. Its API key is shown only this once:",
        f"  {key}",
        "Upload a file with it:",
        f"  curl -u apikey:{key} -F 'metadata={{\"fileName\":\"cat.png\"}};type=application/json'"
        f" -F 'file=@cat.png' http://{address}/api/v3/attachments",
    ]


def test_ensure_admin_does_nothing_once_there_is_a_user(cli_catalog):
    ensure_admin(cli_catalog, io.StringIO(), "127.0.0.1:8123")
    before = users(cli_catalog), key_hashes(cli_catalog)

    out = io.StringIO()
    ensure_admin(cli_catalog, out, "127.0.0.1:8123")
    assert out.getvalue() == ""
    assert (users(cli_catalog), key_hashes(cli_catalog)) == before


class RecordingServer:
    """Stands in for gunicorn: records that serving would start, and what was left then."""

    started_with = None

    def __init__(self, settings, options, metrics_folder=None):
        self.settings = settings

    def run(self):
        RecordingServer.started_with = sorted(
            path.name for path in (Path(self.settings.storage_url) / ".staging").iterdir()
        )


def test_serve_sweeps_staging_debris_before_the_workers_start(environ, tmp_path):
    settings = Settings.from_environ(environ)
    staging = Path(settings.storage_url) / ".staging"
    staging.mkdir(parents=True)
    for name in ("cut-short-1", "cut-short-2"):
        (staging / name).write_bytes(b"half an upload")
    committed = Path(settings.storage_url) / "ab" / "cd" / "abcd-kept"
    committed.parent.mkdir(parents=True)
    committed.write_bytes(b"a whole upload")
    out = io.StringIO()

    assert main(["serve"], environ=environ, out=out, server=RecordingServer) == 0
    assert RecordingServer.started_with == []
    assert committed.read_bytes() == b"a whole upload"
    assert out.getvalue().splitlines()[-1] == (
        "affix: removed 2 partial uploads left in staging by an earlier stop"
    )
