"""Resumable uploads (tus 1.0) through falcon.testing on the local store: discovery, creation,
PATCHes at the offset, the checksum, HEAD, termination, expiry and cleanup with the app's
clock; an upload that ends as an ordinary attachment (digest, sniffed type, inspectors,
webhook event, Link header); and every refusal with what is stored after it."""
import dataclasses
import datetime
import io

import falcon.testing
import peewee
import pytest

from affix.app import create_app
from affix.app.cli.commands import main
from affix.app.settings import Settings, SettingsError
from affix.storage.cleanup import remove_expired_resumable_uploads
from affix.storage.partials import LocalPartials
from affix.storage.blob_store import StoreUnavailable
from affix.storage.resumable import LEASE_DURATION, LEASE_RENEWAL, ResumableUploads
from affix.storage.stores import open_blob_store
from support.content import md5, png_bytes, random_bytes
from support.defaults import FROZEN_NOW, SMALL_LIMIT
from support.errors import MAY_NOT_ADD_ATTACHMENTS, NOT_FOUND, UNAVAILABLE, assert_error
from support.faults import OnCue
from support.inspectors import Inspecting, Recorder
from support.tus import (
    LOCKED, OFFSET_OCTET_STREAM, TUS, TUS_PATH, assert_nothing_left, attachments, blob_files,
    checksum, create, created, encode_metadata, head, partial_files, patch, token_of, uploads,
)
from support.webhooks import outbox, subscribe
from support.work_packages import created as created_work_package

EXPIRY = datetime.timedelta(hours=24)
CONTENT = random_bytes(300_000, seed=16)
GONE = "The upload does not exist, or has expired."


# every upload's limit for these tests: conftest's is too small for the files tus is for, and
# tus takes none larger
LIMIT = 8 * 1024 * 1024


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, max_attachment_size=LIMIT)


def app_with(settings, plugin_manager, clock=lambda: FROZEN_NOW, **changes):
    return falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, **changes), plugin_manager=plugin_manager, clock=clock))


@pytest.fixture
def other_node(settings, plugin_manager, clock):
    """Another app on the same database and store, on the same clock: a second node."""
    return app_with(settings, plugin_manager, clock=clock)


def sent_in_parts(client, auth, path, content, part_size):
    offset = 0
    while offset < len(content):
        part = content[offset:offset + part_size]
        response = patch(client, auth, path, offset, part)
        assert response.status_code == 204, response.json
        offset += len(part)
        assert response.headers["upload-offset"] == str(offset)
    return response


# --- discovery and the protocol's own answers ----------------------------------------------------

def test_options_tells_a_client_without_a_key_what_the_server_speaks(client):
    response = client.simulate_options(TUS_PATH)
    assert response.status_code == 204
    assert {name: response.headers[name] for name in (
        "tus-resumable", "tus-version", "tus-extension", "tus-max-size",
        "tus-checksum-algorithm")} == {
        "tus-resumable": "1.0.0", "tus-version": "1.0.0",
        "tus-extension": "creation,creation-with-upload,termination,expiration,checksum,"
                         "concatenation,creation-defer-length",
        "tus-max-size": str(LIMIT), "tus-checksum-algorithm": "sha1,md5,sha256"}


def test_a_tus_max_size_of_0_turns_tus_off(settings, plugin_manager, people, catalog):
    client = app_with(settings, plugin_manager, tus_max_size=0)
    assert_error(client.simulate_options(TUS_PATH), 404, "NotFound", NOT_FOUND)
    assert_error(create(client, people.auth("ada"), 3), 404, "NotFound", NOT_FOUND)
    assert head(client, people.auth("ada"), f"{TUS_PATH}/abc").status_code == 404
    spec = client.simulate_get("/api/v3/spec.json").json
    assert not [path for path in spec["paths"] if "/tus" in path]


def test_a_request_in_another_tus_version_is_412(client, people, catalog):
    response = client.simulate_post(TUS_PATH, headers={
        **people.auth("ada"), "Tus-Resumable": "0.2.2", "Upload-Length": "3"})
    assert_error(response, 412, "PreconditionFailed",
                 "This server speaks tus 1.0.0: send Tus-Resumable: 1.0.0.")
    assert response.headers["tus-version"] == "1.0.0"
    assert uploads(catalog) == []
    # a HEAD need not name the version (as with tusd), but may not name another
    path = created(client, people.auth("ada"), 3)
    assert client.simulate_head(path, headers=people.auth("ada")).status_code == 200
    assert client.simulate_head(path, headers={
        **people.auth("ada"), "Tus-Resumable": "0.2.2"}).status_code == 412
    for response in (patch(client, people.auth("ada"), path, 0, b"abc",
                           headers={"Tus-Resumable": ""}),
                     client.simulate_delete(path, headers=people.auth("ada"))):
        assert response.status_code == 412
    assert uploads(catalog) == [(token_of(path), 0, 3, None)]


def test_creating_needs_a_key(client, catalog):
    response = client.simulate_post(TUS_PATH, headers={**TUS, "Upload-Length": "3"})
    assert response.status_code == 401
    assert uploads(catalog) == []


# --- the whole flow ------------------------------------------------------------------------------

def test_an_upload_in_parts_becomes_an_attachment(client, people, catalog, stored):
    subscription = subscribe(catalog, "http://127.0.0.1:9/hooks", ["attachment.created"],
                             FROZEN_NOW)
    auth = people.auth("ada")
    response = create(client, auth, len(CONTENT), filename="data.bin",
                      description="Measurements")
    assert response.status_code == 201
    path = response.headers["location"]
    assert path.startswith(f"{TUS_PATH}/") and len(token_of(path)) >= 40
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["upload-offset"] == "0"
    assert response.headers["upload-expires"] == "Thu, 22 May 2014 08:51:20 GMT"
    assert uploads(catalog) == [(token_of(path), 0, len(CONTENT), None)]
    assert attachments(catalog) == []

    last = sent_in_parts(client, auth, path, CONTENT, 100_000)
    [(attachment_id, *row)] = attachments(catalog)
    assert row == ["data.bin", len(CONTENT), md5(CONTENT), "application/octet-stream",
                   "uploaded", None, None]
    assert last.headers["link"] == f'</api/v3/attachments/{attachment_id}>; rel="attachment"'
    assert uploads(catalog) == [(token_of(path), len(CONTENT), len(CONTENT), attachment_id)]
    assert list(blob_files(stored).values()) == [CONTENT]
    assert partial_files(stored.blob_root) == {}
    assert outbox(catalog) == [(subscription, "attachment.created", attachment_id, False)]
    document = client.simulate_get(f"/api/v3/attachments/{attachment_id}", headers=auth).json
    assert document["description"]["raw"] == "Measurements"
    assert document["_links"]["container"] == {"href": None}
    # HEAD of the finished upload says where the attachment is
    finished = head(client, auth, path)
    assert finished.status_code == 200
    assert finished.headers["link"] == last.headers["link"]
    assert finished.headers["upload-offset"] == str(len(CONTENT))


