"""Direct uploads to S3 (OpenProject's prepare, upload to the store, complete) against moto's S3
server: the whole flow with a real multipart POST to the store as the form says, the refusals
with what is stored after each, tampered uploads, a replayed form, another user, expiry and
cleanup with the app's clock.

moto stores whatever a pre-signed POST sends, its policy unchecked (a body of another size, a
key the policy does not allow): so these tests show that completion checks size, key and
content itself."""
import concurrent.futures
import dataclasses
import datetime
import io
import json
import threading

import falcon.testing
import peewee
import pytest
import requests

from affix.app import create_app
from affix.app.cli.commands import main
from affix.app.testing import multipart
from affix.plugins import hookimpl
from affix.plugins.containers import ContainerType
from affix.storage.blob_store import StoreUnavailable
from affix.storage.cleanup import remove_expired_direct_uploads, remove_unclaimed
from affix.storage.resumable import ResumableUploads
from affix.storage.s3_staging import STAGING_FOLDER
from affix.storage.stores import open_blob_store, open_upload_staging
from support.client import get, uploaded
from support.clocks import Clock
from support.content import md5, png_bytes, random_bytes
from support.defaults import FROZEN_NOW, SMALL_LIMIT
from support.direct_uploads import (
    PREPARE_PATH, complete, policy_of, prepare, prepared, send_to_store,
)
from support.errors import (
    MAY_NOT_ADD_ATTACHMENTS, MAY_NOT_EDIT_WORK_PACKAGES, MAY_NOT_UPLOAD, NOT_FOUND, UNAVAILABLE,
    assert_error,
)
from support.net import REQUEST_TIMEOUT
from support.races import RACE_ROUNDS, RACE_TIMEOUT, race
from support.scrape import metrics_listener, scrape_in_process
from support.s3 import bucket_settings, s3_environ
from support.webhooks import outbox, outbox_entries, subscribe
from support.work_packages import create, created, document, link

pytestmark = pytest.mark.system

PREFIX = "blobs"
EXPIRY = 4 * 3600
NOT_AVAILABLE = ("Direct file upload is not available due to a system configuration issue. "
                 "Please contact your administrator.")
NOT_UPLOADED = "The file has not been uploaded to the storage."
CONTENT = png_bytes(3, 2)


@pytest.fixture
def clock():
    return Clock(FROZEN_NOW)


@pytest.fixture
def settings(tmp_path, s3_bucket, databases):
    return bucket_settings(databases, tmp_path / "data", s3_bucket)


@pytest.fixture
def staging(settings):
    return open_upload_staging(open_blob_store(settings.storage_url, settings.s3), EXPIRY)


def rows(catalog):
    """(id, status, size, md5, storage key) of every attachment."""
    with catalog.database.connection_context():
        Attachment = catalog.Attachment
        return [(a.id, a.status, a.file_size, a.md5, a.storage_key)
                for a in Attachment.select().order_by(Attachment.id)]


def staged_key_of(upload) -> str:
    return upload["_links"]["addAttachment"]["form_fields"]["key"]


def assert_nothing_stored(catalog, s3_bucket, **objects):
    """No attachment row, and the bucket holds exactly ``objects`` (key: bytes)."""
    assert rows(catalog) == []
    assert s3_bucket.objects() == objects


def unsigned(attachment) -> dict:
    """``attachment`` without its pre-signed downloadLocation, which is signed afresh, with the
    time of signing in it, in every answer."""
    links = {name: link for name, link in attachment["_links"].items()
             if name != "downloadLocation"}
    return {**attachment, "_links": links}


def uploaded_directly(client, people, s3_bucket, login="ada", content=CONTENT,
                      path=PREPARE_PATH, file_name="cat.png"):
    upload = prepared(client, people, login, file_name, content, path)
    sent = send_to_store(upload, content)
    assert sent.status_code == 201, sent.text
    response = complete(client, people, login, upload)
    assert response.status_code == 200, response.json
    return upload, response.json


def served(client, people, attachment_id, login="ada") -> bytes:
    redirect = client.simulate_get(f"/api/v3/attachments/{attachment_id}/download",
                                   headers=people.auth(login))
    assert redirect.status_code == 302
    answer = requests.get(redirect.headers["location"], timeout=REQUEST_TIMEOUT)
    assert answer.status_code == 200
    return answer.content


# --- the whole flow ---------------------------------------------------------------------------

