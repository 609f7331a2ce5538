"""Direct uploads in parts (issue #29) against moto's S3 server: prepare in parts, part URLs,
the parts the bucket holds, completion, and what is left in the bucket after each way out
(rows, objects and open multipart uploads).

moto checks neither a part URL's signature nor its expiry (DESIGN.md): a bucket that checks
them as S3 does stands in front of it where that is the point (``support.signing_bucket``), and
completion checks the parts itself."""
import dataclasses
import datetime
import io
import urllib.parse

import falcon.testing
import pytest

from affix.app import create_app
from affix.app.cli.commands import main
from affix.plugins.clamav import ScanOptions, refusal
from affix.storage.blob_store import StoreUnavailable
from affix.storage.s3_direct_parts import PartPlan
from affix.storage.stores import open_blob_store
from support.clamd import FINDING, eicar
from support.client import uploaded
from support.content import MiB, md5, png_bytes, random_bytes
from support.defaults import FROZEN_NOW
from support.direct_parts import (
    ask_part_urls, held, part_of, part_urls, prepared_in_parts, put_part, send_parts,
)
from support.direct_uploads import complete, prepare, prepared
from support.clocks import Clock
from support.errors import NOT_FOUND, UNAVAILABLE, assert_error
from support.races import RACE_ROUNDS, race
from support.s3 import bucket_settings, s3_environ, s3_options
from support.signing_bucket import SigningBucket

pytestmark = pytest.mark.system

PREFIX = "blobs"
PART = 8 * MiB
LIMIT = 64 * MiB
# three parts, the last one short
CONTENT = random_bytes(2 * PART + 1234, seed=29)
# one part
SMALL = png_bytes(3, 2)
NOT_AVAILABLE = ("Direct file upload is not available due to a system configuration issue. "
                 "Please contact your administrator.")
NOT_UPLOADED = "The file has not been uploaded to the storage."


@pytest.fixture
def settings(tmp_path, s3_bucket, databases):
    return bucket_settings(databases, tmp_path / "data", s3_bucket, max_attachment_size=LIMIT)


def rows(catalog):
    with catalog.database.connection_context():
        Attachment = catalog.Attachment
        return [(a.id, a.status, a.file_size, a.md5, a.storage_key)
                for a in Attachment.select().order_by(Attachment.id)]


def assert_nothing_left(catalog, s3_bucket):
    """No row, no object, no open multipart upload."""
    assert rows(catalog) == []
    assert s3_bucket.objects() == {}
    assert s3_bucket.pending_uploads() == []


def test_an_upload_in_parts_end_to_end(client, people, catalog, s3_bucket):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    assert (upload["fileSize"], upload["partSize"], upload["partCount"]) == (
        len(CONTENT), PART, 3)
    self_href = f"/api/v3/attachments/{upload['id']}"
    assert {name: link for name, link in upload["_links"].items()
            if name in ("uploadParts", "partUrls", "completeUpload")} == {
        "uploadParts": {"href": f"{self_href}/parts", "method": "get"},
        "partUrls": {"href": f"{self_href}/parts/urls{{?partNumbers}}", "templated": True,
                     "method": "get"},
        "completeUpload": {"href": f"{self_href}/uploaded", "method": "get"},
    }
    assert "addAttachment" not in upload["_links"]
    [staged] = s3_bucket.pending_uploads()
    assert staged.startswith(f"{PREFIX}/.direct-uploads/parts/")
    # the parts in another order than their numbers, as parallel clients send them
    send_parts(client, people, "ada", upload, CONTENT, [3, 1])
    answer = held(client, people, "ada", upload)
    assert answer.status_code == 200
    assert {key: value for key, value in answer.json.items() if key != "_links"} == {
        "_type": "UploadParts", "fileSize": len(CONTENT), "partSize": PART, "partCount": 3,
        "parts": [{"partNumber": 1, "size": PART}, {"partNumber": 3, "size": 1234}]}
    # nothing an attachment serves before completion: no object, only the open upload
    assert s3_bucket.objects() == {}
    send_parts(client, people, "ada", upload, CONTENT, [2])

    response = complete(client, people, "ada", upload)
    assert response.status_code == 200, response.json
    assert (response.json["id"], response.json["status"], response.json["contentType"]) == (
        upload["id"], "uploaded", "application/octet-stream")
    assert response.json["digest"] == {"algorithm": "md5", "hash": md5(CONTENT)}
    [(_, status, size, digest, storage_key)] = rows(catalog)
    assert (status, size, digest) == ("uploaded", len(CONTENT), md5(CONTENT))
    assert s3_bucket.objects() == {f"{PREFIX}/{storage_key}": CONTENT}
    assert s3_bucket.pending_uploads() == []
    # the upload in parts is over: neither its parts nor URLs are to be had
    assert_error(held(client, people, "ada", upload), 404, "NotFound", NOT_FOUND)
    assert_error(ask_part_urls(client, people, "ada", upload, "partNumbers=1"), 404,
                 "NotFound", NOT_FOUND)


