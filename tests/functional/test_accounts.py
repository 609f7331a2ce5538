"""What an operator does about a leaked key or a user who must go (``affix apikey list``,
``revoke``, ``create --expires``; ``affix user lock``, ``unlock``, ``delete``): what each command
prints and stores, how it refuses bad input, and that every node refuses a revoked key, an expired
one, and a locked user's, on the very next request.

Two apps on one database stand for two workers or two nodes: each has made a request with the
key before it is revoked, so any cache of keys or users in a process would show here."""
import datetime
import hashlib

import falcon.testing
import pytest

from affix.app import create_app
from affix.app.accounts.auth import LAST_USE_PRECISION, issue_api_key
from affix.app.testing import basic_auth
from affix.plugins.manager import create_plugin_manager
from support import tus
from support.cli import assert_refused, run_ok
from support.client import uploaded
from support.defaults import FROZEN_NOW
from support.errors import WRONG_CREDENTIALS, assert_error, assert_unauthenticated
from support.work_packages import created

SECOND = datetime.timedelta(seconds=1)
DELETED_USER = "Deleted user"
NO_SUCH_USER = "The specified user does not exist."


@pytest.fixture
def other_node(settings, clock):
    """A second affix on the database of conftest's: another worker, or another node."""
    return falcon.testing.TestClient(create_app(
        settings, plugin_manager=create_plugin_manager(load_entry_points=False), clock=clock))


def api_keys(catalog):
    """(id, login, created at, expires at, last used at) of every key, by id."""
    with catalog.database.connection_context():
        ApiKey = catalog.ApiKey
        return [(k.id, k.user.login, k.created_at, k.expires_at, k.last_used_at)
                for k in ApiKey.select().order_by(ApiKey.id)]


def accounts(catalog):
    """Every user (id, login, name, locked), key (id, user id) and membership (user id,
    project id, role id): what a refused command must leave as it was."""
    with catalog.database.connection_context():
        return (
            [(u.id, u.login, u.name, u.locked) for u in catalog.User.select()
             .order_by(catalog.User.id)],
            [(k.id, k.user_id, k.key_hash) for k in catalog.ApiKey.select()
             .order_by(catalog.ApiKey.id)],
            sorted((m.user_id, m.project_id, m.role_id) for m in catalog.Membership.select()),
        )


def status_with(node, key):
    return node.simulate_get("/api/v3", headers={"Authorization": basic_auth(key)}).status_code


def answer(response):
    """A response's status, headers and body, but for the id every request gets."""
    headers = {name: value for name, value in response.headers.items()
               if name != "x-request-id"}
    return response.status_code, headers, response.json


def assert_refused_by_every_node(nodes, key):
    for node in nodes:
        response = node.simulate_get("/api/v3", headers={"Authorization": basic_auth(key)})
        assert_unauthenticated(response, WRONG_CREDENTIALS)


# --- revoking ---------------------------------------------------------------------------------

def test_a_revoked_key_is_refused_at_once_by_every_node(
        environ, client, other_node, people, catalog):
    nodes = (client, other_node)
    bobs_other_key = run_ok(environ, "apikey", "create", "bob").strip()
    assert [status_with(node, people.keys["bob"]) for node in nodes] == [200, 200]

    assert run_ok(environ, "apikey", "revoke", "2") == "revoked API key 2 of 'bob'\n"

    assert_refused_by_every_node(nodes, people.keys["bob"])
    assert [status_with(node, bobs_other_key) for node in nodes] == [200, 200]
    assert [(key_id, login) for key_id, login, *_ in api_keys(catalog)] == [
        (1, "ada"), (3, "eve"), (4, "bob")]


def test_revoking_all_of_a_users_keys_leaves_everyone_elses(
        environ, client, other_node, people, catalog):
    nodes = (client, other_node)
    bobs_other_key = run_ok(environ, "apikey", "create", "bob").strip()
    assert [status_with(node, bobs_other_key) for node in nodes] == [200, 200]

    assert run_ok(environ, "apikey", "revoke", "--all", "bob") == "revoked 2 API keys of 'bob'\n"

    for key in (people.keys["bob"], bobs_other_key):
        assert_refused_by_every_node(nodes, key)
    assert [status_with(node, people.keys["eve"]) for node in nodes] == [200, 200]
    assert [(key_id, login) for key_id, login, *_ in api_keys(catalog)] == [(1, "ada"), (3, "eve")]
    # bob himself stays, keyless, until he gets a new key
    assert accounts(catalog)[0][1] == (2, "bob", "Bob Builder", False)


# --- listing and last use --------------------------------------------------------------------