@pytest.mark.on_cue("partials")
def test_a_patch_that_does_not_finish_lets_its_lease_go_with_the_offset_it_records(
        client, people, catalog, services):
    # in one write: a client that reads the new offset and sends its next PATCH at once must
    # find the upload free, not locked (423) while the request that recorded it tidies up
    seen_while_tidying = []

    def appending(append, progress, chunks):
        appended = OnCue(append(progress, chunks))

        def recorded(record):
            with catalog.database.connection_context():
                row = ResumableUploads(catalog).by_token(progress.token)
            seen_while_tidying.append((row.received, row.lease_token, row.lease_until))
            record()

        appended.around("recorded", recorded)
        return appended

    services.partials.around("append", appending)
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:10]).status_code == 204
    assert seen_while_tidying == [(10, None, None)]


def test_head_answers_the_offset_the_length_and_the_metadata(client, people, stored):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT), filename="data.bin")
    assert patch(client, auth, path, 0, CONTENT[:1000]).status_code == 204
    response = head(client, auth, path)
    assert response.status_code == 200
    assert {name: response.headers.get(name) for name in (
        "upload-offset", "upload-length", "upload-metadata", "cache-control", "link")} == {
        "upload-offset": "1000", "upload-length": str(len(CONTENT)),
        "upload-metadata": encode_metadata(filename="data.bin"),
        "cache-control": "no-store", "link": None}
    assert partial_files(stored.blob_root) == {token_of(path): CONTENT[:1000]}


def test_creation_with_upload_sends_the_whole_file_in_the_post(client, people, catalog, stored):
    picture = png_bytes(4, 3)
    response = create(client, people.auth("bob"), len(picture), body=picture, name="cat.png",
                      headers={"Upload-Checksum": checksum("sha256", picture)})
    assert response.status_code == 201, response.json
    assert response.headers["upload-offset"] == str(len(picture))
    [(attachment_id, *row)] = attachments(catalog)
    # "name", as Uppy sends it; the type sniffed from the bytes
    assert row == ["cat.png", len(picture), md5(picture), "image/png", "uploaded", None, None]
    assert response.headers["link"] == f'</api/v3/attachments/{attachment_id}>; rel="attachment"'
    assert list(blob_files(stored).values()) == [picture]


def test_an_empty_file_is_an_attachment_as_soon_as_it_is_created(client, people, catalog,
                                                                  stored):
    auth = people.auth("ada")
    response = create(client, auth, 0, filename="empty.txt")
    assert response.status_code == 201
    [(attachment_id, *row)] = attachments(catalog)
    assert row == ["empty.txt", 0, md5(b""), "application/octet-stream", "uploaded", None,
                   None]
    assert response.headers["upload-offset"] == "0"
    assert response.headers["link"] == f'</api/v3/attachments/{attachment_id}>; rel="attachment"'
    path = response.headers["location"]
    assert uploads(catalog) == [(token_of(path), 0, 0, attachment_id)]
    assert list(blob_files(stored).values()) == [b""]
    assert partial_files(stored.blob_root) == {}
    # a client that sends its (empty) PATCH all the same learns the same
    again = patch(client, auth, path, 0, b"")
    assert again.status_code == 204
    assert (again.headers["upload-offset"], again.headers["link"]) == (
        "0", response.headers["link"])
    assert [row[0] for row in attachments(catalog)] == [attachment_id]


def test_a_patch_to_a_finished_upload_answers_where_its_attachment_is(client, people,
                                                                       catalog, stored):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:1000]).status_code == 204
    last = patch(client, auth, path, 1000, CONTENT[1000:])
    assert last.status_code == 204
    [(attachment_id, *_)] = attachments(catalog)
    # the client never saw the last answer and sends its PATCH again, or asks from the end
    for offset in (1000, len(CONTENT)):
        retried = patch(client, auth, path, offset, CONTENT[offset:])
        assert retried.status_code == 204
        assert retried.headers["upload-offset"] == str(len(CONTENT))
        assert retried.headers["link"] == last.headers["link"] == (
            f'</api/v3/attachments/{attachment_id}>; rel="attachment"')
    assert uploads(catalog) == [(token_of(path), len(CONTENT), len(CONTENT), attachment_id)]
    assert [row[0] for row in attachments(catalog)] == [attachment_id]
    assert list(blob_files(stored).values()) == [CONTENT]
    assert partial_files(stored.blob_root) == {}


@pytest.mark.on_cue("stored_uploads")
@pytest.mark.parametrize("retried_from", [len(CONTENT), 1000])
def test_a_patch_after_a_crash_while_finishing_finishes_the_attachment(
        client, people, catalog, stored, clock, services, retried_from):
    subscription = subscribe(catalog, "http://127.0.0.1:9/hooks", ["attachment.created"],
                             FROZEN_NOW)
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT), filename="data.bin")
    assert patch(client, auth, path, 0, CONTENT[:1000]).status_code == 204
    # the node dies once the attachment row is committed: nothing of finishing happens after
    # it, and the answer never reaches the client
    services.stored_uploads.replace("finish", lambda *crashed, **options: None)
    patch(client, auth, path, 1000, CONTENT[1000:])
    services.stored_uploads.restore("finish")
    [(attachment_id, *row)] = attachments(catalog)
    assert row == ["data.bin", len(CONTENT), "", "application/octet-stream", "prepared",
                   None, None]
    assert uploads(catalog) == [(token_of(path), len(CONTENT), len(CONTENT), attachment_id)]

    # not finished: every byte is there, but no Link names an attachment that is not
    asked = head(client, auth, path)
    assert asked.status_code == 200
    assert asked.headers["upload-offset"] == str(len(CONTENT))
    assert "link" not in asked.headers

    # the client's retry of its last PATCH, or an empty one at the end, finishes it
    retried = patch(client, auth, path, retried_from, CONTENT[retried_from:])
    assert retried.status_code == 204
    assert retried.headers["upload-offset"] == str(len(CONTENT))
    assert retried.headers["link"] == f'</api/v3/attachments/{attachment_id}>; rel="attachment"'
    assert attachments(catalog) == [(attachment_id, "data.bin", len(CONTENT), md5(CONTENT),
                                     "application/octet-stream", "uploaded", None, None)]
    assert outbox(catalog) == [(subscription, "attachment.created", attachment_id, False)]
    assert uploads(catalog) == [(token_of(path), len(CONTENT), len(CONTENT), attachment_id)]
    assert list(blob_files(stored).values()) == [CONTENT]
    assert partial_files(stored.blob_root) == {}
    assert head(client, auth, path).headers["link"] == retried.headers["link"]
    got = client.simulate_get(f"/api/v3/attachments/{attachment_id}/content", headers=auth)
    assert (got.status_code, got.content) == (200, CONTENT)


