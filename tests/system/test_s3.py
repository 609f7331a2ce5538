"""S3-compatible storage against a real S3 server on loopback (moto's): uploads stream into
multipart uploads, a refused upload leaves neither an object nor a pending upload nor a row,
downloads are redirects to pre-signed URLs that answer with the right headers, deletion removes
the object, and the listing and sweeping a garbage collector needs."""
import dataclasses
import datetime
import gc
import io
import json
import weakref

import falcon.testing
import peewee
import pytest
import requests

from affix.app import create_app, open_catalog
from affix.storage.orphans import find_orphans
from affix.storage.s3 import PART_SIZE, S3BlobStore, s3_client
from affix.storage.stores import open_blob_store
from support.bodies import upload_body
from support.content import MiB, md5, png_bytes, random_bytes
from support.defaults import FROZEN_NOW, SMALL_LIMIT
from support.errors import UNAVAILABLE, URN, hal_error
from support.faults import OnCue, catalog_on_cue
from support.net import REQUEST_TIMEOUT, free_port
from support.s3 import bucket_settings, missing_bucket, s3_environ, s3_options
from support.servers import HIGH_LIMIT, running_server
from support.state import STORAGE_KEY, Stored

# every test here stores in moto's S3 server (the s3_bucket fixture of support.s3)
pytestmark = pytest.mark.system

PREFIX = "blobs"
# above one part, so that every refusal below comes after a part went into a multipart upload
PAST_ONE_PART = PART_SIZE + MiB


@pytest.fixture
def settings(tmp_path, s3_bucket, databases):
    """conftest's app, client, catalog and people, storing in a bucket of their own."""
    return bucket_settings(databases, tmp_path / "data", s3_bucket)


@pytest.fixture
def rows(catalog):
    return Stored(catalog, None).rows


def client_with_limit(settings, plugin_manager, limit, **parts):
    """A client of an app taking uploads up to ``limit`` bytes, made of ``parts`` where given
    (:func:`affix.compose`'s)."""
    app = create_app(dataclasses.replace(settings, max_attachment_size=limit),
                     plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW, **parts)
    return falcon.testing.TestClient(app)


def post(client, people, body_and_type, **kwargs):
    body, content_type = body_and_type
    return client.simulate_post(
        "/api/v3/attachments", body=body,
        headers={**people.auth("ada"), "Content-Type": content_type, **kwargs.pop("headers", {})},
        **kwargs,
    )


def object_key(storage_key) -> str:
    return f"{PREFIX}/{storage_key}"


# --- uploads and downloads ---------------------------------------------------------------------

@pytest.mark.parametrize("file_name, content, content_type, disposition", [
    ("cat.png", png_bytes(), "image/png",
     "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"),
    ("page.html", b"<p>hello</p>\n", "text/plain; charset=us-ascii",
     "inline; filename=\"page.html\"; filename*=UTF-8''page.html"),
    ("Ünïcode \"report\".bin", bytes(range(256)), "application/octet-stream",
     "attachment; filename=\"_n_code _report_.bin\"; "
     "filename*=UTF-8''%C3%9Cn%C3%AFcode%20%22report%22.bin"),
])
def test_an_upload_is_an_object_served_by_a_redirect_to_a_presigned_url(
        client, people, rows, s3_bucket, file_name, content, content_type, disposition):
    response = post(client, people, upload_body(json.dumps({"fileName": file_name}).encode(),
                                                content))
    assert response.status_code == 200, response.json
    document = response.json
    [(attachment_id, stored_name, size, digest, storage_key)] = rows()
    assert (stored_name, size, digest) == (file_name, len(content), md5(content))
    assert STORAGE_KEY.fullmatch(storage_key)
    assert s3_bucket.objects() == {object_key(storage_key): content}
    assert s3_bucket.pending_uploads() == []

    links = document["_links"]
    static = f"/api/v3/attachments/{attachment_id}/download"
    assert links["staticDownloadLocation"] == {"href": static}
    presigned = links["downloadLocation"]["href"]
    assert presigned.startswith(
        f"{s3_bucket.endpoint_url}/{s3_bucket.name}/{object_key(storage_key)}?")
    for path in ("download", "content"):
        redirect = client.simulate_get(f"/api/v3/attachments/{attachment_id}/{path}",
                                       headers=people.auth("ada"))
        assert redirect.status_code == 302
        assert redirect.content == b""
        # signed afresh for every request: nobody may keep the redirect
        assert redirect.headers["cache-control"] == "private, no-store"
        assert redirect.headers["location"].startswith(
            f"{s3_bucket.endpoint_url}/{s3_bucket.name}/{object_key(storage_key)}?")
    for url in (presigned, redirect.headers["location"]):
        served = requests.get(url, timeout=REQUEST_TIMEOUT)
        assert served.status_code == 200
        assert served.content == content
        assert served.headers["Content-Type"] == content_type
        assert served.headers["Content-Disposition"] == disposition


