"""Webhook events written to the outbox in the transaction of their change (and never for a
change that was refused or rolled back), and the ``affix webhooks`` commands that manage
subscriptions. Delivering them is tests/system/test_webhook_delivery.py."""
import json

import pytest

from affix.app import open_catalog
from affix.app.settings import Settings
from affix.storage.migrations import dialect
from affix.storage.outbox import Outbox
from support.cli import affix
from support.client import upload, uploaded
from support.content import KiB, md5
from support.defaults import FROZEN_NOW, SMALL_LIMIT
from support.errors import DOES_NOT_EXIST, MAY_NOT_UPLOAD, assert_error
from support.state import containers, work_packages
from support.webhooks import SECRET, outbox, outbox_entries, subscribe
from support.work_packages import create, created, document, link

URL = "http://127.0.0.1:9/hooks"
ALL = ["attachment.created", "attachment.claimed", "attachment.deleted", "attachment.scanned",
       "attachment.quarantined"]
INTERNAL_ERROR = "An internal error has occurred."


@pytest.fixture
def cli_catalog(environ):
    """An independent handle on the database the commands write to."""
    catalog = open_catalog(Settings.from_environ(environ))
    yield catalog
    catalog.database.close()


def test_each_change_writes_its_event_for_each_subscription_that_wants_it(
        client, people, catalog, stored):
    everything = subscribe(catalog, URL, ALL, FROZEN_NOW)
    deletions = subscribe(catalog, URL + "/deleted", ["attachment.deleted"], FROZEN_NOW)

    attachment_id = uploaded(client, people, "ada", name="roof.txt", content=b"tiles")
    work_package_id = created(client, people, "ada", attachment_ids=[attachment_id])
    response = client.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                      headers=people.auth("ada"))

    assert response.status_code == 204
    assert outbox(catalog) == [
        (everything, "attachment.created", attachment_id, False),
        (everything, "attachment.claimed", attachment_id, False),
        (everything, "attachment.deleted", attachment_id, False),
        (deletions, "attachment.deleted", attachment_id, False),
    ]
    entries = outbox_entries(catalog)
    with catalog.database.connection_context():
        ada = catalog.User.get(login="ada").id
    claimed = json.loads(entries[1].body)
    assert claimed == {
        "id": entries[1].event_id,
        "type": "attachment.claimed",
        "occurredAt": "2014-05-21T08:51:20Z",
        "userId": ada,
        "attachment": {
            "id": attachment_id, "fileName": "roof.txt", "fileSize": 5,
            "contentType": "text/plain",
            "digest": {"algorithm": "md5", "hash": md5(b"tiles")},
            "status": "uploaded", "authorId": ada, "createdAt": "2014-05-21T08:51:20Z",
            "container": {"type": "WorkPackage", "id": work_package_id},
        },
    }
    # one event, one id, whichever subscription gets it; each event its own
    assert entries[2].event_id == entries[3].event_id and entries[2].body == entries[3].body
    assert len({entry.event_id for entry in entries}) == 3
    assert [entry.attempts for entry in entries] == [0, 0, 0, 0]
    assert {entry.next_attempt_at for entry in entries} == {FROZEN_NOW}


def test_without_subscriptions_nothing_is_written(client, people, catalog):
    uploaded(client, people, "bob")

    assert outbox(catalog) == []


@pytest.mark.parametrize("login, size, status, identifier, message, attribute", [
    ("eve", 1, 403, "MissingPermission", MAY_NOT_UPLOAD, None),
    ("bob", SMALL_LIMIT + 1, 422, "PropertyConstraintViolation",
     f"File is too large (maximum size is {SMALL_LIMIT} Bytes).", "fileSize"),
])
def test_a_refused_upload_writes_no_event(client, people, catalog, stored, login, size, status,
                                          identifier, message, attribute):
    subscribe(catalog, URL, ALL, FROZEN_NOW)

    response = upload(client, people, login, content=b"x" * size)

    assert_error(response, status, identifier, message, attribute)
    assert outbox(catalog) == []
    assert stored.snapshot() == ([], {})


def test_a_refused_claim_writes_no_event(client, people, catalog):
    own = uploaded(client, people, "ada", name="own.txt")
    others = uploaded(client, people, "bob", name="others.txt")
    subscribe(catalog, URL, ALL, FROZEN_NOW)

    response = create(client, people, "ada", document(attachments=[link(own), link(others)]))

    assert_error(response, 422, "PropertyConstraintViolation", DOES_NOT_EXIST, "attachments")
    assert outbox(catalog) == []
    assert containers(catalog) == {own: (None, None), others: (None, None)}