def test_prepare_answers_a_form_that_pins_the_staged_key_and_the_size(
        client, people, catalog, s3_bucket):
    response = prepare(client, people, "ada", {
        "fileName": "cat.png", "fileSize": len(CONTENT), "contentType": "image/png",
        "description": {"raw": "A cat"}})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/hal+json"
    upload = response.json
    [(attachment_id, status, size, digest, storage_key)] = rows(catalog)
    assert (status, size, digest) == ("prepared", len(CONTENT), "")
    assert storage_key.startswith(f"{STAGING_FOLDER}/")
    fields = upload["_links"]["addAttachment"]["form_fields"]
    assert list(fields) == ["success_action_status", "key", "x-amz-algorithm",
                            "x-amz-credential", "x-amz-date", "policy", "x-amz-signature"]
    assert fields["key"] == f"{PREFIX}/{storage_key}"
    assert fields["success_action_status"] == "201"
    assert upload == {
        "_type": "AttachmentUpload", "id": attachment_id, "fileName": "cat.png",
        "description": {"format": "plain", "raw": "A cat", "html": "<p>A cat</p>"},
        "createdAt": "2014-05-21T08:51:20Z",
        "_links": {
            "self": {"href": f"/api/v3/attachment_upload/{attachment_id}", "title": "cat.png"},
            "author": {"href": "/api/v3/users/1", "title": "Ada Admin"},
            "addAttachment": {"href": f"{s3_bucket.endpoint_url}/{s3_bucket.name}",
                              "method": "post", "form_fields": fields},
            "completeUpload": {"href": f"/api/v3/attachments/{attachment_id}/uploaded",
                               "method": "get"},
            "delete": {"href": f"/api/v3/attachments/{attachment_id}", "method": "delete"},
            "staticDownloadLocation": {"href": f"/api/v3/attachments/{attachment_id}/download"},
            "downloadLocation": {"href": f"/api/v3/attachments/{attachment_id}/download"},
        },
    }
    policy = policy_of(upload)
    assert {"key": fields["key"]} in policy["conditions"]
    assert ["content-length-range", len(CONTENT), len(CONTENT)] in policy["conditions"]
    assert {"bucket": s3_bucket.name} in policy["conditions"]
    expiration = datetime.datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    left = expiration - datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert datetime.timedelta(seconds=EXPIRY - 60) < left <= datetime.timedelta(seconds=EXPIRY)
    # nothing is in the bucket before the client sends it
    assert s3_bucket.objects() == {}


def test_a_direct_upload_end_to_end(client, people, catalog, s3_bucket):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    attachment_id = upload["id"]
    sent = send_to_store(upload, CONTENT)
    assert sent.status_code == 201
    assert s3_bucket.objects() == {staged_key_of(upload): CONTENT}

    response = complete(client, people, "ada", upload)
    assert response.status_code == 200
    attachment = response.json
    assert attachment["_type"] == "Attachment"
    assert attachment["id"] == attachment_id
    assert attachment["status"] == "uploaded"
    assert (attachment["fileSize"], attachment["contentType"]) == (len(CONTENT), "image/png")
    assert attachment["digest"] == {"algorithm": "md5", "hash": md5(CONTENT)}
    assert attachment["_links"]["container"] == {"href": None}
    [(_, status, size, digest, storage_key)] = rows(catalog)
    assert (status, size, digest) == ("uploaded", len(CONTENT), md5(CONTENT))
    # copied to a key of affix's own, the staged object gone
    assert not storage_key.startswith(STAGING_FOLDER)
    assert s3_bucket.objects() == {f"{PREFIX}/{storage_key}": CONTENT}
    assert served(client, people, attachment_id) == CONTENT
    # a containerless direct upload is claimed like any other
    work_package_id = created(client, people, "ada", attachment_ids=[attachment_id])
    listed = client.simulate_get(f"/api/v3/work_packages/{work_package_id}/attachments",
                                 headers=people.auth("ada")).json
    assert [element["id"] for element in listed["_embedded"]["elements"]] == [attachment_id]
    # completing again answers the attachment as it is now, and changes nothing
    stored = rows(catalog), s3_bucket.objects()
    again = complete(client, people, "ada", upload)
    assert again.status_code == 200
    assert unsigned(again.json) == unsigned(client.simulate_get(
        f"/api/v3/attachments/{attachment_id}", headers=people.auth("ada")).json)
    assert again.json["_links"]["container"]["href"] == f"/api/v3/work_packages/{work_package_id}"
    assert (rows(catalog), s3_bucket.objects()) == stored