@pytest.mark.on_cue("catalog", "partials")
@pytest.mark.parametrize("failure", ["store", "database"])
@pytest.mark.parametrize("retried_from", [5, 10])
def test_a_passing_failure_while_finishing_keeps_the_upload_for_the_retried_patch(
        client, people, catalog, stored, services, failure, retried_from):
    auth = people.auth("ada")
    path = created(client, auth, 10, filename="notes.txt")
    assert patch(client, auth, path, 0, b"hello").status_code == 204
    if failure == "store":
        services.partials.fail_once("commit", StoreUnavailable("the disk is away"))
    else:
        services.catalog.fail_once("add_attachment",
                                   peewee.OperationalError("database is locked"))
    response = patch(client, auth, path, 5, b"world")
    assert_error(response, 503, "ServiceUnavailable", UNAVAILABLE)
    assert response.headers["retry-after"] == "5"
    # every byte is kept, and what finishing made so far: no attachment yet
    prepared = attachments(catalog)
    assert [row[5] for row in prepared] == ([] if failure == "database" else ["prepared"])
    assert uploads(catalog) == [(token_of(path), 10, 10, prepared[0][0] if prepared else None)]
    assert partial_files(stored.blob_root) == {token_of(path): b"helloworld"}
    assert blob_files(stored) == {}
    asked = head(client, auth, path)
    assert (asked.status_code, asked.headers["upload-offset"]) == (200, "10")
    assert "link" not in asked.headers

    # the client's retry of its last PATCH, or an empty one at the end, finishes it
    retried = patch(client, auth, path, retried_from, b"helloworld"[retried_from:])
    assert retried.status_code == 204, retried.json
    [(attachment_id, *row)] = attachments(catalog)
    assert row == ["notes.txt", 10, md5(b"helloworld"), "text/plain", "uploaded", None, None]
    assert retried.headers["link"] == f'</api/v3/attachments/{attachment_id}>; rel="attachment"'
    assert uploads(catalog) == [(token_of(path), 10, 10, attachment_id)]
    assert partial_files(stored.blob_root) == {}
    assert list(blob_files(stored).values()) == [b"helloworld"]


@pytest.mark.on_cue("partials", "attachments")
def test_a_delete_that_read_the_upload_before_its_retry_finished_it_deletes_the_attachment(
        client, people, catalog, stored, services, other_node):
    auth = people.auth("ada")
    path = created(client, auth, 10, filename="notes.txt")
    assert patch(client, auth, path, 0, b"hello").status_code == 204
    services.partials.fail_once("commit", StoreUnavailable("the disk is away"))
    assert patch(client, auth, path, 5, b"world").status_code == 503
    [(attachment_id, *_)] = attachments(catalog)
    subscription = subscribe(catalog, "http://127.0.0.1:9/hooks",
                             ["attachment.created", "attachment.deleted"], FROZEN_NOW)

    def finished_meanwhile(delete, user, view):
        # the author's retry of the last PATCH, on another node, finished the upload after
        # the DELETE read it
        assert view.record.status == "prepared"
        assert patch(other_node, auth, path, 5, b"world").status_code == 204
        return delete(user, view)

    services.attachments.around("delete", finished_meanwhile)
    response = client.simulate_delete(f"/api/v3/attachments/{attachment_id}", headers=auth)

    assert response.status_code == 204
    assert attachments(catalog) == []
    assert blob_files(stored) == {}
    # the attachment it had become was deleted as one: its subscribers hear of it
    assert outbox(catalog) == [(subscription, "attachment.created", attachment_id, False),
                               (subscription, "attachment.deleted", attachment_id, False)]


@pytest.mark.on_cue("stored_uploads")
def test_terminating_an_upload_whose_finishing_failed_removes_what_it_prepared(
        client, people, catalog, stored, services):
    auth = people.auth("ada")
    path = created(client, auth, 10)
    services.stored_uploads.fail_once("finish", StoreUnavailable("the disk is away"))
    assert patch(client, auth, path, 0, b"helloworld").status_code == 503
    assert [row[5] for row in attachments(catalog)] == ["prepared"]
    assert client.simulate_delete(path, headers={**auth, **TUS}).status_code == 204
    assert_nothing_left(catalog, stored)


@pytest.mark.on_cue("stored_uploads")
def test_a_whole_file_in_a_creation_whose_finishing_failed_leaves_nothing(
        client, people, catalog, stored, services):
    # its client never learnt where the upload is: nothing to retry
    services.stored_uploads.fail_once("finish", StoreUnavailable("the disk is away"))
    response = create(client, people.auth("ada"), 10, body=b"helloworld")
    assert_error(response, 503, "ServiceUnavailable", UNAVAILABLE)
    assert_nothing_left(catalog, stored)


@pytest.mark.on_cue("partials")
def test_an_upload_cancelled_while_its_stalled_patch_finishes_becomes_no_attachment(
        client, people, catalog, stored, clock, other_node, services):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))

    def stalled_then_cancelled(commit, progress):
        key = commit(progress)
        # the node stalls past its lease before the attachment row; the client gives up
        # and cancels the upload through another node
        clock.advance(LEASE_DURATION)
        assert other_node.simulate_delete(path, headers={**auth, **TUS}).status_code == 204
        return key

    services.partials.around("commit", stalled_then_cancelled)
    response = patch(client, auth, path, 0, CONTENT)
    assert_error(response, 423, "Locked", LOCKED)
    assert uploads(catalog) == []
    assert attachments(catalog) == []
    assert stored.files() == {}


def test_an_upload_into_a_work_package(client, people, catalog):
    work_package_id = created_work_package(client, people, "ada")
    auth = people.auth("ada")
    response = create(client, auth, len(CONTENT), body=CONTENT, filename="plan.bin",
                      container=f"/api/v3/work_packages/{work_package_id}")
    assert response.status_code == 201, response.json
    [(attachment_id, *row)] = attachments(catalog)
    assert row[-2:] == ["WorkPackage", work_package_id]
    listed = client.simulate_get(f"/api/v3/work_packages/{work_package_id}/attachments",
                                 headers=auth).json
    assert [element["id"] for element in listed["_embedded"]["elements"]] == [attachment_id]


def test_inspectors_see_every_byte_once_in_order(client, people, plugin_manager):
    recorder = Recorder()
    plugin = Inspecting(recorder)
    plugin_manager.register(plugin)
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    sent_in_parts(client, auth, path, CONTENT, 70_000)
    # one inspection, where the bytes are assembled, once the last one is there
    assert plugin.asked == [("ada", None)]
    assert b"".join(recorder.chunks) == CONTENT
    assert [(upload.size, upload.md5) for upload in recorder.judged] == [
        (len(CONTENT), md5(CONTENT))]
    assert recorder.closed == 1


# --- refusals, and what is stored after each -----------------------------------------------------

def test_a_patch_at_the_wrong_offset_is_409_and_changes_nothing(client, people, catalog, stored):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:1000]).status_code == 204
    for offset in (0, 999, 1001):
        response = patch(client, auth, path, offset, CONTENT[offset:offset + 500])
        assert_error(response, 409, "UpdateConflict",
                     f"The upload has 1000 bytes: a PATCH continues at Upload-Offset 1000, "
                     f"not {offset}.")
        assert response.headers["tus-resumable"] == "1.0.0"
    assert uploads(catalog) == [(token_of(path), 1000, len(CONTENT), None)]
    assert partial_files(stored.blob_root) == {token_of(path): CONTENT[:1000]}


