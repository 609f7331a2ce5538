"""affix embedded in a larger site, in process: two apps in one process that share nothing, an
app made for gunicorn --preload that holds nothing open, and the host's identity through the
``affix_authenticate`` hook or a trusted REMOTE_USER. (Importing and installing affix in
processes of their own: system/test_importing.py; gunicorn --preload, a host project under
gunicorn, a mount under a path prefix over real HTTP: system/test_embedding_served.py.)"""
import contextlib
import dataclasses
import os
from pathlib import Path

import falcon.testing
import pluggy
import pytest

from affix.app import create_app, open_catalog
from affix.app.settings import Settings, SettingsError
from affix.app.testing import People, upload
from affix.plugins.manager import create_plugin_manager
from affix.storage.database import release_connections
from support.content import md5
from support.defaults import FROZEN_NOW
from support.errors import (
    MAY_NOT_UPLOAD, NO_SUCH_ATTACHMENT, UNAUTHENTICATED, WRONG_CREDENTIALS, assert_error,
    assert_unauthenticated,
)
from support.processes import open_files_below
from support.races import race
from support.state import Stored

host_hookimpl = pluggy.HookimplMarker("affix")


# --- helpers ---------------------------------------------------------------------------------

def make_app(settings, *plugins):
    """An affix app on ``settings`` with the built-in plugin and ``plugins``, registered in
    this order (pluggy asks the last registered first)."""
    manager = create_plugin_manager(load_entry_points=False)
    for plugin in plugins:
        manager.register(plugin)
    return create_app(settings, plugin_manager=manager, clock=lambda: FROZEN_NOW)


def simulate_upload(client, headers, file_name="notes.txt", content=b"hello", **options):
    return upload(client, headers, file_name, content, **options)


def current_user_link(response) -> dict:
    """The ``user`` link of an API root answered with 200."""
    assert response.status_code == 200, response.text
    return response.json["_links"]["user"]


def users(catalog):
    with catalog.database.connection_context():
        User = catalog.User
        return [(u.id, u.login, u.name, u.admin, u.locked)
                for u in User.select().order_by(User.id)]


def grant(catalog, login, *permissions):
    """Give the existing user ``login`` a role holding ``permissions`` in the project "demo"."""
    with catalog.database.connection_context():
        user = catalog.User.get(catalog.User.login == login)
        project, _ = catalog.Project.get_or_create(identifier="demo", defaults={"name": "Demo"})
        role = catalog.Role.create(name=f"role-of-{login}")
        for permission in permissions:
            catalog.RolePermission.create(role=role, permission=permission)
        catalog.Membership.create(user=user, project=project, role=role)


# --- two apps in one process -----------------------------------------------------------------

A_LIMIT = 64 * 1024
B_LIMIT = 16


@dataclasses.dataclass
class Instance:
    settings: Settings
    client: falcon.testing.TestClient
    people: People
    stored: Stored

    def download(self, login, attachment_id):
        return self.client.simulate_get(
            f"/api/v3/attachments/{attachment_id}/download", headers=self.people.auth(login)
        )


@pytest.fixture
def instance(tmp_path, databases):
    """Makes an affix app on a data dir (and database) of its own below ``tmp_path``."""
    with contextlib.ExitStack() as stack:
        def make(name, **overrides):
            settings = databases.settings(tmp_path / name, **overrides)
            client = falcon.testing.TestClient(make_app(settings))
            catalog = open_catalog(settings)
            stack.callback(catalog.database.close)
            return Instance(settings, client, People(catalog),
                            Stored(catalog, Path(settings.storage_url)))
        yield make


@pytest.fixture
def two_apps(instance):
    """Apps A and B, each with an admin "ada" of its own: user 1 in both."""
    a = instance("a", max_attachment_size=A_LIMIT)
    b = instance("b", max_attachment_size=B_LIMIT)
    a.people.add("ada", name="Ada of A", admin=True)
    b.people.add("ada", name="Ada of B", admin=True)
    return a, b


def test_users_and_keys_of_one_app_do_not_authenticate_in_the_other(two_apps):
    a, b = two_apps
    a.people.add("bob", name="Bob of A")

    assert current_user_link(a.client.simulate_get("/api/v3", headers=a.people.auth("ada"))) == {
        "href": "/api/v3/users/1", "title": "Ada of A"}
    assert current_user_link(b.client.simulate_get("/api/v3", headers=b.people.auth("ada"))) == {
        "href": "/api/v3/users/1", "title": "Ada of B"}
    for client, headers in [(b.client, a.people.auth("ada")), (b.client, a.people.auth("bob")),
                            (a.client, b.people.auth("ada"))]:
        assert_error(client.simulate_get("/api/v3", headers=headers),
                     401, "Unauthenticated", WRONG_CREDENTIALS)
    assert [row[1] for row in users(b.people.catalog)] == ["ada"]