def test_a_download_of_someone_elses_attachment_is_404_without_a_url(client, people):
    response = post(client, people, upload_body())
    attachment_id = response.json["id"]
    refused = client.simulate_get(f"/api/v3/attachments/{attachment_id}/download",
                                  headers=people.auth("bob"))
    assert refused.status_code == 404
    assert "location" not in refused.headers
    assert refused.json == hal_error("NotFound", "The specified attachment does not exist.")


def test_an_upload_of_several_parts_is_stored_exactly(
        settings, plugin_manager, people, rows, s3_bucket, parts_sent):
    store, sent = parts_sent
    content = random_bytes(17 * MiB)
    client = client_with_limit(settings, plugin_manager, 32 * MiB, blob_store=store)
    response = post(client, people, upload_body(file=content))
    assert response.status_code == 200, response.json
    assert response.json["digest"] == {"algorithm": "md5", "hash": md5(content)}
    [(_, _, size, digest, storage_key)] = rows()
    assert (size, digest) == (len(content), md5(content))
    assert s3_bucket.objects() == {object_key(storage_key): content}
    assert s3_bucket.pending_uploads() == []
    # every part but the last at least PART_SIZE, and no part holds more than one more read
    part_sizes = [size for _, size in sent]
    assert len(part_sizes) == 3
    assert all(PART_SIZE <= size <= PART_SIZE + MiB for size in part_sizes[:-1])
    assert sum(part_sizes) == len(content)
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=object_key(storage_key))
    assert head["ETag"].endswith('-3"')


def test_an_empty_file_is_an_empty_object(client, people, rows, s3_bucket):
    response = post(client, people, upload_body(file=b""))
    assert response.status_code == 200, response.json
    [(_, _, _, _, storage_key)] = rows()
    assert s3_bucket.objects() == {object_key(storage_key): b""}


def test_deleting_an_attachment_deletes_its_object(client, people, rows, s3_bucket):
    kept = post(client, people, upload_body(file=b"kept")).json["id"]
    gone = post(client, people, upload_body(file=b"gone")).json["id"]
    response = client.simulate_delete(f"/api/v3/attachments/{gone}", headers=people.auth("ada"))
    assert response.status_code == 204
    [(attachment_id, _, _, _, storage_key)] = rows()
    assert attachment_id == kept
    assert s3_bucket.objects() == {object_key(storage_key): b"kept"}


# --- refusals leave nothing --------------------------------------------------------------------

def refused_body_cases():
    content = random_bytes(PAST_ONE_PART, seed=1)
    body, content_type = upload_body(file=content)
    metadata_last, metadata_last_type = upload_body(b"{not json", content, file_first=True)
    return {
        "cut short before the closing boundary": (
            dict(body=body[:-100]), content_type,
            (400, "InvalidRequestBody", "The request body ended before the closing boundary.")),
        "client gone: fewer bytes than Content-Length": (
            dict(body=body[:PAST_ONE_PART], headers={"Content-Length": str(len(body))}),
            content_type,
            (400, "InvalidRequestBody",
             f"The request body ended after {PAST_ONE_PART} of {len(body)} bytes.")),
        "client gone: connection reset": (
            dict(extras={"wsgi.input": BrokenConnection(body[:PAST_ONE_PART])}), content_type,
            # the client went away: its doing, not a fault of the server
            (400, "InvalidRequestBody", "The request body could not be read: its framing is "
             "broken, or it ended early.")),
        "bad metadata after the file": (
            dict(body=metadata_last), metadata_last_type,
            (400, "InvalidRequestBody", "The request could not be parsed as JSON.")),
    }