def test_a_direct_upload_into_a_work_package(client, people, catalog, s3_bucket):
    work_package_id = created(client, people, "ada")
    # the work package offers direct uploads, as OpenProject's do while they are on
    links = client.simulate_get(f"/api/v3/work_packages/{work_package_id}",
                                headers=people.auth("ada")).json["_links"]
    assert links["prepareAttachment"] == {
        "href": f"/api/v3/work_packages/{work_package_id}/attachments/prepare", "method": "post"}
    path = f"/api/v3/work_packages/{work_package_id}/attachments/prepare"
    upload = prepared(client, people, "ada", "cat.png", CONTENT, path)
    container = {"href": f"/api/v3/work_packages/{work_package_id}", "title": "Fix the roof"}
    assert upload["_links"]["container"] == container
    listing = f"/api/v3/work_packages/{work_package_id}/attachments"
    # prepared: not listed, not downloadable
    assert client.simulate_get(listing, headers=people.auth("ada")).json["total"] == 0
    assert_error(client.simulate_get(f"/api/v3/attachments/{upload['id']}/download",
                                     headers=people.auth("ada")),
                 404, "NotFound", "The file has not been uploaded yet.")
    assert send_to_store(upload, CONTENT).status_code == 201
    response = complete(client, people, "ada", upload)
    assert response.status_code == 200
    assert response.json["_links"]["container"] == container
    elements = client.simulate_get(listing, headers=people.auth("ada")).json["_embedded"]
    assert [element["id"] for element in elements["elements"]] == [upload["id"]]


@dataclasses.dataclass(frozen=True)
class Shelf:
    id: int
    title: str


class Shelves:
    """A plugin's container type: one shelf, in the project "demo"; whoever may edit work
    packages there may add to it, whoever may view them sees it."""

    @hookimpl
    def affix_container_types(self, catalog):
        return [ContainerType(
            name="Shelf", segment="shelves", find={1: Shelf(1, "Top shelf")}.get,
            project_of=lambda shelf: catalog.Project.get(catalog.Project.identifier == "demo"),
            title_of=lambda shelf: shelf.title,
            view=frozenset({"view_work_packages", "edit_work_packages"}),
            add=frozenset({"edit_work_packages"}), delete=frozenset({"edit_work_packages"}),
        )]


def test_a_direct_upload_into_a_plugin_s_container(settings, plugin_manager, people, catalog,
                                                   s3_bucket):
    plugin_manager.register(Shelves())
    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    path = "/api/v3/shelves/1/attachments/prepare"
    # Eve sees the shelf but may not add to it; nobody finds a shelf that is not there
    assert_error(prepare(client, people, "eve", {"fileName": "a.png", "fileSize": 3}, path),
                 403, "MissingPermission", MAY_NOT_EDIT_WORK_PACKAGES)
    assert_error(prepare(client, people, "bob", {"fileName": "a.png", "fileSize": 3},
                         "/api/v3/shelves/2/attachments/prepare"), 404, "NotFound", NOT_FOUND)
    assert_nothing_stored(catalog, s3_bucket)
    upload, attachment = uploaded_directly(client, people, s3_bucket, "bob", path=path)
    shelf = {"href": "/api/v3/shelves/1", "title": "Top shelf"}
    assert upload["_links"]["container"] == attachment["_links"]["container"] == shelf
    listed = client.simulate_get("/api/v3/shelves/1/attachments", headers=people.auth("eve"))
    assert [element["id"] for element in listed.json["_embedded"]["elements"]] == [
        attachment["id"]]


def test_a_direct_upload_is_counted_once_from_preparation_to_completion(
        settings, plugin_manager, people, s3_bucket, clock):
    with metrics_listener() as listener:
        metered = dataclasses.replace(
            settings, metrics_bind=f"127.0.0.1:{listener.getsockname()[1]}")
        client = falcon.testing.TestClient(
            create_app(metered, plugin_manager=plugin_manager, clock=clock))
        upload = prepared(client, people, "ada", "cat.png", CONTENT)
        assert send_to_store(upload, CONTENT).status_code == 201
        clock.now = FROZEN_NOW + datetime.timedelta(seconds=45)
        assert complete(client, people, "ada", upload).status_code == 200
        # completion is a GET that clients and proxies repeat: counted once
        assert complete(client, people, "ada", upload).status_code == 200
        scraped = scrape_in_process(client, listener)

    assert scraped.value("affix_upload_size_bytes_count") == 1
    assert scraped.value("affix_upload_size_bytes_sum") == len(CONTENT)
    assert scraped.value("affix_upload_duration_seconds_count") == 1
    assert scraped.value("affix_upload_duration_seconds_sum") == 45


def test_a_prepared_upload_cannot_be_claimed(client, people, catalog, s3_bucket):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    response = create(client, people, "ada", document(attachments=[link(upload["id"])]))
    assert_error(response, 422, "PropertyConstraintViolation",
                 "Attachments still being uploaded cannot be claimed.", "attachments")
    assert [row[1] for row in rows(catalog)] == ["prepared"]


class Heard:
    """A plugin that notes which attachments it heard of, and how."""

    def __init__(self):
        self.events = []

    @hookimpl
    def affix_attachment_created(self, attachment, user):
        self.events.append(("created", attachment.id, attachment.status, attachment.md5))

    @hookimpl
    def affix_attachment_deleted(self, attachment, user):
        self.events.append(("deleted", attachment.id))