def test_part_urls_are_bound_to_the_upload_the_part_and_its_length(
        client, people, s3_bucket, clock, settings):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    response = ask_part_urls(client, people, "ada", upload, "partNumbers=3,1")
    assert response.status_code == 200
    expires_at = FROZEN_NOW + datetime.timedelta(seconds=settings.direct_part_url_expiry)
    assert response.json["expiresAt"] == expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    [upload_id] = [each["UploadId"] for each in s3_bucket.client.list_multipart_uploads(
        Bucket=s3_bucket.name)["Uploads"]]
    parts = response.json["parts"]
    assert [(part["partNumber"], part["size"], part["method"]) for part in parts] == [
        (1, PART, "put"), (3, 1234, "put")]
    for part in parts:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(part["href"]).query)
        assert (query["uploadId"], query["partNumber"]) == ([upload_id], [str(part["partNumber"])])
        assert query["X-Amz-Expires"] == [str(settings.direct_part_url_expiry)]
        # the length is signed: the bucket takes no other at this URL
        assert query["X-Amz-SignedHeaders"] == ["content-length;host"]


def test_the_bucket_refuses_part_urls_of_another_upload_or_part_and_expired_ones(
        settings, plugin_manager, people, s3_bucket):
    clock = Clock(datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0))
    bucket = SigningBucket(s3_bucket.endpoint_url, clock)
    try:
        client = falcon.testing.TestClient(create_app(
            dataclasses.replace(settings, s3=s3_options(bucket.url)),
            plugin_manager=plugin_manager, clock=clock))
        upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
        other = prepared_in_parts(client, people, "ada", "other.bin", len(CONTENT))
        answer = ask_part_urls(client, people, "ada", upload, "partNumbers=1,3").json
        urls = {part["partNumber"]: part["href"] for part in answer["parts"]}
        expires_at = datetime.datetime.strptime(answer["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")
        first = part_of(CONTENT, upload, 1)

        def upload_id(url):
            return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["uploadId"][0]
        other_id = upload_id(part_urls(client, people, "ada", other, [1])[1])
        for url, data in [(urls[1].replace(upload_id(urls[1]), other_id), first),
                          (urls[1].replace("partNumber=1", "partNumber=2"), first),
                          (urls[3], first)]:
            refused = put_part(url, data)
            assert refused.status_code == 403
            assert "<Code>SignatureDoesNotMatch</Code>" in refused.text
        # the URL expires when the answer said, on the app's clock (signing took a moment)
        clock.now = expires_at + datetime.timedelta(seconds=5)
        refused = put_part(urls[1], first)
        assert refused.status_code == 403
        assert "<Message>Request has expired</Message>" in refused.text
        assert held(client, people, "ada", upload).json["parts"] == []
        assert held(client, people, "ada", other).json["parts"] == []
        clock.now = expires_at - datetime.timedelta(seconds=1)
        assert put_part(urls[1], first).status_code == 200
        assert [part["partNumber"] for part in held(client, people, "ada", upload).json[
            "parts"]] == [1]
    finally:
        bucket.close()


@pytest.mark.on_cue("stored_uploads")
def test_parts_a_failed_completion_joined_are_all_held_and_its_repeat_finishes(
        client, people, catalog, s3_bucket, services):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    send_parts(client, people, "ada", upload, CONTENT)
    # the completion joins the parts, then fails for a passing reason
    services.stored_uploads.fail_once("finish", StoreUnavailable("the store is away"))
    assert_error(complete(client, people, "ada", upload), 503, "ServiceUnavailable",
                 UNAVAILABLE)
    assert s3_bucket.pending_uploads() == []

    # a client resuming asks which parts the bucket holds: all of them
    answer = held(client, people, "ada", upload)
    plan = PartPlan.for_size(len(CONTENT))
    assert answer.status_code == 200
    assert [(part["partNumber"], part["size"]) for part in answer.json["parts"]] == [
        (number, plan.length(number)) for number in range(1, plan.count + 1)]
    # so it sends none, and repeats the completion, which finishes the upload
    assert complete(client, people, "ada", upload).status_code == 200
    [(_, status, size, digest, _)] = rows(catalog)
    assert (status, size, digest) == ("uploaded", len(CONTENT), md5(CONTENT))


@pytest.mark.parametrize("query, message", [
    ("", "partNumbers must be part numbers separated by commas (1,2,3)."),
    ("partNumbers=1,x", "partNumbers must be part numbers separated by commas (1,2,3)."),
    ("partNumbers=0", "partNumbers must lie between 1 and 3, the parts of this file."),
    ("partNumbers=4", "partNumbers must lie between 1 and 3, the parts of this file."),
    # a digit that is no ASCII digit; a number past Python's 4,300-digit int()
    ("partNumbers=%C2%B2", "partNumbers must be part numbers separated by commas (1,2,3)."),
    ("partNumbers=" + "1" * 5000, "partNumbers must lie between 1 and 3, the parts of this file."),
])
def test_unusable_part_numbers_are_400(client, people, s3_bucket, query, message):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    assert_error(ask_part_urls(client, people, "ada", upload, query), 400, "InvalidQuery",
                 message)


def test_a_part_number_with_leading_zeros_is_that_part(client, people, s3_bucket):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    response = ask_part_urls(client, people, "ada", upload, "partNumbers=0002")
    assert [part["partNumber"] for part in response.json["parts"]] == [2]


def test_part_urls_never_outlive_their_upload_and_an_expired_one_has_none(
        client, people, catalog, s3_bucket, clock, settings):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    before = (rows(catalog), s3_bucket.pending_uploads())
    # 100 s left of the upload: less than a part URL would live
    left = 100
    assert left < settings.direct_part_url_expiry
    clock.now = FROZEN_NOW + datetime.timedelta(seconds=settings.direct_upload_expiry - left)

    response = ask_part_urls(client, people, "ada", upload, "partNumbers=1")

    assert response.status_code == 200
    assert response.json["expiresAt"] == (
        FROZEN_NOW + datetime.timedelta(seconds=settings.direct_upload_expiry)
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(response.json["parts"][0]["href"]).query)
    assert query["X-Amz-Expires"] == [str(left)]
    clock.now = FROZEN_NOW + datetime.timedelta(seconds=settings.direct_upload_expiry)
    assert_error(ask_part_urls(client, people, "ada", upload, "partNumbers=1"), 404,
                 "NotFound", NOT_FOUND)
    assert_error(held(client, people, "ada", upload), 404, "NotFound", NOT_FOUND)
    # refused, and nothing touched: affix cleanup aborts it
    assert (rows(catalog), s3_bucket.pending_uploads()) == before


def test_only_the_author_sees_the_parts(client, people, s3_bucket):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(SMALL))
    assert_error(held(client, people, "bob", upload), 404, "NotFound", NOT_FOUND)
    assert_error(ask_part_urls(client, people, "bob", upload, "partNumbers=1"), 404,
                 "NotFound", NOT_FOUND)
    # nor has a form's upload any parts
    form = prepared(client, people, "ada", "cat.png", SMALL)
    assert_error(client.simulate_get(f"/api/v3/attachments/{form['id']}/parts",
                                     headers=people.auth("ada")), 404, "NotFound", NOT_FOUND)