def test_an_upload_to_one_app_is_invisible_in_the_other(two_apps, tmp_path, databases):
    a, b = two_apps
    content_a, content_b = b"only in A", b"only in B"

    uploaded_a = simulate_upload(a.client, a.people.auth("ada"), "a.txt", content_a)
    assert uploaded_a.status_code == 200
    assert uploaded_a.json["id"] == 1
    # B's admin may see every attachment of B, and B has none yet
    assert_error(b.client.simulate_get("/api/v3/attachments/1", headers=b.people.auth("ada")),
                 404, "NotFound", NO_SUCH_ATTACHMENT)
    assert_error(b.download("ada", 1), 404, "NotFound", NO_SUCH_ATTACHMENT)

    uploaded_b = simulate_upload(b.client, b.people.auth("ada"), "b.txt", content_b)
    assert uploaded_b.status_code == 200
    # the same id in both apps: what each one serves under it is its own
    assert uploaded_b.json["id"] == 1
    assert a.download("ada", 1).content == content_a
    assert b.download("ada", 1).content == content_b
    assert uploaded_b.json["digest"] == {"algorithm": "md5", "hash": md5(content_b)}

    # deleting B's attachment 1 leaves A's attachment 1 alone
    deleted = b.client.simulate_delete("/api/v3/attachments/1", headers=b.people.auth("ada"))
    assert deleted.status_code == 204
    assert a.download("ada", 1).content == content_a

    rows_a, files_a = a.stored.snapshot()
    assert [row[:4] for row in rows_a] == [(1, "a.txt", len(content_a), md5(content_a))]
    assert files_a == {rows_a[0][4]: content_a}
    assert b.stored.snapshot() == ([], {})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b"]
    for each in (a, b):
        assert each.stored.blob_root.is_relative_to(each.settings.data_dir)
        # the embedded database is a file in the data dir; a server's is not
        assert (each.settings.data_dir / "affix.sqlite3").is_file() == (
            databases.kind == "sqlite")


def test_each_app_keeps_its_own_size_limit(two_apps):
    a, b = two_apps
    content = b"x" * (B_LIMIT + 1)

    assert simulate_upload(a.client, a.people.auth("ada"), content=content).status_code == 200
    assert_error(simulate_upload(b.client, b.people.auth("ada"), content=content),
                 422, "PropertyConstraintViolation",
                 f"File is too large (maximum size is {B_LIMIT} Bytes).", "fileSize")
    assert [row[2] for row in a.stored.rows()] == [B_LIMIT + 1]
    assert b.stored.snapshot() == ([], {})


def test_explicit_settings_win_over_the_environment(instance, tmp_path, monkeypatch):
    environment_dir = tmp_path / "from-environment"
    monkeypatch.setenv("AFFIX_MAX_ATTACHMENT_SIZE", "1")
    monkeypatch.setenv("AFFIX_DATA_DIR", str(environment_dir))
    monkeypatch.setenv("AFFIX_DATABASE_URL", f"sqlite:///{environment_dir}/other.sqlite3")
    monkeypatch.setenv("AFFIX_STORAGE_URL", str(environment_dir / "other-blobs"))
    monkeypatch.setenv("AFFIX_TRUST_REMOTE_USER", "1")
    explicit = instance("explicit")
    explicit.people.add("ada", admin=True)
    content = b"larger than one byte"

    response = simulate_upload(explicit.client, explicit.people.auth("ada"), content=content)

    assert response.status_code == 200, response.json
    assert [row[2] for row in explicit.stored.rows()] == [len(content)]
    assert_error(explicit.client.simulate_get("/api/v3", extras={"REMOTE_USER": "ada"}),
                 401, "Unauthenticated", UNAUTHENTICATED)
    assert not environment_dir.exists()


def test_without_settings_the_environment_is_read(tmp_path, monkeypatch, databases):
    data_dir = tmp_path / "from-environment"
    for name in [name for name in os.environ if name.startswith("AFFIX_")]:
        monkeypatch.delenv(name)
    for name, value in databases.environ(
            data_dir, AFFIX_MAX_ATTACHMENT_SIZE="4", AFFIX_TRUST_REMOTE_USER="1").items():
        monkeypatch.setenv(name, value)
    client = falcon.testing.TestClient(
        create_app(plugin_manager=create_plugin_manager(load_entry_points=False))
    )
    as_carol = {"REMOTE_USER": "carol"}

    response = client.simulate_get("/api/v3", extras=as_carol)

    assert current_user_link(response) == {"href": "/api/v3/users/1", "title": "carol"}
    catalog = open_catalog(databases.settings(data_dir))
    try:
        with catalog.database.connection_context():
            catalog.User.update(admin=True).execute()
        assert_error(simulate_upload(client, {}, content=b"hello", extras=as_carol),
                     422, "PropertyConstraintViolation",
                     "File is too large (maximum size is 4 Bytes).", "fileSize")
        assert users(catalog) == [(1, "carol", "carol", True, False)]
    finally:
        catalog.database.close()