class BrokenConnection(io.RawIOBase):
    """A request body that delivers its first bytes, then fails as a reset connection does."""

    def __init__(self, first):
        self.remaining = io.BytesIO(first)

    def readable(self):
        return True

    def readinto(self, buffer):
        count = self.remaining.readinto(buffer)
        if not count:
            raise OSError("connection reset by peer")
        return count


@pytest.fixture
def earlier(client, people, rows, s3_bucket):
    """An attachment stored before the refused upload, which must stay untouched."""
    assert post(client, people, upload_body(file=b"earlier")).status_code == 200
    return rows(), s3_bucket.objects()


@pytest.fixture
def parts_sent(settings):
    """A store for the app, and the parts its multipart uploads sent, as (upload id, size),
    seen by its S3 client: a refusal after one shows that what was sent is aborted, not merely
    never started."""
    client = OnCue(s3_client(settings.s3))
    sent = []

    def recording_upload_part(upload_part, **request):
        # the size before the request: the store reuses the part's buffer once it is sent
        size = len(request["Body"])
        answer = upload_part(**request)
        sent.append((request["UploadId"], size))
        return answer

    client.around("upload_part", recording_upload_part)
    return S3BlobStore(settings.storage_url, settings.s3, client=client), sent


def assert_nothing_left(rows, s3_bucket, earlier):
    assert (rows(), s3_bucket.objects()) == earlier
    assert s3_bucket.pending_uploads() == []


@pytest.mark.parametrize("case", list(refused_body_cases()))
def test_a_refused_body_leaves_no_object_no_pending_upload_and_no_row(
        settings, plugin_manager, people, rows, s3_bucket, earlier, parts_sent, case):
    store, sent = parts_sent
    request, content_type, (status, identifier, message) = refused_body_cases()[case]
    client = client_with_limit(settings, plugin_manager, 32 * MiB, blob_store=store)
    headers = {**people.auth("ada"), "Content-Type": content_type, **request.pop("headers", {})}
    response = client.simulate_post("/api/v3/attachments", headers=headers, **request)
    assert (response.status_code, response.json) == (status, hal_error(identifier, message))
    assert len(sent) == 1
    assert_nothing_left(rows, s3_bucket, earlier)


def test_a_file_over_the_limit_leaves_nothing(settings, plugin_manager, people, rows,
                                              s3_bucket, earlier, parts_sent):
    store, sent = parts_sent
    limit = PAST_ONE_PART
    client = client_with_limit(settings, plugin_manager, limit, blob_store=store)
    response = post(client, people, upload_body(file=random_bytes(limit + 1)))
    assert response.status_code == 422
    assert response.json == hal_error(
        "PropertyConstraintViolation", f"File is too large (maximum size is {limit} Bytes).",
        "fileSize")
    assert len(sent) == 1
    assert_nothing_left(rows, s3_bucket, earlier)


@pytest.mark.parametrize("size", [10, PAST_ONE_PART])
def test_a_database_error_at_the_row_insert_removes_the_completed_object(
        settings, plugin_manager, people, rows, s3_bucket, earlier, size):
    catalog = catalog_on_cue(open_catalog(settings))
    client = client_with_limit(settings, plugin_manager, 32 * MiB, catalog=catalog)

    def failing_insert(*args, **kwargs):
        raise peewee.OperationalError("database is locked")

    # the row's insert, after the object is completed
    catalog.replace("add_attachment", failing_insert)
    response = post(client, people, upload_body(file=random_bytes(size)))
    catalog.restore("add_attachment")
    assert response.status_code == 503
    assert_nothing_left(rows, s3_bucket, earlier)


def test_a_failed_commit_leaves_nothing(settings, plugin_manager, people, rows, s3_bucket,
                                        earlier, parts_sent):
    """The object store failing as the upload completes: the upload is aborted, and an object
    the store may have completed all the same is removed."""
    store, sent = parts_sent
    blob_store = OnCue(store)
    client = client_with_limit(settings, plugin_manager, 32 * MiB, blob_store=blob_store)

    def commit_then_fail(commit):
        commit()
        raise ConnectionError("the answer to CompleteMultipartUpload never came")

    def staging_failing_commits(stage, *args, **kwargs):
        staged = OnCue(stage(*args, **kwargs))
        staged.around("commit", commit_then_fail)
        return staged

    blob_store.around("stage", staging_failing_commits)
    response = post(client, people, upload_body(file=random_bytes(PAST_ONE_PART)))
    assert response.status_code == 500
    assert len(sent) == 2
    assert_nothing_left(rows, s3_bucket, earlier)