def test_apikey_list_shows_each_key_of_the_user_and_never_its_secret(
        environ, client, people, catalog):
    with catalog.database.connection_context():
        bob = catalog.User.get(catalog.User.login == "bob")
        expired = issue_api_key(catalog, bob, FROZEN_NOW + SECOND,
                                expires_at=FROZEN_NOW + datetime.timedelta(days=7))
        expiring = issue_api_key(catalog, bob, FROZEN_NOW + 2 * SECOND,
                                 expires_at=datetime.datetime(9999, 1, 1))
    assert status_with(client, people.keys["bob"]) == 200

    printed = run_ok(environ, "apikey", "list", "bob")

    assert printed == (
        "2\tcreated 2014-05-21T08:51:20Z\tlast used 2014-05-21T08:51:20Z\texpires never\n"
        "4\tcreated 2014-05-21T08:51:21Z\tlast used never\texpired 2014-05-28T08:51:20Z\n"
        "5\tcreated 2014-05-21T08:51:22Z\tlast used never\texpires 9999-01-01T00:00:00Z\n"
        "3 API keys of 'bob'\n")
    for key in (people.keys["bob"], expired, expiring):
        assert key not in printed
        assert hashlib.sha256(key.encode()).hexdigest() not in printed


def test_apikey_list_of_a_user_without_keys_says_so(environ, people):
    run_ok(environ, "user", "add", "nora")
    assert run_ok(environ, "apikey", "list", "nora") == "0 API keys of 'nora'\n"