def test_a_wrong_checksum_is_460_and_drops_the_patch_s_bytes(client, people, catalog, stored):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:1000],
                 headers={"Upload-Checksum": checksum("md5", CONTENT[:1000])}).status_code == 204
    response = patch(client, auth, path, 1000, CONTENT[1000:5000],
                     headers={"Upload-Checksum": checksum("sha1", b"something else")})
    assert_error(response, 460, "ChecksumMismatch",
                 "The bytes sent do not match Upload-Checksum: none of them were stored.")
    assert uploads(catalog) == [(token_of(path), 1000, len(CONTENT), None)]
    assert partial_files(stored.blob_root) == {token_of(path): CONTENT[:1000]}
    # the same bytes, sent again with their checksum, go on from there
    assert patch(client, auth, path, 1000, CONTENT[1000:],
                 headers={"Upload-Checksum": checksum("sha256", CONTENT[1000:])}
                 ).status_code == 204
    assert list(blob_files(stored).values()) == [CONTENT]


@pytest.mark.parametrize("value, message", [
    ("crc32 AAAA", "one of sha1, md5, sha256 and a Base64 digest"),
    ("sha1 not-base64!", "an algorithm and a Base64 digest"),
    ("sha1", "one of sha1, md5, sha256 and a Base64 digest"),
    # a byte past ASCII, as gunicorn passes on in a header's value
    ("sha1 \u00e9", "an algorithm and a Base64 digest"),
])
def test_an_unusable_checksum_header_is_400(client, people, catalog, stored, value, message):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    response = patch(client, auth, path, 0, CONTENT[:10], headers={"Upload-Checksum": value})
    assert_error(response, 400, "InvalidRequestBody", f"Upload-Checksum must be {message}.")
    assert uploads(catalog) == [(token_of(path), 0, len(CONTENT), None)]
    assert partial_files(stored.blob_root) == {}


def test_an_upload_over_the_tus_limit_is_413_before_anything_is_stored(
        settings, plugin_manager, people, catalog, stored):
    client = app_with(settings, plugin_manager, tus_max_size=1000)
    response = create(client, people.auth("ada"), 1001, body=b"x" * 1001)
    assert_error(response, 413, "PropertyConstraintViolation",
                 "File is too large (maximum size is 1000 Bytes).")
    assert_nothing_left(catalog, stored)
    # tus's own limit lowers every upload's
    assert settings.max_attachment_size == LIMIT
    assert create(client, people.auth("ada"), 1000).status_code == 201


def test_a_tus_limit_above_every_upload_s_is_lowered_to_it(settings, plugin_manager, people,
                                                           catalog, stored):
    # AFFIX_MAX_ATTACHMENT_SIZE is the largest file accepted, whichever way it comes
    client = app_with(settings, plugin_manager, max_attachment_size=SMALL_LIMIT,
                      tus_max_size=10 * 1024 ** 3)
    auth = people.auth("ada")
    announced = client.simulate_options(TUS_PATH).headers["tus-max-size"]
    configured = client.simulate_get("/api/v3/configuration", headers=auth).json[
        "maximumAttachmentFileSize"]
    assert announced == str(configured) == str(SMALL_LIMIT)
    too_large = f"File is too large (maximum size is {SMALL_LIMIT} Bytes)."
    for response in (create(client, auth, SMALL_LIMIT + 1),
                     create(client, auth, SMALL_LIMIT + 1, body=b"x" * (SMALL_LIMIT + 1))):
        assert_error(response, 413, "PropertyConstraintViolation", too_large)
    assert_nothing_left(catalog, stored)
    # a file of the limit goes up, as it would in one request
    response = create(client, auth, SMALL_LIMIT, body=CONTENT[:SMALL_LIMIT])
    assert response.status_code == 201, response.json
    assert [row[2:4] for row in attachments(catalog)] == [
        (SMALL_LIMIT, md5(CONTENT[:SMALL_LIMIT]))]


def test_more_bytes_than_the_upload_length_are_413(client, people, catalog, stored):
    auth = people.auth("ada")
    path = created(client, auth, 100)
    assert patch(client, auth, path, 0, b"a" * 60).status_code == 204
    response = patch(client, auth, path, 60, b"b" * 41)
    assert_error(response, 413, "PropertyConstraintViolation",
                 "File is too large (maximum size is 100 Bytes).")
    assert uploads(catalog) == [(token_of(path), 60, 100, None)]
    assert partial_files(stored.blob_root) == {token_of(path): b"a" * 60}


def test_a_patch_without_its_content_type_is_415(client, people, catalog):
    auth = people.auth("ada")
    path = created(client, auth, 100)
    response = client.simulate_patch(path, body=b"abc", headers={
        **auth, **TUS, "Upload-Offset": "0", "Content-Type": "application/octet-stream"})
    assert_error(response, 415, "TypeNotSupported",
                 f"Expected CONTENT-TYPE to be {OFFSET_OCTET_STREAM}.")
    assert uploads(catalog) == [(token_of(path), 0, 100, None)]


@pytest.mark.parametrize("headers, message", [
    ({"Upload-Length": "-1"}, "Upload-Length must be the size of the file in bytes."),
    ({"Upload-Metadata": "filename !!"},
     "Upload-Metadata must be keys with Base64 values of UTF-8 text."),
    # a byte past ASCII, as gunicorn passes on in a header's value
    ({"Upload-Metadata": "filename \u00e9"},
     "Upload-Metadata must be keys with Base64 values of UTF-8 text."),
])
def test_an_unusable_creation_header_is_400(client, people, catalog, headers, message):
    response = client.simulate_post(TUS_PATH, headers={
        **people.auth("ada"), **TUS, "Upload-Length": "3", **headers})
    assert_error(response, 400, "InvalidRequestBody", message)
    assert uploads(catalog) == []


@pytest.mark.parametrize("value", ["+5", " 5_0", "\u00b2", "-1", "5.0", "0x5", ""])
def test_upload_length_and_offset_are_ascii_digits_alone(client, people, catalog, stored,
                                                         value):
    auth = people.auth("ada")
    assert_error(create(client, auth, 5, headers={"Upload-Length": value}), 400,
                 "InvalidRequestBody", "Upload-Length must be the size of the file in bytes.")
    assert uploads(catalog) == []
    path = created(client, auth, 10)
    assert_error(patch(client, auth, path, 0, b"hello", headers={"Upload-Offset": value}),
                 400, "InvalidRequestBody",
                 "Upload-Offset must be the number of bytes the upload has.")
    assert uploads(catalog) == [(token_of(path), 0, 10, None)]
    assert partial_files(stored.blob_root) == {}