def test_a_staged_blob_nobody_commits_never_becomes_an_object(s3_bucket):
    store = open_blob_store(s3_bucket.url(PREFIX), s3_bucket.options)
    staged = store.stage()
    staged.write(random_bytes(PAST_ONE_PART))
    key = staged.object_key
    collected = weakref.ref(staged)
    del staged
    gc.collect()
    assert collected() is None
    assert s3_bucket.objects() == {}
    # pending, invisible, until the sweep aborts it
    assert s3_bucket.pending_uploads() == [key]
    assert store.sweep_staging(cutoff=datetime.datetime.now(datetime.UTC).replace(
        tzinfo=None) + datetime.timedelta(minutes=1)) == 1
    assert s3_bucket.pending_uploads() == []


# --- listing for a garbage collector, sweeping abandoned uploads --------------------------------

def naive_utc_now():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def test_stored_blobs_lists_committed_objects_under_the_prefix_only(s3_bucket):
    # pages of two keys: every page counts
    store = S3BlobStore(s3_bucket.url(PREFIX), s3_bucket.options, list_page_size=2)
    before = naive_utc_now().replace(microsecond=0)
    keys = set()
    for number in range(5):
        staged = store.stage()
        staged.write(f"blob {number}".encode())
        keys.add(staged.commit())
    after = naive_utc_now()
    pending = store.stage()
    pending.write(random_bytes(PAST_ONE_PART))
    # other prefixes, and files under ours that affix did not name
    for foreign in ("other/ab/cd/x", f"{PREFIX}x/ab/cd/y", "loose", f"{PREFIX}/notes.txt",
                    f"{PREFIX}/ab/" + "cd" * 16):
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=foreign, Body=b"not ours")
    listed = list(store.stored_blobs())
    assert {key for key, _ in listed} == keys
    assert len(listed) == len(keys)
    for _, last_modified in listed:
        assert last_modified.tzinfo is None
        assert before <= last_modified <= after
    pending.discard()


def test_orphans_are_found_among_objects(client, people, rows, catalog, s3_bucket):
    assert post(client, people, upload_body(file=b"has a row")).status_code == 200
    store = open_blob_store(s3_bucket.url(PREFIX), s3_bucket.options)
    staged = store.stage()
    staged.write(b"a crash left me without a row")
    orphan = staged.commit()
    with catalog.database.connection_context():
        cutoff = naive_utc_now() + datetime.timedelta(minutes=1)
        assert find_orphans(catalog, store, cutoff) == [orphan]
        assert find_orphans(catalog, store, cutoff - datetime.timedelta(days=1)) == []


def test_the_sweep_aborts_pending_uploads_under_the_prefix_only(s3_bucket):
    # pages of two uploads where the server pages them (moto answers all in one, whatever the
    # page size)
    store = S3BlobStore(s3_bucket.url(PREFIX), s3_bucket.options, list_page_size=2)
    neighbour = open_blob_store(s3_bucket.url("elsewhere"), s3_bucket.options)
    ours, theirs = [], []
    for staging_store, staged in ((store, ours), (store, ours), (store, ours),
                                  (neighbour, theirs)):
        blob = staging_store.stage()
        blob.write(random_bytes(PART_SIZE))
        staged.append(blob.object_key)
    long_ago = datetime.datetime(2000, 1, 1)
    assert store.sweep_staging(cutoff=long_ago) == 0
    assert sorted(s3_bucket.pending_uploads()) == sorted(ours + theirs)
    assert store.sweep_staging(cutoff=naive_utc_now() + datetime.timedelta(minutes=1)) == 3
    assert s3_bucket.pending_uploads() == theirs


def test_presigned_urls_expire_as_configured(s3_bucket):
    store = open_blob_store(s3_bucket.url(PREFIX), s3_options(s3_bucket.endpoint_url,
                                                              url_expiry=600))
    url = store.download_url("ab/cd/ef", "image/png", "inline; filename=\"a.png\"")
    assert "X-Amz-Expires=600&" in url
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url


# --- a real server -----------------------------------------------------------------------------