def test_an_upload_in_parts_is_at_its_self_link_to_its_author_while_pending(
        client, people, s3_bucket):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    self_href = upload["_links"]["self"]["href"]

    pending = client.simulate_get(self_href, headers=people.auth("ada"))

    assert pending.status_code == 200
    assert pending.json == upload
    assert_error(client.simulate_get(self_href, headers=people.auth("bob")), 404, "NotFound",
                 NOT_FOUND)
    send_parts(client, people, "ada", upload, CONTENT, [1, 2, 3])
    assert complete(client, people, "ada", upload).status_code == 200
    assert_error(client.simulate_get(self_href, headers=people.auth("ada")), 404, "NotFound",
                 NOT_FOUND)


@pytest.mark.parametrize("sent, problem", [
    ({1: CONTENT[:PART], 3: CONTENT[2 * PART:]}, "part 2 of 3 not uploaded"),
    ({1: CONTENT[:PART], 2: CONTENT[PART:2 * PART], 3: CONTENT[2 * PART:] + b"x"},
     "part 3 has 1235 bytes, not 1234"),
])
def test_parts_that_are_not_the_file_are_refused_leaving_nothing(
        client, people, catalog, s3_bucket, sent, problem):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    # moto takes any length at a part's URL
    for number, url in part_urls(client, people, "ada", upload, list(sent)).items():
        assert put_part(url, sent[number]).status_code == 200
    assert_error(complete(client, people, "ada", upload), 422, "PropertyConstraintViolation",
                 f"The uploaded parts are not the file declared: {problem}.", "fileSize")
    assert_nothing_left(catalog, s3_bucket)