def test_the_last_use_of_a_key_is_written_at_most_once_per_interval(
        client, other_node, people, catalog, clock):
    def bobs_last_use():
        return api_keys(catalog)[1][4]

    assert bobs_last_use() is None
    assert status_with(client, people.keys["bob"]) == 200
    assert bobs_last_use() == FROZEN_NOW
    clock.advance(LAST_USE_PRECISION - SECOND)
    assert status_with(other_node, people.keys["bob"]) == 200
    # within the interval: no write, the first use of it stands
    assert bobs_last_use() == FROZEN_NOW
    clock.advance(SECOND)
    assert status_with(other_node, people.keys["bob"]) == 200
    assert bobs_last_use() == FROZEN_NOW + LAST_USE_PRECISION
    # a refused request is no use of a key
    clock.advance(LAST_USE_PRECISION)
    refused = other_node.simulate_get("/api/v3", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert bobs_last_use() == FROZEN_NOW + LAST_USE_PRECISION


# --- expiry ----------------------------------------------------------------------------------

def test_a_key_past_its_expiry_is_refused_as_an_unknown_key_is(
        environ, client, other_node, people, catalog, clock):
    nodes = (client, other_node)
    key = run_ok(environ, "apikey", "create", "bob", "--expires", "30").strip()
    (_, login, created_at, expires_at, _) = api_keys(catalog)[-1]
    assert (login, expires_at - created_at) == ("bob", datetime.timedelta(days=30))

    clock.now = expires_at - SECOND
    assert [status_with(node, key) for node in nodes] == [200, 200]
    clock.now = expires_at
    assert_refused_by_every_node(nodes, key)
    # word for word what a key that never existed gets: nothing tells an attacker which it was
    unknown = client.simulate_get("/api/v3", headers={"Authorization": basic_auth("0" * 64)})
    expired = client.simulate_get("/api/v3", headers={"Authorization": basic_auth(key)})
    assert answer(expired) == answer(unknown)
    # the key without an expiry goes on
    assert [status_with(node, people.keys["bob"]) for node in nodes] == [200, 200]


# --- locking ---------------------------------------------------------------------------------

def test_a_locked_users_every_key_is_refused_by_every_node_until_unlocked(
        environ, client, other_node, people, catalog):
    nodes = (client, other_node)
    bobs_keys = [people.keys["bob"], run_ok(environ, "apikey", "create", "bob").strip()]
    assert [status_with(node, key) for node in nodes for key in bobs_keys] == [200] * 4

    assert run_ok(environ, "user", "lock", "bob") == (
        "locked user 'bob': every API key of theirs is refused until affix user unlock bob\n")

    for key in bobs_keys:
        assert_refused_by_every_node(nodes, key)
    assert [status_with(node, people.keys["eve"]) for node in nodes] == [200, 200]
    shown = client.simulate_get("/api/v3/users/2", headers=people.auth("ada"))
    assert (shown.status_code, shown.json["status"]) == (200, "locked")
    # the keys stay, for the unlock
    assert [key_id for key_id, login, *_ in api_keys(catalog) if login == "bob"] == [2, 4]

    assert run_ok(environ, "user", "unlock", "bob") == "unlocked user 'bob'\n"
    assert [status_with(node, key) for node in nodes for key in bobs_keys] == [200] * 4


def test_a_locked_users_resumable_upload_goes_no_further(environ, client, people, catalog):
    auth = people.auth("bob")
    path = tus.created(client, auth, 10)
    assert tus.patch(client, auth, path, 0, b"01234").status_code == 204

    run_ok(environ, "user", "lock", "bob")

    assert_unauthenticated(tus.patch(client, auth, path, 5, b"56789"), WRONG_CREDENTIALS)
    assert [(received, length) for _, received, length, _ in tus.uploads(catalog)] == [(5, 10)]


# --- deleting --------------------------------------------------------------------------------

def test_a_deleted_users_attachments_stay_and_show_the_deleted_user(
        environ, client, other_node, people, catalog, stored):
    people.add("wendy", name="Wendy Writer", permissions=[
        "view_work_packages", "add_work_packages", "edit_work_packages"])
    wendy = people.keys["wendy"]
    claimed = uploaded(client, people, "wendy", name="plan.txt", content=b"the plan")
    work_package = created(client, people, "wendy", attachment_ids=[claimed])
    unclaimed = uploaded(client, people, "wendy", name="draft.txt", content=b"a draft")
    # an upload she had not finished
    tus.created(client, people.auth("wendy"), 10)
    earlier_rows, earlier_files = stored.snapshot()

    assert run_ok(environ, "user", "delete", "wendy") == (
        "deleted user 'wendy' (id 4) and its 1 API key; its 2 attachments and 1 work package "
        "now show the author 'Deleted user' (id 5)\n")

    assert_refused_by_every_node((client, other_node), wendy)
    # every byte and row of hers is kept
    assert stored.snapshot() == (earlier_rows, earlier_files)
    deleted_user_link = {"href": "/api/v3/users/5", "title": DELETED_USER}
    for node in (client, other_node):
        attachment = node.simulate_get(f"/api/v3/attachments/{claimed}",
                                       headers=people.auth("eve"))
        assert attachment.status_code == 200
        assert attachment.json["_links"]["author"] == deleted_user_link
        shown = node.simulate_get(f"/api/v3/work_packages/{work_package}",
                                  headers=people.auth("eve"))
        assert shown.json["_links"]["author"] == deleted_user_link
        # she is gone; the one who stands for every deleted user is a locked user, whose login
        # nobody sees, not even an admin
        assert_error(node.simulate_get("/api/v3/users/4", headers=people.auth("ada")),
                     404, "NotFound", NO_SUCH_USER)
        placeholder = node.simulate_get("/api/v3/users/5", headers=people.auth("ada"))
        assert placeholder.json == {
            "_type": "User", "id": 5, "name": DELETED_USER, "admin": False, "status": "locked",
            "_links": {"self": {"href": "/api/v3/users/5", "title": DELETED_USER}}}
    with catalog.database.connection_context():
        assert [a.author_id for a in catalog.Attachment.select().where(
            catalog.Attachment.id.in_([claimed, unclaimed]))] == [5, 5]
    users, keys, memberships = accounts(catalog)
    assert [(user_id, name, locked) for user_id, _, name, locked in users] == [
        (1, "Ada Admin", False), (2, "Bob Builder", False), (3, "Eve Nopermission", False),
        (5, DELETED_USER, True)]
    assert [key_id for key_id, *_ in keys] == [1, 2, 3]
    assert 4 not in {user_id for user_id, *_ in memberships}


def test_every_deleted_user_shares_the_one_deleted_user(environ, client, people, catalog):
    attachment = uploaded(client, people, "bob")
    run_ok(environ, "user", "delete", "eve")
    assert run_ok(environ, "user", "delete", "bob") == (
        "deleted user 'bob' (id 2) and its 1 API key; its 1 attachment and 0 work packages "
        "now show the author 'Deleted user' (id 4)\n")
    users, _, _ = accounts(catalog)
    assert [(user_id, name) for user_id, _, name, _ in users] == [
        (1, "Ada Admin"), (4, DELETED_USER)]
    with catalog.database.connection_context():
        assert catalog.Attachment.get_by_id(attachment).author_id == 4
    # the placeholder is nobody an operator can name
    assert run_ok(environ, "apikey", "list", "ada").endswith("1 API key of 'ada'\n")


# --- refusals --------------------------------------------------------------------------------

REFUSALS = {
    "list for nobody": (["apikey", "list", "nobody"], "no user with the login 'nobody'"),
    "create for nobody": (["apikey", "create", "nobody", "--expires", "3"],
                          "no user with the login 'nobody'"),
    "revoke an unknown id": (["apikey", "revoke", "99"], "no API key with the id 99"),
    "revoke nothing": (["apikey", "revoke"], "name the id of the key to revoke, or --all USER"),
    "revoke an id and all": (["apikey", "revoke", "2", "--all", "bob"],
                             "name the id of the key to revoke, or --all USER"),
    "revoke all of nobody": (["apikey", "revoke", "--all", "nobody"],
                             "no user with the login 'nobody'"),
    "lock nobody": (["user", "lock", "nobody"], "no user with the login 'nobody'"),
    "unlock nobody": (["user", "unlock", "nobody"], "no user with the login 'nobody'"),
    "delete nobody": (["user", "delete", "nobody"], "no user with the login 'nobody'"),
}


@pytest.mark.parametrize("argv, message", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_command_says_why_in_one_line_and_changes_nothing(
        environ, people, catalog, capsys, argv, message):
    before = accounts(catalog)
    assert_refused(capsys, environ, argv, message)
    assert accounts(catalog) == before
