"""Removing uploads nobody claimed in time: ``storage.cleanup.remove_unclaimed``, the
``affix cleanup`` command, and a cleanup racing a claim. Attachments are created at chosen
moments through the app's clock; nothing sleeps."""
import datetime
import io
from pathlib import Path

import pytest

from affix.app.cli.commands import main
from affix.storage.models import QUARANTINED
from affix.storage.cleanup import remove_unclaimed
from affix.storage.models import utc_now
from affix.storage.stores import open_blob_store
from support.client import uploaded
from support.clocks import Clock
from support.defaults import FROZEN_NOW
from support.errors import DOES_NOT_EXIST, assert_error
from support.races import RACE_ROUNDS, race
from support.state import containers, work_packages
from support.work_packages import create, created, document, link, patch

MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def clock():
    return Clock(FROZEN_NOW)


@pytest.fixture
def blob_store(settings):
    return open_blob_store(settings.storage_url)


def upload_at(client, people, clock, moment, content, login="ada") -> int:
    clock.now = moment
    return uploaded(client, people, login, content=content)


def storage_keys(stored) -> dict:
    return {row[0]: row[4] for row in stored.rows()}


def cleanup_now(catalog, blob_store, cutoff) -> int:
    with catalog.database.connection_context():
        return remove_unclaimed(catalog, blob_store, cutoff, kept_statuses=(QUARANTINED,))


# --- remove_unclaimed ------------------------------------------------------------------------

def test_remove_unclaimed_removes_old_unclaimed_attachments_only(
        client, people, catalog, stored, clock, blob_store):
    cutoff = FROZEN_NOW
    old = upload_at(client, people, clock, cutoff - 180 * MINUTE, b"old")
    claimed = upload_at(client, people, clock, cutoff - 180 * MINUTE, b"old but claimed")
    created(client, people, "ada", attachment_ids=[claimed])
    someone_elses = upload_at(client, people, clock, cutoff - 90 * MINUTE, b"bob's", "bob")
    a_second_early = upload_at(client, people, clock, cutoff - datetime.timedelta(seconds=1),
                               b"a second early")
    at_the_cutoff = upload_at(client, people, clock, cutoff, b"at the cutoff")
    recent = upload_at(client, people, clock, cutoff + 60 * MINUTE, b"recent")
    keys = storage_keys(stored)

    assert cleanup_now(catalog, blob_store, cutoff) == 3

    kept = {claimed: b"old but claimed", at_the_cutoff: b"at the cutoff", recent: b"recent"}
    assert [row[0] for row in stored.rows()] == sorted(kept)
    assert stored.files() == {keys[attachment]: content for attachment, content in kept.items()}
    assert {old, someone_elses, a_second_early}.isdisjoint(containers(catalog))
    assert containers(catalog)[claimed] == ("WorkPackage", 1)
    # a second pass has nothing left to do
    assert cleanup_now(catalog, blob_store, cutoff) == 0
    assert [row[0] for row in stored.rows()] == sorted(kept)


def test_remove_unclaimed_with_nothing_stored_removes_nothing(catalog, stored, blob_store):
    assert cleanup_now(catalog, blob_store, FROZEN_NOW) == 0
    assert stored.snapshot() == ([], {})


# --- affix cleanup ---------------------------------------------------------------------------

def affix_cleanup(settings, **environ):
    """Run ``affix cleanup`` on the settings' data dir and database; its exit status and its
    stdout."""
    out = io.StringIO()
    status = main(["cleanup"], environ={"AFFIX_DATA_DIR": str(settings.data_dir),
                                        "AFFIX_DATABASE_URL": settings.database_url, **environ},
                  out=out)
    return status, out.getvalue()


# what the command says of resumable (tus) uploads when none expired
NO_RESUMABLE_UPLOADS = "removed 0 resumable uploads left unfinished past Upload-Expires\n"


@pytest.mark.parametrize("environ, grace_minutes", [
    ({"AFFIX_GRACE_PERIOD": "60"}, 60),
    ({}, 180),
], ids=["AFFIX_GRACE_PERIOD=60", "default grace period"])
@pytest.mark.parametrize("expired, message", [
    (0, "removed 0 unclaimed attachments older than {} minutes\n"),
    (1, "removed 1 unclaimed attachment older than {} minutes\n"),
    (2, "removed 2 unclaimed attachments older than {} minutes\n"),
])
def test_cleanup_command_removes_what_outlived_the_grace_period(
        client, people, catalog, stored, clock, settings, environ, grace_minutes, expired,
        message):
    # the command reads the database and blob folder the app writes to
    assert Path(settings.storage_url) == settings.data_dir / "blobs"
    grace = grace_minutes * MINUTE
    # the command's clock is the real one: keep well clear of the cutoff on either side
    now = utc_now()
    claimed = upload_at(client, people, clock, now - grace - 60 * MINUTE, b"claimed")
    created(client, people, "ada", attachment_ids=[claimed])
    within = upload_at(client, people, clock, now - grace + 10 * MINUTE, b"within the grace")
    for number in range(expired):
        upload_at(client, people, clock, now - grace - (10 + number) * MINUTE, b"expired")
    keys = storage_keys(stored)

    assert affix_cleanup(settings, **environ) == (
        0, message.format(grace_minutes) + NO_RESUMABLE_UPLOADS)

    assert [row[0] for row in stored.rows()] == [claimed, within]
    assert stored.files() == {keys[claimed]: b"claimed", keys[within]: b"within the grace"}


# --- a claim racing a cleanup ----------------------------------------------------------------

CLAIMS = {
    "creating a work package": lambda client, people, target, subject, attachment: create(
        client, people, "ada", document(subject, [link(attachment)])),
    "changing a work package": lambda client, people, target, subject, attachment: patch(
        client, people, "ada", target, document(subject, [link(attachment)], project=None)),
}


@pytest.mark.parametrize("claim", CLAIMS.values(), ids=CLAIMS.keys())
def test_a_claim_racing_a_cleanup_leaves_a_claimed_attachment_or_nothing(
        client, people, catalog, stored, clock, blob_store, claim):
    target = created(client, people, "ada", "Target")
    cutoff = FROZEN_NOW + MINUTE
    for round_number in range(RACE_ROUNDS):
        subject = f"round {round_number}"
        attachment = upload_at(client, people, clock, FROZEN_NOW, subject.encode())
        key = storage_keys(stored)[attachment]
        before = work_packages(catalog)

        removed, response = race(
            lambda: cleanup_now(catalog, blob_store, cutoff),
            lambda: claim(client, people, target, subject, attachment),
        )

        blob_exists = blob_store.path_of(key).exists()
        if removed:
            # the cleanup came first: no row, no blob, and the claim changed nothing
            assert (removed, attachment in containers(catalog), blob_exists) == (1, False, False)
            assert_error(response, 422, "PropertyConstraintViolation", DOES_NOT_EXIST,
                         "attachments")
            assert work_packages(catalog) == before
        else:
            # the claim came first: the attachment is claimed and its blob is there
            assert response.status_code in (200, 201), response.json
            assert containers(catalog)[attachment] == ("WorkPackage", response.json["id"])
            assert blob_exists
            assert response.json["subject"] == subject
    # every row has its blob and every blob its row; nothing unclaimed is left
    assert set(stored.files()) == set(storage_keys(stored).values())
    assert None not in {container_type for container_type, _ in containers(catalog).values()}