def test_eicar_sent_in_parts_is_refused_leaving_nothing(
        settings, plugin_manager, people, catalog, clamd, s3_bucket):
    settings = dataclasses.replace(
        settings, scan=ScanOptions(mode="stream", clamd=clamd.socket_path))
    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    upload = prepared_in_parts(client, people, "bob", "eicar.com", len(eicar()))
    send_parts(client, people, "bob", upload, eicar())
    assert_error(complete(client, people, "bob", upload), 422, "PropertyConstraintViolation",
                 refusal(FINDING), "file")
    assert_nothing_left(catalog, s3_bucket)


def test_two_completions_at_once_complete_the_upload_once(client, people, catalog, s3_bucket):
    for round_number in range(RACE_ROUNDS):
        upload = prepared_in_parts(client, people, "ada", f"{round_number}.png", len(SMALL))
        send_parts(client, people, "ada", upload, SMALL)
        answers = race(*[lambda: complete(client, people, "ada", upload)] * 2)
        assert [answer.status_code for answer in answers] == [200, 200], answers[0].json
        assert {answer.json["id"] for answer in answers} == {upload["id"]}
    completed = rows(catalog)
    assert [(status, digest) for _, status, _, digest, _ in completed] == [
        ("uploaded", md5(SMALL))] * RACE_ROUNDS
    assert s3_bucket.objects() == {f"{PREFIX}/{key}": SMALL for *_, key in completed}
    assert s3_bucket.pending_uploads() == []