# what int() takes (the WSGI validator of falcon.testing lets nothing else through)
@pytest.mark.parametrize("value", ["+5", " 5_0"])
def test_a_content_length_is_ascii_digits_alone(client, people, catalog, stored, value):
    auth = people.auth("ada")
    message = "Content-Length must be the number of bytes of the body."
    assert_error(create(client, auth, 5, body=b"hello", headers={"Content-Length": value}),
                 400, "InvalidRequestBody", message)
    assert uploads(catalog) == []
    path = created(client, auth, 10)
    assert_error(patch(client, auth, path, 0, b"hello", headers={"Content-Length": value}),
                 400, "InvalidRequestBody", message)
    assert uploads(catalog) == [(token_of(path), 0, 10, None)]
    assert partial_files(stored.blob_root) == {}
    assert attachments(catalog) == []


# past the 4,300 digits Python's int() takes from a string (ValueError, once a 500); such a
# Content-Length neither falcon.testing's WSGI validator nor gunicorn lets through
PAST_INT_DIGITS = "9" * 5000


def test_counts_past_python_s_digit_limit_are_answered_as_tus_says(
        client, people, catalog, stored):
    auth = people.auth("ada")
    limit = client.simulate_options(TUS_PATH).headers["tus-max-size"]
    # a length past any limit: 413, as tus says for one over Tus-Max-Size
    assert_error(create(client, auth, 5, headers={"Upload-Length": PAST_INT_DIGITS}), 413,
                 "PropertyConstraintViolation",
                 f"File is too large (maximum size is {limit} Bytes).")
    assert uploads(catalog) == []
    # leading zeros are no count of their own
    padded = create(client, auth, 5, headers={"Upload-Length": "0" * 5000 + "5"})
    assert padded.status_code == 201
    path = padded.headers["location"]
    assert_error(patch(client, auth, path, 0, b"hel", headers={"Upload-Offset": PAST_INT_DIGITS}),
                 400, "InvalidRequestBody",
                 "Upload-Offset must be the number of bytes the upload has.")
    assert uploads(catalog) == [(token_of(path), 0, 5, None)]
    assert partial_files(stored.blob_root) == {}
    assert patch(client, auth, path, 0, b"hel",
                 headers={"Upload-Offset": "0" * 5000}).headers["upload-offset"] == "3"


def test_a_file_name_is_needed(client, people, catalog):
    response = create(client, people.auth("ada"), 3, description="nameless")
    assert_error(response, 422, "PropertyConstraintViolation", "File name can't be blank.",
                 "fileName")
    assert uploads(catalog) == []


def test_someone_else_s_upload_is_404_whatever_is_asked(client, people, catalog, stored):
    path = created(client, people.auth("ada"), len(CONTENT))
    assert patch(client, people.auth("ada"), path, 0, CONTENT[:10]).status_code == 204
    bob = people.auth("bob")
    for response in (head(client, bob, path), patch(client, bob, path, 10, CONTENT[10:20]),
                     client.simulate_delete(path, headers={**bob, **TUS})):
        assert response.status_code == 404
    assert_error(patch(client, bob, path, 10, b"x"), 404, "NotFound", GONE)
    assert uploads(catalog) == [(token_of(path), 10, len(CONTENT), None)]
    assert partial_files(stored.blob_root) == {token_of(path): CONTENT[:10]}


def test_an_expired_upload_is_404_and_cleanup_removes_its_bytes(
        client, people, catalog, stored, clock, settings):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    clock.advance(datetime.timedelta(hours=23))
    # each PATCH moves the expiry on
    response = patch(client, auth, path, 0, CONTENT[:10])
    assert response.headers["upload-expires"] == "Fri, 23 May 2014 07:51:20 GMT"
    clock.advance(datetime.timedelta(hours=2))
    kept = created(client, auth, 5)
    clock.advance(datetime.timedelta(hours=22))
    # a HEAD's answer has no body
    assert head(client, auth, path).status_code == 404
    assert_error(patch(client, auth, path, 10, CONTENT[10:20]), 404, "NotFound", GONE)
    assert head(client, auth, kept).status_code == 200
    assert partial_files(stored.blob_root) == {token_of(path): CONTENT[:10]}

    with catalog.database.connection_context():
        blob_store = open_blob_store(settings.storage_url)
        partials = LocalPartials(blob_store)
        table = ResumableUploads(catalog)

        def cleanup(now):
            return remove_expired_resumable_uploads(table, partials, blob_store, now)

        assert cleanup(clock() - EXPIRY) == 0
        assert cleanup(clock()) == 1
    assert uploads(catalog) == [(token_of(kept), 0, 5, None)]
    assert stored.files() == {}


def test_cleanup_keeps_a_finished_upload_s_attachment_but_not_one_a_crash_left_prepared(
        client, people, catalog, stored, clock, settings):
    auth = people.auth("ada")
    finished = create(client, auth, len(CONTENT), body=CONTENT).headers["location"]
    [(kept_id, *_)] = attachments(catalog)
    crashed = created(client, auth, 5, filename="crashed.txt")
    assert patch(client, auth, crashed, 0, b"hell").status_code == 204
    blob_store = open_blob_store(settings.storage_url)
    partials = LocalPartials(blob_store)
    with catalog.database.connection_context():
        table = ResumableUploads(catalog)
        # a node died while finishing: the bytes committed, the attachment still prepared
        upload = table.by_token(token_of(crashed))
        key = partials.commit(upload.progress)
        record = catalog.add_attachment(
            file_name="crashed.txt", file_size=5, content_type="application/octet-stream",
            charset=None, md5="", description="", author=upload.author, container_type=None,
            container_id=None, status="prepared", storage_key=key, created_at=clock())
        table.became(upload, table.take_lease(upload, clock(), clock() + LEASE_DURATION),
                     record.id)
        clock.advance(EXPIRY + LEASE_DURATION)
        assert remove_expired_resumable_uploads(table, partials, blob_store, clock()) == 2
    assert uploads(catalog) == []
    assert [row[0] for row in attachments(catalog)] == [kept_id]
    assert list(blob_files(stored).values()) == [CONTENT]
    assert head(client, auth, finished).status_code == 404


def test_cleanup_keeps_an_upload_whose_expiry_a_patch_moved_on_since_it_was_listed(
        client, people, catalog, stored, clock, settings):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    clock.advance(datetime.timedelta(hours=23))

    def patched_once_listed(list_expired, cutoff):
        expired = list_expired(cutoff)
        # between the listing and the lease, the client goes on (cleanup's clock runs ahead)
        assert patch(client, auth, path, 0, CONTENT[:10]).status_code == 204
        return expired

    # cleanup's table of uploads
    table = OnCue(ResumableUploads(catalog))
    table.around("expired", patched_once_listed)
    blob_store = open_blob_store(settings.storage_url)
    with catalog.database.connection_context():
        assert remove_expired_resumable_uploads(
            table, LocalPartials(blob_store), blob_store,
            clock() + datetime.timedelta(hours=2)) == 0
    assert uploads(catalog) == [(token_of(path), 10, len(CONTENT), None)]
    assert partial_files(stored.blob_root) == {token_of(path): CONTENT[:10]}


