"""An AttachmentUpload's ``_links.self`` (``/api/v3/attachment_upload/{id}``, issue #25 trap 6),
against moto's S3 server: its author gets the pending upload as prepare answered it, with a form
that still works and expires when prepare's does; anybody else, and everybody once it is complete
or its form expired, gets 404; nothing a GET answers changes what is stored."""
import datetime

import pytest

from support.direct_uploads import complete, policy_of, prepared, send_to_store
from support.content import png_bytes
from support.errors import MAY_NOT_UPLOAD, NOT_FOUND, assert_error
from support.s3 import bucket_settings
from support.work_packages import created

pytestmark = pytest.mark.system

CONTENT = png_bytes(3, 2)
EXPIRY = 4 * 3600


@pytest.fixture
def settings(tmp_path, s3_bucket, databases):
    return bucket_settings(databases, tmp_path / "data", s3_bucket)


def get(client, people, login, upload):
    return client.simulate_get(upload["_links"]["self"]["href"], headers=people.auth(login))


def expiration(upload) -> datetime.datetime:
    return datetime.datetime.fromisoformat(policy_of(upload)["expiration"].rstrip("Z"))


def without_form_fields(upload) -> dict:
    """``upload`` but its form's fields, whose policy and signature are made anew each time."""
    form = {key: value for key, value in upload["_links"]["addAttachment"].items()
            if key != "form_fields"}
    return {**upload, "_links": {**upload["_links"], "addAttachment": form}}


def signed_conditions(upload: dict) -> list:
    """The policy's conditions without the signing's date and time."""
    return [condition for condition in policy_of(upload)["conditions"]
            if not (isinstance(condition, dict) and "x-amz-date" in condition)]


@pytest.mark.parametrize("into_work_package", [False, True])
def test_a_pending_upload_is_its_authors_as_prepare_answered_it(
        client, people, clock, s3_bucket, into_work_package):
    path = "/api/v3/attachments/prepare"
    if into_work_package:
        path = f"/api/v3/work_packages/{created(client, people, 'ada')}/attachments/prepare"
    upload = prepared(client, people, "ada", "cat.png", CONTENT, path)
    assert upload["_links"]["self"]["href"] == f"/api/v3/attachment_upload/{upload['id']}"
    # an hour later, by the app's clock
    clock.advance(datetime.timedelta(hours=1))

    got = get(client, people, "ada", upload)
    headed = client.simulate_head(upload["_links"]["self"]["href"], headers=people.auth("ada"))

    assert (got.status_code, got.headers["content-type"]) == (200, "application/hal+json")
    assert without_form_fields(got.json) == without_form_fields(upload)
    fields = got.json["_links"]["addAttachment"]["form_fields"]
    assert fields.keys() == upload["_links"]["addAttachment"]["form_fields"].keys()
    assert fields["key"] == upload["_links"]["addAttachment"]["form_fields"]["key"]
    # signed anew, to expire when prepare's form does by the app's clock: an hour in, it lives
    # three hours more (give or take the real seconds between the two signings)
    assert abs(expiration(got.json) + datetime.timedelta(hours=1) - expiration(upload)) < (
        datetime.timedelta(seconds=30))
    # the same conditions, but for the moment of signing, which botocore takes from its clock
    assert signed_conditions(got.json) == signed_conditions(upload)
    assert (headed.status_code, headed.content) == (200, b"")
    assert s3_bucket.objects() == {}
    # the form it answered uploads the file, and the upload completes
    assert send_to_store(got.json, CONTENT).status_code == 201
    completed = complete(client, people, "ada", upload)
    assert completed.status_code == 200, completed.json
    # complete: no longer an upload, but the attachment
    assert_error(get(client, people, "ada", upload), 404, "NotFound", NOT_FOUND)
    attachment = client.simulate_get(f"/api/v3/attachments/{upload['id']}",
                                     headers=people.auth("ada"))
    assert (attachment.status_code, attachment.json["fileName"]) == (200, "cat.png")


def test_nobody_but_its_author_finds_a_pending_upload(client, people, catalog, s3_bucket):
    upload = prepared(client, people, "bob", "cat.png", CONTENT)
    before = s3_bucket.objects()
    # ada is an admin: an upload still pending is its author's alone even so
    for login in ("ada", "eve"):
        assert_error(get(client, people, login, upload), 404, "NotFound", NOT_FOUND)
    assert_error(client.simulate_get(f"/api/v3/attachment_upload/{upload['id'] + 1}",
                                     headers=people.auth("bob")), 404, "NotFound", NOT_FOUND)
    assert get(client, people, "bob", upload).status_code == 200
    assert s3_bucket.objects() == before


def test_an_upload_whose_form_expired_is_no_longer_pending(client, people, clock, s3_bucket):
    upload = prepared(client, people, "ada", "cat.png", CONTENT)
    clock.advance(datetime.timedelta(seconds=EXPIRY - 1))
    assert get(client, people, "ada", upload).status_code == 200
    clock.advance(datetime.timedelta(seconds=1))
    assert_error(get(client, people, "ada", upload), 404, "NotFound", NOT_FOUND)
    assert s3_bucket.objects() == {}


def test_an_author_who_lost_the_permission_is_told_which(client, people, catalog, s3_bucket):
    upload = prepared(client, people, "bob", "cat.png", CONTENT)
    with catalog.database.connection_context():
        catalog.RolePermission.delete().where(
            catalog.RolePermission.permission == "edit_work_packages").execute()
    assert_error(get(client, people, "bob", upload), 403, "MissingPermission", MAY_NOT_UPLOAD)
    assert s3_bucket.objects() == {}