# --- preloading ------------------------------------------------------------------------------

class TableOfItsOwn:
    """A plugin that makes a table of its own as its container types are asked for, the way
    the plugin guide shows."""

    @host_hookimpl
    def affix_container_types(self, catalog):
        with catalog.schema_change():
            catalog.database.execute_sql(
                "CREATE TABLE IF NOT EXISTS plugin_things (id INTEGER PRIMARY KEY)")
        return []


@pytest.mark.sqlite_only("an open connection shows as open files of the data dir; PostgreSQL's "
                         "pool is released by the same call")
def test_the_app_holds_no_database_file_open_once_made_even_after_a_plugin_used_it(
        settings, plugin_manager):
    # gunicorn --preload makes the app before it forks: a connection still open here would be
    # shared by every worker
    plugin_manager.register(TableOfItsOwn())
    create_app(settings, plugin_manager=plugin_manager)

    assert open_files_below(os.getpid(), settings.data_dir) == []
    database = open_catalog(settings).database
    with database.connection_context():
        assert "plugin_things" in database.get_tables()
    release_connections(database)


# --- the host's identity ---------------------------------------------------------------------

SESSIONS = {"session-of-ada": "ada"}
BOB = {"href": "/api/v3/users/2", "title": "Bob Builder"}
RACERS = 6


class HostIdentity:
    """The host's plugin: the login its authenticating proxy put in ``X-Host-User``, else the
    owner of its session cookie; None when it cannot tell."""

    @host_hookimpl
    def affix_authenticate(self, request):
        login = request.get_header("X-Host-User")
        if login is None:
            login = SESSIONS.get(request.cookies.get("host_session"))
        return login


class FixedAnswer:
    """A plugin that answers ``answer`` for every request."""

    def __init__(self, answer):
        self.answer = answer

    @host_hookimpl
    def affix_authenticate(self):
        return self.answer


@pytest.fixture
def plugin_manager(plugin_manager):
    """Every app of the conftest fixtures in this module has the host's plugin. Without its
    header or cookie it names nobody, and the API keys decide as always (as in the tests
    above)."""
    plugin_manager.register(HostIdentity(), name="host-identity")
    return plugin_manager


@pytest.fixture
def trusting_client(settings, catalog):
    """An app on the conftest database that trusts REMOTE_USER."""
    return falcon.testing.TestClient(
        make_app(dataclasses.replace(settings, trust_remote_user=True))
    )


def root(client, headers=None, **options):
    return client.simulate_get("/api/v3", headers=headers or {}, **options)


def test_the_host_names_a_user_affix_knows(client, people, catalog):
    before = users(catalog)

    assert current_user_link(root(client, {"X-Host-User": "bob"})) == BOB
    assert current_user_link(root(client, cookies={"host_session": "session-of-ada"})) == {
        "href": "/api/v3/users/1", "title": "Ada Admin"}
    assert users(catalog) == before


def test_a_login_new_to_affix_is_created_once(client, people, catalog):
    as_dora = {"X-Host-User": "dora"}

    first, second = root(client, as_dora), root(client, as_dora)

    dora = {"href": "/api/v3/users/4", "title": "dora"}
    assert (current_user_link(first), current_user_link(second)) == (dora, dora)
    assert users(catalog)[3:] == [(4, "dora", "dora", False, False)]
    profile = client.simulate_get("/api/v3/users/4", headers=as_dora)
    assert (profile.status_code, profile.json["login"], profile.json["status"]) == (
        200, "dora", "active")


def test_first_requests_of_a_new_login_at_once_create_one_user(client, people, catalog):
    responses = race(*[lambda: root(client, {"X-Host-User": "dora"})] * RACERS)

    assert [current_user_link(response) for response in responses] == (
        [{"href": "/api/v3/users/4", "title": "dora"}] * RACERS)
    assert users(catalog)[3:] == [(4, "dora", "dora", False, False)]


def test_a_locked_user_named_by_the_host_is_refused(client, people, catalog):
    people.add("lou", locked=True)
    before = users(catalog)

    assert_unauthenticated(root(client, {"X-Host-User": "lou"}), WRONG_CREDENTIALS)
    assert users(catalog) == before