class CleanupWhileFinishing(Recorder):
    """An inspector of the finished file (read back for the attachment) that lets time pass
    past the upload's expiry and its first lease, and runs cleanup meanwhile."""

    def __init__(self, clock, cleanup):
        super().__init__()
        self._clock = clock
        self._cleanup = cleanup
        self.removed = []

    def feed(self, chunk):
        # past the lease the PATCH took when it began, not past one from when it finished
        self._clock.advance(LEASE_DURATION - datetime.timedelta(seconds=1))
        self.removed.append(self._cleanup(self._clock()))
        super().feed(chunk)


def test_cleanup_cannot_take_an_upload_while_it_becomes_an_attachment(
        settings, plugin_manager, people, catalog, stored, clock):
    client = app_with(settings, plugin_manager, clock=clock, tus_expiry=60)
    blob_store = open_blob_store(settings.storage_url)

    def cleanup(now):
        with catalog.database.connection_context():
            return remove_expired_resumable_uploads(
                ResumableUploads(catalog), LocalPartials(blob_store), blob_store, now)

    recorder = CleanupWhileFinishing(clock, cleanup)
    plugin_manager.register(Inspecting(recorder))
    auth = people.auth("ada")
    data = CONTENT[:1000]
    path = created(client, auth, len(data))
    # a PATCH whose one read takes just under a minute: its lease is never renewed while read
    body = ClockedBody(data, clock, LEASE_RENEWAL - datetime.timedelta(seconds=1))
    response = patch_streaming(client, auth, path, 0, body, len(data))
    assert response.status_code == 204, response.json
    assert recorder.removed == [0]
    [(attachment_id, *row)] = attachments(catalog)
    assert row == ["notes.txt", len(data), md5(data), "application/octet-stream", "uploaded",
                   None, None]
    assert response.headers["link"] == f'</api/v3/attachments/{attachment_id}>; rel="attachment"'
    assert list(blob_files(stored).values()) == [data]


def test_affix_cleanup_removes_expired_uploads(settings, client, people, catalog, stored,
                                               environ):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:10]).status_code == 204
    out = io.StringIO()
    # the app's clock stands in 2014: by the wall clock, the upload expired long ago
    assert main(["cleanup"], environ=environ, out=out) == 0
    assert out.getvalue().splitlines()[-1] == (
        "removed 1 resumable upload left unfinished past Upload-Expires")
    assert_nothing_left(catalog, stored)


def test_a_patch_while_another_holds_the_upload_is_423_until_its_lease_runs_out(
        client, people, catalog, stored, clock):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    with catalog.database.connection_context():
        table = ResumableUploads(catalog)
        # another node's PATCH, writing this very upload
        lease = table.take_lease(table.by_token(token_of(path)), clock(),
                                 clock() + LEASE_DURATION)
        assert lease is not None
    for response in (patch(client, auth, path, 0, CONTENT[:10]),
                     client.simulate_delete(path, headers={**auth, **TUS})):
        assert_error(response, 423, "Locked", LOCKED)
    assert uploads(catalog) == [(token_of(path), 0, len(CONTENT), None)]
    assert partial_files(stored.blob_root) == {}
    # that node died: once its lease has run out, the upload goes on
    clock.advance(LEASE_DURATION)
    assert patch(client, auth, path, 0, CONTENT[:10]).status_code == 204
    assert uploads(catalog) == [(token_of(path), 10, len(CONTENT), None)]


def test_termination_removes_the_upload_and_its_bytes(client, people, catalog, stored):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:10]).status_code == 204
    response = client.simulate_delete(path, headers={**auth, **TUS})
    assert response.status_code == 204
    assert_nothing_left(catalog, stored)
    # a HEAD's answer has no body
    assert head(client, auth, path).status_code == 404


def test_terminating_a_finished_upload_keeps_its_attachment(client, people, catalog, stored):
    auth = people.auth("ada")
    response = create(client, auth, len(CONTENT), body=CONTENT)
    path = response.headers["location"]
    assert client.simulate_delete(path, headers={**auth, **TUS}).status_code == 204
    assert uploads(catalog) == []
    assert [row[3] for row in attachments(catalog)] == [md5(CONTENT)]
    assert list(blob_files(stored).values()) == [CONTENT]


def test_a_type_off_the_allowlist_is_refused_at_the_end_leaving_nothing(
        settings, plugin_manager, people, catalog, stored):
    client = app_with(settings, plugin_manager, allowlist=("image/png",))
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT), filename="data.bin")
    assert patch(client, auth, path, 0, CONTENT[:1000]).status_code == 204
    response = patch(client, auth, path, 1000, CONTENT[1000:])
    assert response.status_code == 422
    assert response.json["_embedded"]["details"]["attribute"] == "file"
    assert_nothing_left(catalog, stored)
    # a HEAD's answer has no body
    assert head(client, auth, path).status_code == 404


def test_a_plugin_s_refusal_at_the_end_leaves_nothing(client, people, catalog, stored,
                                                      plugin_manager):
    plugin_manager.register(Inspecting(Recorder(answer="No data files here.")))
    auth = people.auth("ada")
    response = create(client, auth, len(CONTENT), body=CONTENT)
    assert_error(response, 422, "PropertyConstraintViolation", "No data files here.", "file")
    assert_nothing_left(catalog, stored)


def test_the_container_must_permit_the_upload(client, people, catalog, stored):
    work_package_id = created_work_package(client, people, "ada")
    href = f"/api/v3/work_packages/{work_package_id}"
    # Eve sees the work package but may not add to it; nobody finds one that is not there
    assert_error(create(client, people.auth("eve"), 3, filename="a.txt", container=href),
                 403, "MissingPermission", MAY_NOT_ADD_ATTACHMENTS)
    assert_error(create(client, people.auth("ada"), 3, filename="a.txt",
                        container=f"/api/v3/work_packages/{work_package_id + 1}"),
                 404, "NotFound", NOT_FOUND)
    assert_error(create(client, people.auth("ada"), 3, filename="a.txt",
                        container="/api/v3/projects/1"),
                 422, "PropertyConstraintViolation",
                 "/api/v3/projects/1 is no container attachments can be uploaded into.",
                 "container")
    assert_nothing_left(catalog, stored)


def test_a_permission_lost_before_the_last_byte_refuses_the_upload(
        client, people, catalog, stored):
    work_package_id = created_work_package(client, people, "ada")
    people.add("carl", name="Carl",
               permissions=["view_work_packages", "add_work_package_attachments"])
    auth = people.auth("carl")
    response = create(client, auth, len(CONTENT), filename="a.bin",
                      container=f"/api/v3/work_packages/{work_package_id}")
    assert response.status_code == 201, response.json
    path = response.headers["location"]
    assert patch(client, auth, path, 0, CONTENT[:10]).status_code == 204
    with catalog.database.connection_context():
        catalog.RolePermission.delete().where(
            catalog.RolePermission.permission == "add_work_package_attachments").execute()
    assert_error(patch(client, auth, path, 10, CONTENT[10:]), 403, "MissingPermission",
                 MAY_NOT_ADD_ATTACHMENTS)
    assert uploads(catalog) == []
    assert attachments(catalog) == []
    assert blob_files(stored) == {} and partial_files(stored.blob_root) == {}