@pytest.fixture
def heard(plugin_manager):
    heard = Heard()
    plugin_manager.register(heard)
    return heard


def test_plugins_and_webhooks_hear_of_a_direct_upload_once_it_is_complete(
        client, people, catalog, s3_bucket, heard):
    subscription = subscribe(catalog, "http://127.0.0.1:9/hooks", ["attachment.created"],
                             FROZEN_NOW)
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    assert heard.events == []
    assert outbox(catalog) == []
    assert complete(client, people, "ada", upload).status_code == 200
    assert heard.events == [("created", upload["id"], "uploaded", md5(CONTENT))]
    assert outbox(catalog) == [(subscription, "attachment.created", upload["id"], False)]
    (entry,) = outbox_entries(catalog)
    attachment = json.loads(entry.body)["attachment"]
    assert (attachment["status"], attachment["digest"]["hash"]) == ("uploaded", md5(CONTENT))


def test_deleting_a_prepared_upload_removes_its_staged_object(client, people, catalog,
                                                              s3_bucket, heard):
    subscribe(catalog, "http://127.0.0.1:9/hooks",
              ["attachment.created", "attachment.deleted"], FROZEN_NOW)
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    deleted = client.simulate_delete(upload["_links"]["delete"]["href"],
                                     headers=people.auth("ada"))
    assert deleted.status_code == 204
    assert_nothing_stored(catalog, s3_bucket)
    assert_error(complete(client, people, "ada", upload), 404, "NotFound", NOT_FOUND)
    # plugins and webhooks never heard of it: neither created nor deleted
    assert heard.events == []
    assert outbox(catalog) == []


# --- refusals of prepare ----------------------------------------------------------------------

@pytest.mark.parametrize("metadata, status, identifier, message, attribute", [
    ({"fileSize": 3}, 422, "PropertyConstraintViolation", "File can't be blank.", "fileName"),
    ({"fileName": "  ", "fileSize": 3}, 422, "PropertyConstraintViolation",
     "File can't be blank.", "fileName"),
    ({"fileName": "a.png"}, 422, "PropertyConstraintViolation", "Size can't be blank.",
     "fileSize"),
    ({"fileName": "a.png", "fileSize": -1}, 422, "PropertyConstraintViolation",
     "Size must be a whole number of bytes.", "fileSize"),
    ({"fileName": "a.png", "fileSize": "3"}, 422, "PropertyConstraintViolation",
     "Size must be a whole number of bytes.", "fileSize"),
    ({"fileName": "a.png", "fileSize": SMALL_LIMIT + 1}, 422, "PropertyConstraintViolation",
     f"File is too large (maximum size is {SMALL_LIMIT} Bytes).", "fileSize"),
    (b'{"fileName": ', 400, "InvalidRequestBody", "The request could not be parsed as JSON.",
     None),
])
def test_an_unusable_declaration_is_refused_with_nothing_stored(
        client, people, catalog, s3_bucket, metadata, status, identifier, message, attribute):
    assert_error(prepare(client, people, "ada", metadata), status, identifier, message,
                 attribute)
    assert_nothing_stored(catalog, s3_bucket)


def test_a_direct_upload_limit_above_every_upload_s_is_lowered_to_it(
        settings, plugin_manager, people, catalog, s3_bucket):
    # AFFIX_MAX_ATTACHMENT_SIZE is the largest file accepted, whichever way it comes
    client = falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, max_direct_upload_size=10 * SMALL_LIMIT),
        plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    assert client.simulate_get("/api/v3/configuration", headers=people.auth("ada")).json[
        "maximumAttachmentFileSize"] == SMALL_LIMIT
    assert_error(prepare(client, people, "ada", {"fileName": "a.bin",
                                                 "fileSize": SMALL_LIMIT + 1}),
                 422, "PropertyConstraintViolation",
                 f"File is too large (maximum size is {SMALL_LIMIT} Bytes).", "fileSize")
    assert_nothing_stored(catalog, s3_bucket)


def test_a_declaration_without_name_and_size_names_both(client, people, catalog, s3_bucket):
    response = prepare(client, people, "ada", {})
    assert response.status_code == 422
    assert [error["message"] for error in response.json["_embedded"]["errors"]] == [
        "File can't be blank.", "Size can't be blank."]
    assert_nothing_stored(catalog, s3_bucket)