def test_a_real_server_stores_in_s3_and_redirects_downloads(tmp_path, s3_bucket, databases):
    environ = {**s3_environ(s3_bucket.endpoint_url), "AFFIX_STORAGE_URL": s3_bucket.url(PREFIX)}
    content = random_bytes(PAST_ONE_PART, seed=7)
    with running_server(tmp_path, databases, HIGH_LIMIT, environ) as server:
        body, content_type = upload_body(b'{"fileName": "big.bin"}', content)
        response = requests.post(server.url("/api/v3/attachments"), data=body,
                                 headers={**server.auth, "Content-Type": content_type},
                                 timeout=REQUEST_TIMEOUT)
        assert response.status_code == 200, response.text
        attachment_id = response.json()["id"]
        [(_, _, size, digest, storage_key)] = server.stored.rows()
        assert (size, digest) == (len(content), md5(content))
        assert s3_bucket.objects() == {object_key(storage_key): content}
        assert s3_bucket.pending_uploads() == []

        downloaded = requests.get(server.url(f"/api/v3/attachments/{attachment_id}/download"),
                                  headers=server.auth, timeout=REQUEST_TIMEOUT)
        [redirect] = downloaded.history
        assert redirect.status_code == 302
        assert redirect.headers["Content-Length"] == "0"
        assert redirect.headers["Location"].startswith(f"{s3_bucket.endpoint_url}/")
        # the API key stays with affix: requests drops it on the way to another port
        assert "Authorization" not in downloaded.request.headers
        assert downloaded.status_code == 200
        assert downloaded.content == content
        assert downloaded.headers["Content-Disposition"] == (
            "attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin")

        deleted = requests.delete(server.url(f"/api/v3/attachments/{attachment_id}"),
                                  headers=server.auth, timeout=REQUEST_TIMEOUT)
        assert deleted.status_code == 204
        assert s3_bucket.objects() == {}
        assert "Traceback" not in server.stderr()


# --- the store out of reach ----------------------------------------------------------------------

def test_an_object_store_out_of_reach_is_503_and_leaves_no_row(
        tmp_path, databases, plugin_manager, people, rows):
    # nothing listens on a port just freed; boto3 retries, then gives up
    offline = databases.settings(
        tmp_path / "data", max_attachment_size=SMALL_LIMIT, storage_url="s3://offline/blobs",
        s3=s3_options(f"http://127.0.0.1:{free_port()}"))
    client = falcon.testing.TestClient(
        create_app(offline, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    response = post(client, people, upload_body(file=b"nowhere to go"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json == hal_error("ServiceUnavailable", UNAVAILABLE)
    assert rows() == []


def test_ready_while_the_bucket_answers_and_not_without_it(client, settings, plugin_manager):
    assert client.simulate_get("/health/ready").status_code == 200
    elsewhere_bucket = "affix-no-such-bucket"
    elsewhere = dataclasses.replace(settings, storage_url=f"s3://{elsewhere_bucket}/blobs")
    without = falcon.testing.TestClient(create_app(elsewhere, plugin_manager=plugin_manager))

    response = without.simulate_get("/health/ready")

    assert response.status_code == 503
    assert response.json["errorIdentifier"] == URN + "ServiceUnavailable"
    assert response.json["message"] == (
        f"Not ready: the blob store is out of reach ({missing_bucket(elsewhere_bucket)}).")


def test_deleting_a_staged_key_ends_a_multipart_upload_only_where_one_can_be(s3_bucket):
    """A form's staged object has no multipart upload: its deletion asks for no listing of
    them (one per direct upload completed); an upload in parts' staged key has one, ended."""
    store = S3BlobStore(s3_bucket.url(PREFIX), s3_bucket.options)
    listed = []
    store.client.meta.events.register("provide-client-params.s3.ListMultipartUploads",
                                      lambda params, **_: listed.append(params["Prefix"]))
    form_key, parts_key = ".direct-uploads/form-upload", ".direct-uploads/parts/in-parts"
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=f"{PREFIX}/{form_key}", Body=b"x")
    s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key=f"{PREFIX}/{parts_key}")

    store.delete(form_key)
    assert (listed, s3_bucket.objects(), s3_bucket.pending_uploads()) == (
        [], {}, [f"{PREFIX}/{parts_key}"])
    store.delete(parts_key)
    assert (listed, s3_bucket.objects(), s3_bucket.pending_uploads()) == (
        [f"{PREFIX}/{parts_key}"], {}, [])