def test_an_upload_another_request_joined_meanwhile_is_not_found(settings, s3_bucket):
    parts = open_blob_store(settings.storage_url, settings.s3).part_staging(60)
    staged_key = parts.new_key()
    parts.start(staged_key)
    read_before = parts.upload_id(staged_key)
    plan = PartPlan.for_size(len(SMALL))
    url = parts.part_urls(staged_key, plan, [1], parts.url_lifetime)[1]
    assert put_part(url, SMALL).status_code == 200
    held_parts = parts.held_parts(staged_key)
    parts.join(staged_key, held_parts)

    class ReadBefore(type(parts)):
        """Its upload id read before the upload was joined, as a completion running at the
        same time as another has it."""

        def upload_id(self, staged_key):
            return read_before
    late = ReadBefore(parts._store, 60)
    with pytest.raises(FileNotFoundError):
        late.held_parts(staged_key)
    # joining the same parts again changes nothing (S3 answers it as the first time)
    late.join(staged_key, held_parts)
    assert s3_bucket.objects() == {f"{PREFIX}/{staged_key}": SMALL}


def test_deleting_an_upload_in_parts_aborts_it(client, people, catalog, s3_bucket):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    send_parts(client, people, "ada", upload, CONTENT, [1])
    deleted = client.simulate_delete(upload["_links"]["delete"]["href"],
                                     headers=people.auth("ada"))
    assert deleted.status_code == 204
    assert_nothing_left(catalog, s3_bucket)
    assert_error(complete(client, people, "ada", upload), 404, "NotFound", NOT_FOUND)


def test_completing_before_any_part_is_refused_and_ends_the_upload(
        client, people, catalog, s3_bucket):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(SMALL))
    assert_error(complete(client, people, "ada", upload), 422, "PropertyConstraintViolation",
                 "The uploaded parts are not the file declared: part 1 of 1 not uploaded.",
                 "fileSize")
    assert_nothing_left(catalog, s3_bucket)


def test_cleanup_aborts_expired_uploads_in_parts_and_stale_ones_without_a_row(
        client, people, catalog, s3_bucket, settings, databases):
    abandoned = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    send_parts(client, people, "ada", abandoned, CONTENT, [1])
    # a multipart upload whose row was never written (a crash between the two); moto says
    # every upload was initiated in 2010, so the sweep takes it as stale
    s3_bucket.client.create_multipart_upload(
        Bucket=s3_bucket.name, Key=f"{PREFIX}/.direct-uploads/parts/{'0' * 32}")
    # affix gc's sweep of staging leaves uploads in parts alone: they have their own expiry
    blob_store = open_blob_store(settings.storage_url, settings.s3)
    assert blob_store.sweep_staging(datetime.datetime(9999, 1, 1)) == 0
    assert len(s3_bucket.pending_uploads()) == 2
    # prepared at the app's frozen clock, years ago: long expired
    environ = databases.environ(settings.data_dir, AFFIX_STORAGE_URL=s3_bucket.url(PREFIX),
                                **s3_environ(s3_bucket.endpoint_url))
    out = io.StringIO()
    assert main(["cleanup"], environ=environ, out=out) == 0
    assert out.getvalue().splitlines()[1] == (
        "removed 1 direct upload never completed, prepared more than 14400 seconds ago")
    assert_nothing_left(catalog, s3_bucket)


def test_a_store_without_direct_uploads_answers_as_for_a_form(
        tmp_path, settings, plugin_manager, people, catalog):
    client = falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, storage_url=str(tmp_path / "blobs")),
        plugin_manager=plugin_manager))
    attachment_id = uploaded(client, people, "ada", name="cat.png", content=SMALL)
    before = rows(catalog)
    response = prepare(client, people, "ada",
                       {"fileName": "a.bin", "fileSize": 3, "parts": True})
    assert_error(response, 422, "PropertyConstraintViolation", NOT_AVAILABLE)
    assert rows(catalog) == before
    # an attachment there is has no parts on a local store
    assert_error(client.simulate_get(f"/api/v3/attachments/{attachment_id}/parts",
                                     headers=people.auth("ada")), 404, "NotFound", NOT_FOUND)


def test_parts_that_are_no_yes_or_no_are_422(client, people, catalog, s3_bucket):
    response = prepare(client, people, "ada", {"fileName": "a.bin", "fileSize": 3, "parts": 1})
    assert_error(response, 422, "PropertyConstraintViolation", "Parts must be true or false.",
                 "parts")
    assert_nothing_left(catalog, s3_bucket)