@pytest.mark.parametrize("parts, message", [
    ([], "The request body is not valid multipart/form-data."),
    ([("file", b"x", {})], "The part 'file' is not expected: send exactly the part "
                           "'metadata'."),
])
def test_a_body_without_just_the_metadata_part_is_400(client, people, catalog, s3_bucket,
                                                       parts, message):
    body, content_type = multipart(parts)
    response = client.simulate_post(PREPARE_PATH, body=body, headers={
        **people.auth("ada"), "Content-Type": content_type})
    assert_error(response, 400, "InvalidRequestBody", message)
    assert_nothing_stored(catalog, s3_bucket)


def test_a_declared_content_type_off_the_allowlist_is_422(
        settings, plugin_manager, people, catalog, s3_bucket):
    app = create_app(dataclasses.replace(settings, allowlist=("image/png",)),
                     plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW)
    client = falcon.testing.TestClient(app)
    response = prepare(client, people, "ada",
                       {"fileName": "a.txt", "fileSize": 3, "contentType": "text/plain"})
    assert_error(response, 422, "PropertyConstraintViolation",
                 "'text/plain' is not allowed for upload.", "contentType")
    assert_nothing_stored(catalog, s3_bucket)


def test_prepare_needs_the_permission_an_upload_needs(client, people, catalog, s3_bucket):
    # Eve may only look: no upload anywhere, none into a work package she sees
    work_package_id = created(client, people, "ada")
    for path, message in (
            (PREPARE_PATH, MAY_NOT_UPLOAD),
            (f"/api/v3/work_packages/{work_package_id}/attachments/prepare",
             MAY_NOT_ADD_ATTACHMENTS)):
        response = prepare(client, people, "eve", {"fileName": "a.png", "fileSize": 3}, path)
        assert_error(response, 403, "MissingPermission", message)
    response = prepare(client, people, "ada", {"fileName": "a.png", "fileSize": 3},
                       f"/api/v3/work_packages/{work_package_id + 1}/attachments/prepare")
    assert_error(response, 404, "NotFound", NOT_FOUND)
    assert_nothing_stored(catalog, s3_bucket)


def test_prepare_without_a_content_type_is_406_and_with_json_415(client, people, catalog,
                                                                s3_bucket):
    response = client.simulate_post(PREPARE_PATH, body=b"{}", headers=people.auth("ada"))
    assert_error(response, 406, "MissingContentType", "Missing content-type header.")
    response = client.simulate_post(PREPARE_PATH, json={"fileName": "a"},
                                    headers=people.auth("ada"))
    assert_error(response, 415, "TypeNotSupported",
                 "Expected CONTENT-TYPE to be multipart/form-data but got application/json.")
    assert_nothing_stored(catalog, s3_bucket)


# --- tampered uploads, other users, policies ------------------------------------------------

@pytest.mark.parametrize("sent", [CONTENT[:-1], CONTENT + b"!"], ids=["shorter", "longer"])
def test_an_upload_of_another_size_does_not_complete(client, people, catalog, s3_bucket, sent):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    # moto stores it although the policy pins the size
    assert send_to_store(upload, sent).status_code == 201
    response = complete(client, people, "ada", upload)
    assert_error(response, 422, "PropertyConstraintViolation",
                 f"The uploaded file has {len(sent)} bytes, not the {len(CONTENT)} bytes "
                 "declared.", "fileSize")
    assert_nothing_stored(catalog, s3_bucket)


def test_an_upload_to_another_key_does_not_complete(client, people, catalog, s3_bucket):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    elsewhere = f"{PREFIX}/{STAGING_FOLDER}/elsewhere"
    # moto stores it although the policy pins the key
    assert send_to_store(upload, CONTENT, key=elsewhere).status_code == 201
    response = complete(client, people, "ada", upload)
    assert_error(response, 404, "NotFound", NOT_UPLOADED)
    # nothing at the staged key, no row; what went elsewhere is nobody's (the sweep's)
    assert_nothing_stored(catalog, s3_bucket, **{elsewhere: CONTENT})


def test_completing_before_the_upload_is_404_and_ends_it(client, people, catalog, s3_bucket):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert_error(complete(client, people, "ada", upload), 404, "NotFound", NOT_UPLOADED)
    assert_nothing_stored(catalog, s3_bucket)


@pytest.mark.parametrize("login", ["bob", "eve"])
def test_only_the_author_completes(client, people, catalog, s3_bucket, login):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    assert_error(complete(client, people, login, upload), 404, "NotFound", NOT_FOUND)
    # untouched: the author still completes it
    [(_, status, *_)] = rows(catalog)
    assert status == "prepared"
    assert s3_bucket.objects() == {staged_key_of(upload): CONTENT}
    assert complete(client, people, "ada", upload).status_code == 200