def overridden(client, auth, path, method, headers=None, body=None):
    """A POST that stands for ``method`` (X-HTTP-Method-Override), as a client behind a
    proxy that lets only GET and POST through sends it."""
    return client.simulate_post(path, body=body, headers={
        **auth, **TUS, "X-HTTP-Method-Override": method, **(headers or {})})


def test_a_post_overridden_as_patch_head_or_delete_is_that_request(client, people, catalog,
                                                                   stored):
    auth = people.auth("ada")
    path = created(client, auth, 10)
    sent = overridden(client, auth, path, "PATCH", body=b"hello", headers={
        "Upload-Offset": "0", "Content-Type": OFFSET_OCTET_STREAM})
    assert (sent.status_code, sent.headers["upload-offset"]) == (204, "5")
    asked = overridden(client, auth, path, "head")
    assert (asked.status_code, asked.headers["upload-offset"], asked.content) == (200, "5", b"")
    assert asked.headers["upload-length"] == "10"
    assert uploads(catalog) == [(token_of(path), 5, 10, None)]
    assert partial_files(stored.blob_root) == {token_of(path): b"hello"}
    # what a PATCH refuses, the override refuses alike
    assert_error(overridden(client, auth, path, "PATCH", body=b"world", headers={
        "Upload-Offset": "3", "Content-Type": OFFSET_OCTET_STREAM}),
        409, "UpdateConflict",
        "The upload has 5 bytes: a PATCH continues at Upload-Offset 5, not 3.")
    # only the methods of an upload: a POST of its own, or standing for another, is 405
    for method in (None, "GET", "PUT", "POST", "OPTIONS"):
        headers = {} if method is None else {"X-HTTP-Method-Override": method}
        refused = client.simulate_post(path, body=b"world", headers={**auth, **TUS, **headers})
        assert_error(refused, 405, "NotImplemented",
                     "The requested HTTP method is not allowed for this resource.")
    assert overridden(client, auth, path, "DELETE").status_code == 204
    assert_nothing_left(catalog, stored)


# --- browsers on other origins -------------------------------------------------------------------

PAGE = "https://app.example.org"


def test_a_browser_s_preflight_is_the_cors_middleware_s_and_the_answers_expose_tus_headers(
        settings, plugin_manager, people):
    client = app_with(settings, plugin_manager, cors_origins=(PAGE,))
    preflight = client.simulate_options(TUS_PATH, headers={
        "Origin": PAGE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "tus-resumable,upload-length,upload-metadata"})
    assert preflight.status_code == 204
    assert "PATCH" in preflight.headers["access-control-allow-methods"].split(", ")
    assert "tus-version" not in preflight.headers
    # a page's own discovery, no preflight: tus's answer, its headers readable by the page
    discovery = client.simulate_options(TUS_PATH, headers={"Origin": PAGE})
    assert discovery.status_code == 204 and discovery.headers["tus-version"] == "1.0.0"
    exposed = set(discovery.headers["access-control-expose-headers"].split(", "))
    assert {"Location", "Link", "Upload-Offset", "Upload-Length", "Upload-Expires",
            "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size",
            "Tus-Checksum-Algorithm"} <= exposed
    # a client behind a proxy that lets only POST through
    overriding = client.simulate_options(f"{TUS_PATH}/abc", headers={
        "Origin": PAGE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "tus-resumable,x-http-method-override"})
    assert "X-HTTP-Method-Override" in overriding.headers[
        "access-control-allow-headers"].split(", ")
    finished = create(client, people.auth("ada"), 5, body=b"hello", headers={"Origin": PAGE})
    assert finished.status_code == 201
    assert finished.headers["access-control-allow-origin"] == PAGE


# --- settings ------------------------------------------------------------------------------------

def test_the_tus_settings_and_their_defaults():
    # every upload's limit, 5 MiB
    defaults = Settings.from_environ({})
    assert (defaults.tus_limit, defaults.tus_expiry) == (5 * 1024 ** 2, 24 * 3600)
    assert defaults.lowered_limits() == []
    # 10 GiB at most, whatever every upload's limit
    raised = Settings.from_environ({"AFFIX_MAX_ATTACHMENT_SIZE": str(20 * 1024 ** 3)})
    assert raised.tus_limit == 10 * 1024 ** 3
    chosen = Settings.from_environ({"AFFIX_TUS_MAX_SIZE": "0", "AFFIX_TUS_EXPIRY": "600"})
    assert (chosen.tus_limit, chosen.tus_expiry) == (0, 600)
    above = Settings.from_environ({"AFFIX_TUS_MAX_SIZE": str(10 * 1024 ** 3)})
    assert above.tus_limit == 5 * 1024 ** 2
    assert above.lowered_limits() == [
        "AFFIX_TUS_MAX_SIZE=10737418240 is above AFFIX_MAX_ATTACHMENT_SIZE, the largest file "
        "accepted: resumable (tus) uploads take at most 5242880 bytes"]
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({"AFFIX_TUS_MAX_SIZE": "-1"})
    assert str(refused.value) == (
        "AFFIX_TUS_MAX_SIZE must be a size: bytes (5242880), or K, M, G with or without iB "
        "(5M, 5MiB: 1024-based); not '-1'")
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({"AFFIX_TUS_EXPIRY": "0"})
    assert str(refused.value) == "AFFIX_TUS_EXPIRY must be greater than 0, not '0'"


# --- bodies cut short, long PATCHes ---------------------------------------------------------------

class ClockedBody(io.RawIOBase):
    """A PATCH body that takes ``step`` of the app's clock per read, and runs ``on_read`` (the
    number of the read) before each."""

    def __init__(self, data, clock, step, on_read=lambda number: None):
        self._data = io.BytesIO(data)
        self._clock = clock
        self._step = step
        self._on_read = on_read
        self.reads = 0

    def readable(self):
        return True

    def read(self, size=-1):
        self.reads += 1
        self._on_read(self.reads)
        self._clock.advance(self._step)
        return self._data.read(size)


def patch_streaming(client, auth, path, offset, body, length):
    return client.simulate_patch(path, headers={
        **auth, **TUS, "Upload-Offset": str(offset), "Content-Type": OFFSET_OCTET_STREAM,
        "Content-Length": str(length)}, extras={"wsgi.input": body})


def test_a_body_shorter_than_its_content_length_keeps_what_arrived(client, people, catalog,
                                                                   stored):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    response = client.simulate_patch(path, headers={
        **auth, **TUS, "Upload-Offset": "0", "Content-Type": OFFSET_OCTET_STREAM,
        "Content-Length": "1000"}, extras={"wsgi.input": io.BytesIO(CONTENT[:600])})
    assert response.status_code == 204
    assert response.headers["upload-offset"] == "600"
    # with a checksum, the bytes of a body cut short are not what the client meant: dropped
    response = client.simulate_patch(path, headers={
        **auth, **TUS, "Upload-Offset": "600", "Content-Type": OFFSET_OCTET_STREAM,
        "Content-Length": "1000", "Upload-Checksum": checksum("sha1", CONTENT[600:1600])},
        extras={"wsgi.input": io.BytesIO(CONTENT[600:900])})
    assert response.status_code == 460
    assert uploads(catalog) == [(token_of(path), 600, len(CONTENT), None)]
    assert partial_files(stored.blob_root) == {token_of(path): CONTENT[:600]}