def test_when_the_host_names_nobody_the_api_key_decides(client, people, catalog):
    before = users(catalog)

    assert current_user_link(root(client, people.auth("bob"))) == BOB
    assert current_user_link(
        root(client, people.auth("bob"), cookies={"host_session": "forged"})) == BOB
    assert_unauthenticated(root(client))
    assert_unauthenticated(root(client, cookies={"host_session": "forged"}))
    assert users(catalog) == before


@pytest.mark.parametrize("answer", ["", "   ", 0, 42, False, b"bob", ["bob"], {"login": "bob"}])
def test_a_blank_or_non_text_answer_names_nobody(settings, people, catalog, answer):
    client = falcon.testing.TestClient(make_app(settings, FixedAnswer(answer)))
    before = users(catalog)

    assert current_user_link(root(client, people.auth("bob"))) == BOB
    assert_unauthenticated(root(client))
    assert users(catalog) == before


def test_the_hosts_user_uploads_only_with_a_permission(client, people, catalog, stored):
    as_nora = {"X-Host-User": "nora"}

    assert_error(simulate_upload(client, as_nora), 403, "MissingPermission", MAY_NOT_UPLOAD)
    assert stored.snapshot() == ([], {})
    assert users(catalog)[3:] == [(4, "nora", "nora", False, False)]

    grant(catalog, "nora", "edit_work_packages")
    accepted = simulate_upload(client, as_nora, "nora.txt", b"by nora")

    assert accepted.status_code == 200, accepted.json
    assert accepted.json["_links"]["author"] == {"href": "/api/v3/users/4", "title": "nora"}
    assert [row[:4] for row in stored.rows()] == [(1, "nora.txt", 7, md5(b"by nora"))]


def test_remote_user_is_trusted_when_enabled(trusting_client, people, catalog):
    as_carol = {"REMOTE_USER": "carol"}

    first, second = root(trusting_client, extras=as_carol), root(trusting_client, extras=as_carol)

    carol = {"href": "/api/v3/users/4", "title": "carol"}
    assert (current_user_link(first), current_user_link(second)) == (carol, carol)
    assert users(catalog)[3:] == [(4, "carol", "carol", False, False)]
    assert current_user_link(root(trusting_client, extras={"REMOTE_USER": "bob"})) == BOB
    assert current_user_link(root(trusting_client, people.auth("bob"))) == BOB
    assert_unauthenticated(root(trusting_client))


def test_a_remote_user_header_is_not_the_environs_remote_user(trusting_client, people, catalog):
    before = users(catalog)

    # a client's "Remote-User" header arrives as HTTP_REMOTE_USER: nobody vouched for it
    assert_unauthenticated(root(trusting_client, {"Remote-User": "carol"}))
    assert users(catalog) == before


def test_remote_user_is_ignored_by_default(client, people, catalog):
    before = users(catalog)

    assert_unauthenticated(root(client, extras={"REMOTE_USER": "carol"}))
    assert current_user_link(root(client, people.auth("bob"), extras={"REMOTE_USER": "ada"})) == BOB
    assert users(catalog) == before


def test_an_empty_remote_user_leaves_the_next_plugin_its_say(settings, people, catalog):
    """An authenticating proxy may pass REMOTE_USER="" for an anonymous request: that names
    nobody, so the host's own plugin is asked next, as the hook's contract says ("Plugins are
    asked in turn until one names a login")."""
    client = falcon.testing.TestClient(
        make_app(dataclasses.replace(settings, trust_remote_user=True), HostIdentity())
    )

    response = root(client, {"X-Host-User": "bob"}, extras={"REMOTE_USER": ""})

    assert current_user_link(response) == BOB


@pytest.mark.parametrize("value, trusted", [
    (None, False), ("", False), ("0", False), ("false", False),
    ("1", True), ("true", True), ("TRUE", True),
])
def test_trust_remote_user_from_the_environment(tmp_path, value, trusted):
    environ = {"AFFIX_DATA_DIR": str(tmp_path)}
    if value is not None:
        environ["AFFIX_TRUST_REMOTE_USER"] = value

    assert Settings.from_environ(environ).trust_remote_user is trusted


def test_an_unreadable_trust_remote_user_is_refused(tmp_path):
    environ = {"AFFIX_DATA_DIR": str(tmp_path), "AFFIX_TRUST_REMOTE_USER": "maybe"}

    with pytest.raises(SettingsError) as refused:
        Settings.from_environ(environ)

    assert str(refused.value) == (
        "AFFIX_TRUST_REMOTE_USER must be 1 or 0 (true or false), not 'maybe'")