@pytest.mark.parametrize("login", ["ada", "bob"])
def test_completing_an_ordinary_attachment_changes_nothing(
        client, people, catalog, s3_bucket, login):
    attachment_id = uploaded(client, people, "ada", name="cat.png", content=CONTENT)
    attachment = get(client, people, "ada", f"/api/v3/attachments/{attachment_id}").json
    before = rows(catalog), s3_bucket.objects()
    response = get(client, people, login, f"/api/v3/attachments/{attachment_id}/uploaded")
    # a completion repeated after success looks just the same: its author gets the attachment
    if login == "ada":
        assert (response.status_code, unsigned(response.json)) == (200, unsigned(attachment))
    else:
        assert_error(response, 404, "NotFound", NOT_FOUND)
    assert (rows(catalog), s3_bucket.objects()) == before


class CompletingAgainWhileChecking:
    """Completes the upload a second time, from another thread, at the moment the first
    completion asks the upload policies: after it copied and read the staged object, before
    it writes the row. Only the first completion does so."""

    def __init__(self, complete_again):
        self.complete_again = complete_again
        self.answers = []

    @hookimpl
    def affix_validate_upload(self, upload):
        if not self.answers:
            self.answers.append(None)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                self.answers[0] = pool.submit(self.complete_again).result(RACE_TIMEOUT)
        return None


def test_a_completion_repeated_while_completing_completes_the_upload_once(
        settings, plugin_manager, people, catalog, s3_bucket, heard):
    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    repeat = CompletingAgainWhileChecking(lambda: complete(client, people, "ada", upload))
    plugin_manager.register(repeat)

    first = complete(client, people, "ada", upload)

    [second] = repeat.answers
    assert (first.status_code, second.status_code) == (200, 200), (first.json, second.json)
    assert unsigned(first.json) == unsigned(second.json)
    assert (first.json["id"], first.json["status"]) == (upload["id"], "uploaded")
    [(_, status, _, digest, storage_key)] = rows(catalog)
    assert (status, digest) == ("uploaded", md5(CONTENT))
    # one copy kept, the other completion's copy and the staged object gone
    assert s3_bucket.objects() == {f"{PREFIX}/{storage_key}": CONTENT}
    assert heard.events == [("created", upload["id"], "uploaded", md5(CONTENT))]
    assert served(client, people, upload["id"]) == CONTENT


def test_two_completions_at_once_complete_the_upload_once(client, people, catalog, s3_bucket):
    for round_number in range(RACE_ROUNDS):
        upload = prepared(client, people, "ada", f"{round_number}.png", CONTENT)
        assert send_to_store(upload, CONTENT).status_code == 201
        answers = race(*[lambda: complete(client, people, "ada", upload)] * 2)
        assert [answer.status_code for answer in answers] == [200, 200], answers[0].json
        assert unsigned(answers[0].json) == unsigned(answers[1].json)
        assert answers[0].json["id"] == upload["id"]
    completed = rows(catalog)
    assert [status for _, status, *_ in completed] == ["uploaded"] * RACE_ROUNDS
    assert s3_bucket.objects() == {f"{PREFIX}/{key}": CONTENT for *_, key in completed}


def assert_waiting_for_its_retry(catalog, s3_bucket, upload):
    """The prepared row and the staged object of ``upload``, nothing else: no copy of it."""
    staged_key = staged_key_of(upload)
    assert rows(catalog) == [
        (upload["id"], "prepared", len(CONTENT), "", staged_key.removeprefix(f"{PREFIX}/"))]
    assert s3_bucket.objects() == {staged_key: CONTENT}


def assert_completed_once(client, people, catalog, s3_bucket, heard, upload, response):
    """``upload`` completed by ``response``: one attachment, one object, heard of once."""
    assert response.status_code == 200, response.json
    assert (response.json["id"], response.json["status"]) == (upload["id"], "uploaded")
    assert response.json["digest"] == {"algorithm": "md5", "hash": md5(CONTENT)}
    assert response.json["contentType"] == "image/png"
    [(_, status, _, digest, storage_key)] = rows(catalog)
    assert (status, digest) == ("uploaded", md5(CONTENT))
    assert s3_bucket.objects() == {f"{PREFIX}/{storage_key}": CONTENT}
    assert heard.events == [("created", upload["id"], "uploaded", md5(CONTENT))]
    assert served(client, people, upload["id"]) == CONTENT


@pytest.mark.on_cue("blob_store", "catalog")
@pytest.mark.parametrize("failure", ["store", "database"])
def test_a_passing_failure_while_completing_keeps_the_upload_for_the_retry(
        client, people, catalog, s3_bucket, heard, services, failure):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    if failure == "store":
        # reading the copy back, once it was made
        services.blob_store.fail_once("open", StoreUnavailable("the store is away"))
    else:
        # the write that makes the row an attachment
        services.catalog.fail_once("write_transaction",
                                   peewee.OperationalError("database is locked"))
    response = complete(client, people, "ada", upload)
    assert_error(response, 503, "ServiceUnavailable", UNAVAILABLE)
    assert response.headers["retry-after"] == "5"
    # the upload waits for its author's retry; only the failed completion's copy is gone
    assert_waiting_for_its_retry(catalog, s3_bucket, upload)
    assert heard.events == []

    assert_completed_once(client, people, catalog, s3_bucket, heard, upload,
                          complete(client, people, "ada", upload))