def refuse(catalog, operation, table, condition="TRUE"):
    """A trigger that fails ``operation`` on the rows of ``table`` for which ``condition`` (on
    NEW) holds: the database refusing a write half-way through a transaction."""
    database = catalog.database
    with database.connection_context():
        if dialect(database) == "sqlite":
            database.execute_sql(
                f'CREATE TRIGGER "refuse" BEFORE {operation} ON "{table}" WHEN {condition} '
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        else:
            database.execute_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql")
            database.execute_sql(
                f'CREATE TRIGGER "refuse" BEFORE {operation} ON "{table}" FOR EACH ROW '
                f"WHEN ({condition}) EXECUTE FUNCTION refuse()")


def test_a_claim_that_fails_in_its_transaction_takes_its_events_with_it(
        client, people, catalog, stored):
    first = uploaded(client, people, "ada", name="first.txt")
    second = uploaded(client, people, "ada", name="second.txt")
    subscribe(catalog, URL, ALL, FROZEN_NOW)
    refuse(catalog, "UPDATE", "attachments", f'NEW."id" = {second}')

    response = create(client, people, "ada", document(attachments=[link(first), link(second)]))

    assert_error(response, 500, "InternalServerError", INTERNAL_ERROR)
    # the first claim and its event were written before the second failed: both are undone
    assert outbox(catalog) == []
    assert containers(catalog) == {first: (None, None), second: (None, None)}
    assert work_packages(catalog) == []


def test_an_event_that_cannot_be_written_fails_its_upload_and_leaves_nothing(
        client, people, catalog, stored):
    subscribe(catalog, URL, ALL, FROZEN_NOW)
    refuse(catalog, "INSERT", "webhook_outbox")

    response = upload(client, people, "bob", content=b"y" * KiB)

    assert_error(response, 500, "InternalServerError", INTERNAL_ERROR)
    assert stored.snapshot() == ([], {})


def subscriptions(catalog):
    with catalog.database.connection_context():
        return [(each.id, each.url, each.secret, each.events, each.created_at is not None)
                for each in Outbox(catalog).subscriptions()]


def test_affix_webhooks_add_prints_a_new_secret_once_and_list_shows_it(environ, cli_catalog):
    status, printed = affix(environ, "webhooks", "add", URL)

    assert status == 0
    lines = printed.splitlines()
    secret = lines[2].strip()
    assert lines == [f"created webhook 1 to {URL} for {', '.join(ALL)}",
                     "its secret, shown only this once:", f"  {secret}"]
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert subscriptions(cli_catalog) == [(1, URL, secret, " ".join(ALL), True)]
    assert affix(environ, "webhooks", "list") == (0, f"1 {URL} {', '.join(ALL)}: 0 waiting\n")


def test_affix_webhooks_add_with_events_and_a_secret_prints_no_secret(environ, cli_catalog):
    status, printed = affix(environ, "webhooks", "add", URL, "--event", "attachment.deleted",
                            "--event", "attachment.created", "--secret", SECRET)

    assert (status, printed) == (
        0, f"created webhook 1 to {URL} for attachment.deleted, attachment.created\n")
    assert subscriptions(cli_catalog) == [
        (1, URL, SECRET, "attachment.deleted attachment.created", True)]


@pytest.mark.parametrize("argv, message", [
    (["add", "ftp://example.com/hook"],
     "a webhook URL is http://host/... or https://host/..., not 'ftp://example.com/hook'"),
    (["add", "http:///hook"], "a webhook URL is http://host/... or https://host/..., "
                              "not 'http:///hook'"),
    (["add", URL, "--event", "attachment.renamed"],
     f"unknown event 'attachment.renamed'; known events: {', '.join(ALL)}"),
    (["add", URL, "--secret", "too short"], "a webhook secret has 16 to 255 characters"),
    (["remove", "1"], "no webhook 1"),
])
def test_affix_webhooks_refuses_bad_input_and_changes_nothing(
        capsys, environ, cli_catalog, argv, message):
    status, printed = affix(environ, "webhooks", *argv)

    assert (status, printed) == (1, "")
    assert capsys.readouterr().err == f"affix: error: {message}\n"
    assert subscriptions(cli_catalog) == []


def test_affix_webhooks_remove_drops_the_subscription_and_its_undelivered_events(
        environ, cli_catalog):
    for url in (URL, URL + "/kept"):
        assert affix(environ, "webhooks", "add", url, "--secret", SECRET)[0] == 0
    with cli_catalog.database.connection_context(), cli_catalog.write_transaction():
        for attachment_id in (7, 8):
            Outbox(cli_catalog).enqueue("attachment.deleted", attachment_id,
                                        f"event-{attachment_id}", lambda: "{}", FROZEN_NOW)
    assert affix(environ, "webhooks", "list") == (0, (
        f"1 {URL} {', '.join(ALL)}: 2 waiting\n"
        f"2 {URL}/kept {', '.join(ALL)}: 2 waiting\n"))

    assert affix(environ, "webhooks", "remove", "1") == (
        0, "removed webhook 1 and its 2 undelivered events\n")

    assert subscriptions(cli_catalog) == [(2, URL + "/kept", SECRET, " ".join(ALL), True)]
    assert outbox(cli_catalog) == [(2, "attachment.deleted", 7, False),
                                   (2, "attachment.deleted", 8, False)]