def test_a_long_patch_renews_its_lease_as_it_reads(client, people, catalog, stored, clock):
    auth = people.auth("ada")
    data = random_bytes(5 * 1024 * 1024)
    path = created(client, auth, len(data))
    with catalog.database.connection_context():
        table = ResumableUploads(catalog)
        upload = table.by_token(token_of(path))

    def another_node_tries(number):
        # each read takes a whole lease's time: only renewals keep the upload this PATCH's
        with catalog.database.connection_context():
            assert table.take_lease(upload, clock(), clock() + LEASE_DURATION) is None

    body = ClockedBody(data, clock, LEASE_DURATION - datetime.timedelta(seconds=1),
                       another_node_tries)
    response = patch_streaming(client, auth, path, 0, body, len(data))
    assert response.status_code == 204, response.json
    assert body.reads >= 5
    assert list(blob_files(stored).values()) == [data]


def test_a_patch_that_lost_its_lease_is_423_and_leaves_the_new_holder_s_bytes_alone(
        client, people, catalog, stored, clock, other_node):
    auth = people.auth("ada")
    data = random_bytes(5 * 1024 * 1024)
    path = created(client, auth, len(data))
    assert patch(client, auth, path, 0, data[:100]).status_code == 204

    def stalls_then_another_node_takes_over(number):
        if number == 3:
            # this PATCH's node stalled past its lease; the client's retry, on another node,
            # took the upload over and went on from the offset it learnt
            clock.advance(LEASE_DURATION)
            assert head(other_node, auth, path).headers["upload-offset"] == "100"
            assert patch(other_node, auth, path, 100, data[100:5000]).status_code == 204

    body = ClockedBody(data[100:], clock, datetime.timedelta(seconds=1),
                       stalls_then_another_node_takes_over)
    response = patch_streaming(client, auth, path, 100, body, len(data) - 100)
    assert_error(response, 423, "Locked", LOCKED)
    # the stalled PATCH gave up its bytes without cutting off those kept since
    assert uploads(catalog) == [(token_of(path), 5000, len(data), None)]
    assert partial_files(stored.blob_root) == {token_of(path): data[:5000]}
    assert patch(client, auth, path, 5000, data[5000:]).status_code == 204
    assert list(blob_files(stored).values()) == [data]


FINISHED_MEANWHILE = "Another request finished this upload meanwhile. Ask again for its attachment."


@pytest.mark.on_cue("stored_uploads")
def test_a_finish_past_its_lease_that_a_retry_overtook_is_423_and_keeps_the_attachment_s_bytes(
        client, people, catalog, stored, services, clock, other_node):
    auth = people.auth("ada")
    path = created(client, auth, 10, filename="notes.txt")
    assert patch(client, auth, path, 0, b"hello").status_code == 204
    retries = []

    def outlasts_its_lease(finish, record, storage_key):
        if not retries:
            # reading a large file back (and clamd scanning it) took longer than the lease;
            # the client timed out and retried its last PATCH on another node, which took the
            # upload over and finished it
            clock.advance(LEASE_DURATION + datetime.timedelta(seconds=1))
            retries.append(patch(other_node, auth, path, 5, b"world"))
        return finish(record, storage_key)

    services.stored_uploads.around("finish", outlasts_its_lease)
    first = patch(client, auth, path, 5, b"world")

    [retry] = retries
    [attachment] = attachments(catalog)
    assert (retry.status_code, retry.headers["link"]) == (
        204, f'</api/v3/attachments/{attachment[0]}>; rel="attachment"')
    assert_error(first, 423, "Locked", FINISHED_MEANWHILE)
    assert attachment[5] == "uploaded"
    assert list(blob_files(stored).values()) == [b"helloworld"]
    # asked again, the upload answers with its attachment
    assert head(client, auth, path).headers["link"] == retry.headers["link"]


@pytest.mark.on_cue("resumable_uploads")
def test_a_late_patch_is_409_when_the_upload_moved_on_before_it_got_the_lease(
        client, people, catalog, stored, other_node, services):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    overtaken = []

    def overtaken_before_the_lease(take_lease, upload, now, until):
        # the moment between reading the upload and taking its lease: the client's retry of
        # this very PATCH, on another node, gets there first
        if not overtaken:
            overtaken.append(True)
            assert patch(other_node, auth, path, 0, CONTENT[:1000]).status_code == 204
        return take_lease(upload, now, until)

    services.resumable_uploads.around("take_lease", overtaken_before_the_lease)
    response = patch(client, auth, path, 0, b"x" * 1000)
    assert_error(response, 409, "UpdateConflict",
                 "The upload has 1000 bytes: a PATCH continues at Upload-Offset 1000, not 0.")
    assert uploads(catalog) == [(token_of(path), 1000, len(CONTENT), None)]
    assert partial_files(stored.blob_root) == {token_of(path): CONTENT[:1000]}


@pytest.mark.on_cue("resumable_uploads")
@pytest.mark.parametrize("request_of", [
    lambda client, auth, path: patch(client, auth, path, 1000, CONTENT[1000:]),
    lambda client, auth, path: client.simulate_delete(path, headers={**auth, **TUS}),
], ids=["PATCH", "DELETE"])
def test_a_request_for_an_upload_terminated_before_it_got_the_lease_is_404(
        client, people, catalog, stored, other_node, services, request_of):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:1000]).status_code == 204
    terminated = []

    def terminated_before_the_lease(take_lease, upload, now, until):
        # between reading the upload and taking its lease, the client cancels it elsewhere
        # (whose termination takes a lease too)
        if not terminated:
            terminated.append(True)
            assert other_node.simulate_delete(path, headers={**auth, **TUS}).status_code == 204
        return take_lease(upload, now, until)

    services.resumable_uploads.around("take_lease", terminated_before_the_lease)
    assert_error(request_of(client, auth, path), 404, "NotFound", GONE)
    assert_nothing_left(catalog, stored)


def test_a_partial_file_that_lost_bytes_is_never_filled_with_zeros(client, people, catalog,
                                                                   stored):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:1000]).status_code == 204
    partial = stored.blob_root / ".tus" / token_of(path)
    # a disk that lost what it had said was written
    partial.write_bytes(CONTENT[:400])
    response = patch(client, auth, path, 1000, CONTENT[1000:2000])
    assert_error(response, 500, "InternalServerError", "An internal error has occurred.")
    assert partial.read_bytes() == CONTENT[:400]
    assert uploads(catalog) == [(token_of(path), 1000, len(CONTENT), None)]