class FailingWhileAnotherCompletes:
    """At the moment the first completion asks the upload policies, starts a second one in
    another thread and lets it go as far as the policies too; then the first fails to write
    the row (the database locked), and only once its answer is out does the second go on."""

    def __init__(self, catalog, complete_again):
        # the app's, on cue
        self.catalog = catalog
        self.complete_again = complete_again
        self.second_checking = threading.Event()
        self.first_answered = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        # the second completion's answer, once it started
        self.answer = None

    @hookimpl
    def affix_validate_upload(self, upload):
        if self.answer is None:
            self.answer = self.pool.submit(self.complete_again)
            assert self.second_checking.wait(RACE_TIMEOUT)
            self.catalog.fail_once("write_transaction",
                                   peewee.OperationalError("database is locked"))
        else:
            self.second_checking.set()
            assert self.first_answered.wait(RACE_TIMEOUT)
        return None


@pytest.mark.on_cue("catalog")
def test_a_completion_failing_for_a_passing_reason_leaves_another_to_complete_the_upload(
        client, plugin_manager, people, catalog, services, s3_bucket, heard):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    failing = FailingWhileAnotherCompletes(
        services.catalog, lambda: complete(client, people, "ada", upload))
    plugin_manager.register(failing)

    first = complete(client, people, "ada", upload)
    assert_error(first, 503, "ServiceUnavailable", UNAVAILABLE)
    failing.first_answered.set()
    second = failing.answer.result(RACE_TIMEOUT)
    failing.pool.shutdown()

    # the failed completion took nothing the other one needed
    assert_completed_once(client, people, catalog, s3_bucket, heard, upload, second)


def test_an_upload_a_policy_rejects_does_not_complete(
        settings, plugin_manager, people, catalog, s3_bucket):
    class NoPictures:
        @hookimpl
        def affix_validate_upload(self, upload):
            if upload.content_type.startswith("image/"):
                return f"No pictures ({upload.size} bytes, md5 {upload.md5})."
            return None

    plugin_manager.register(NoPictures())
    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    # the policy saw the stored bytes: their size, md5 and sniffed type
    assert_error(complete(client, people, "ada", upload), 422, "PropertyConstraintViolation",
                 f"No pictures ({len(CONTENT)} bytes, md5 {md5(CONTENT)}).", "file")
    assert_nothing_stored(catalog, s3_bucket)


def test_the_allowlist_judges_the_stored_bytes_not_the_declaration(
        settings, plugin_manager, people, catalog, s3_bucket):
    client = falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, allowlist=("image/png",)),
        plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    text = b"not a picture at all\n"
    response = prepare(client, people, "ada",
                       {"fileName": "cat.png", "fileSize": len(text), "contentType": "image/png"})
    upload = response.json
    assert send_to_store(upload, text).status_code == 201
    assert_error(complete(client, people, "ada", upload), 422, "PropertyConstraintViolation",
                 "The file was rejected by an automatic filter. 'text/plain' is not allowed "
                 "for upload.", "file")
    assert_nothing_stored(catalog, s3_bucket)


@pytest.mark.parametrize("replayed", [random_bytes(len(CONTENT)), b"evil"],
                         ids=["same-size", "other-size"])
def test_a_form_replayed_after_completion_changes_nothing_served(
        client, people, catalog, s3_bucket, staging, replayed):
    upload, attachment = uploaded_directly(client, people, s3_bucket)
    completed = rows(catalog)
    [(_, _, _, _, storage_key)] = completed
    # the form is still valid, and moto would take anything anyway
    assert send_to_store(upload, replayed).status_code == 201
    assert rows(catalog) == completed
    assert served(client, people, attachment["id"]) == CONTENT
    again = client.simulate_get(f"/api/v3/attachments/{attachment['id']}",
                                headers=people.auth("ada")).json
    assert again["digest"] == {"algorithm": "md5", "hash": md5(CONTENT)}
    # the replay is a staged object of nobody's, and completing again takes nothing from it
    assert s3_bucket.objects() == {f"{PREFIX}/{storage_key}": CONTENT,
                                   staged_key_of(upload): replayed}
    assert unsigned(complete(client, people, "ada", upload).json) == unsigned(attachment)
    assert rows(catalog) == completed
    assert served(client, people, attachment["id"]) == CONTENT
    # once the form has expired, cleanup sweeps it; the attachment stays
    with catalog.database.connection_context():
        assert remove_expired_direct_uploads(
            catalog, ResumableUploads(catalog), staging,
            datetime.datetime.now() + datetime.timedelta(minutes=1)) == 0
    assert rows(catalog) == completed
    assert s3_bucket.objects() == {f"{PREFIX}/{storage_key}": CONTENT}


def test_a_form_replayed_while_completing_changes_nothing_served(
        settings, plugin_manager, people, catalog, s3_bucket):
    replayed = random_bytes(len(CONTENT), seed=7)

    class ReplayWhileChecking:
        """Replays the form at the moment the upload policies are asked: after the bytes
        were read for their md5, before the row is written."""
        upload = None

        @hookimpl
        def affix_validate_upload(self, upload):
            assert send_to_store(self.upload, replayed).status_code == 201
            return None

    replay = ReplayWhileChecking()
    plugin_manager.register(replay)
    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    replay.upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(replay.upload, CONTENT).status_code == 201
    response = complete(client, people, "ada", replay.upload)
    assert response.status_code == 200
    assert response.json["digest"]["hash"] == md5(CONTENT)
    [(_, _, _, _, storage_key)] = rows(catalog)
    # the checked copy is what is served; the replay went with the staged object, which the
    # completion deletes once the upload is complete
    assert s3_bucket.objects() == {f"{PREFIX}/{storage_key}": CONTENT}
    assert served(client, people, response.json["id"]) == CONTENT


def test_a_prepared_upload_offers_no_url_of_its_staged_object(client, people, s3_bucket):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    shown = client.simulate_get(f"/api/v3/attachments/{upload['id']}",
                                headers=people.auth("ada")).json
    assert shown["status"] == "prepared"
    assert shown["_links"]["downloadLocation"] == {
        "href": f"/api/v3/attachments/{upload['id']}/download"}
    assert_error(client.simulate_get(f"/api/v3/attachments/{upload['id']}/content",
                                     headers=people.auth("ada")),
                 404, "NotFound", "The file has not been uploaded yet.")


# --- expiry and cleanup -----------------------------------------------------------------------

def test_cleanup_removes_prepared_uploads_once_their_form_expired(
        client, people, catalog, s3_bucket, staging, clock):
    prepared_at = FROZEN_NOW
    abandoned = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(abandoned, CONTENT).status_code == 201
    clock.now = prepared_at + datetime.timedelta(hours=1)
    later = prepared(client, people, "ada", "dog.png", CONTENT)
    expiry = datetime.timedelta(seconds=EXPIRY)

    def cleanup(now):
        cutoff = now - expiry
        with catalog.database.connection_context():
            # the grace period of unclaimed uploads never takes a prepared one
            assert remove_unclaimed(catalog, None, cutoff, kept_statuses=()) == 0
            return remove_expired_direct_uploads(
                catalog, ResumableUploads(catalog), staging, cutoff)

    assert cleanup(prepared_at + expiry - datetime.timedelta(seconds=1)) == 0
    assert cleanup(prepared_at + expiry) == 0
    assert [row[0] for row in rows(catalog)] == [abandoned["id"], later["id"]]
    assert cleanup(prepared_at + expiry + datetime.timedelta(seconds=1)) == 1
    assert [row[0] for row in rows(catalog)] == [later["id"]]
    assert s3_bucket.objects() == {}
    assert_error(complete(client, people, "ada", abandoned), 404, "NotFound", NOT_FOUND)


def test_affix_cleanup_removes_expired_direct_uploads(client, people, catalog, s3_bucket,
                                                      databases, settings):
    # prepared at the app's frozen clock, years ago: long expired
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    assert send_to_store(upload, CONTENT).status_code == 201
    environ = databases.environ(settings.data_dir, AFFIX_STORAGE_URL=s3_bucket.url(PREFIX),
                                **s3_environ(s3_bucket.endpoint_url))
    out = io.StringIO()
    assert main(["cleanup"], environ=environ, out=out) == 0
    assert out.getvalue().splitlines() == [
        "removed 0 unclaimed attachments older than 180 minutes",
        f"removed 1 direct upload never completed, prepared more than {EXPIRY} seconds ago",
        "removed 0 resumable uploads left unfinished past Upload-Expires",
    ]
    assert_nothing_stored(catalog, s3_bucket)


def test_a_form_lives_as_long_as_the_setting_says(settings, plugin_manager, people, s3_bucket):
    client = falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, direct_upload_expiry=600),
        plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    policy = policy_of(prepared(client, people, "ada", "cat.png", CONTENT))
    expiration = datetime.datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    left = expiration - datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert datetime.timedelta(seconds=540) < left <= datetime.timedelta(seconds=600)
