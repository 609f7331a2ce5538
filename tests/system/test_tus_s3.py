"""Resumable (tus) uploads into S3 (moto's server), through falcon.testing: parts of at least
5 MiB in a multipart upload, the rest staged in the bucket between PATCHes, nothing visible
before the last byte; a wrong checksum, a refusal at the end and cleanup leave the bucket as it
was."""
import dataclasses
import datetime
import io
import tracemalloc

import falcon.testing
import peewee
import pytest

from affix.app import create_app
from affix.app.cli.commands import main, sweep_staging
from affix.app.composition import compose
from affix.storage.blob_store import StoreUnavailable
from affix.storage.cleanup import remove_expired_resumable_uploads
from affix.storage.models import utc_now
from affix.storage.resumable import LEASE_DURATION, ResumableUploads, remove_unless_leased
from affix.storage.s3 import DEFAULT_STAGING_MAX_AGE, PART_SIZE, S3BlobStore
from affix.storage.stores import open_blob_store, open_partial_store
from support.clocks import Clock
from support.content import MiB, md5, random_bytes
from support.defaults import FROZEN_NOW
from support.errors import NOT_FOUND, UNAVAILABLE, assert_error
from support.faults import OnCue
from support.s3 import s3_environ
from support.tus import (
    LOCKED, OFFSET_OCTET_STREAM, TUS, checksum, concat_states, created, final, head, partial,
    patch, token_of, uploads,
)

pytestmark = pytest.mark.system

PREFIX = "blobs"
CONTENT = random_bytes(20 * MiB + 12345, seed=5)


@pytest.fixture
def settings(tmp_path, s3_bucket, databases):
    return databases.settings(
        # tus takes no file larger than every upload's limit
        tmp_path / "data", max_attachment_size=len(CONTENT), storage_url=s3_bucket.url(PREFIX),
        s3=s3_bucket.options)


def staged_rests(s3_bucket, path) -> dict:
    """{name (<parts size>-<received>): bytes} of every rest staged for the upload."""
    folder = f"{PREFIX}/.tus/{token_of(path)}/"
    return {key.removeprefix(folder): data for key, data in s3_bucket.objects().items()
            if key.startswith(folder)}


def staged_rest(s3_bucket, path) -> bytes | None:
    """The one rest staged for the upload (None: none)."""
    rests = staged_rests(s3_bucket, path)
    assert len(rests) <= 1, list(rests)
    return next(iter(rests.values()), None)


def parts(catalog, path):
    """(part count, bytes in parts) the upload's row holds."""
    with catalog.database.connection_context():
        return catalog.database.execute_sql(
            'SELECT "part_count", "parts_size" FROM "resumable_uploads" WHERE "token" = '
            + catalog.database.param, (token_of(path),)).fetchone()


def test_parts_go_to_a_multipart_upload_and_the_rest_waits_in_the_bucket(
        client, people, catalog, s3_bucket):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT), filename="big.bin")
    # 3 MiB PATCHes, read 1 MiB at a time: a part of 8 MiB as soon as 8 MiB have gathered,
    # the rest staged
    offset = 0
    for count, parts_in_mib in ((0, 0), (0, 0), (1, 8), (1, 8), (1, 8), (2, 16)):
        size = 3 * MiB
        assert patch(client, auth, path, offset, CONTENT[offset:offset + size]).status_code == 204
        offset += size
        assert parts(catalog, path) == (count, parts_in_mib * MiB)
        # named by the row's state, the rest of earlier states gone
        rest = CONTENT[parts_in_mib * MiB:offset]
        assert staged_rests(s3_bucket, path) == (
            {f"{parts_in_mib * MiB}-{offset}": rest} if rest else {})
        # nothing is an object at a storage key before the last byte
        assert [key for key in s3_bucket.objects() if not key.startswith(f"{PREFIX}/.tus/")] == []
    assert len(s3_bucket.pending_uploads()) == 1

    last = patch(client, auth, path, offset, CONTENT[offset:])
    assert last.status_code == 204
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert (record.file_size, record.md5) == (len(CONTENT), md5(CONTENT))
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": CONTENT}
    assert s3_bucket.pending_uploads() == []


def test_partial_uploads_are_joined_in_the_bucket_a_part_at_a_time_at_most(
        client, people, catalog, s3_bucket, settings, clock):
    auth = people.auth("ada")
    # a part of its own (copied in the bucket, UploadPartCopy), one smaller than a part, and one
    # after it (both through the worker, a part at a time)
    bounds = [0, PART_SIZE + MiB, PART_SIZE + 2 * MiB, len(CONTENT)]
    paths = [partial(client, auth, CONTENT[start:end])
             for start, end in zip(bounds, bounds[1:])]
    tracemalloc.start()
    try:
        response = final(client, auth, *paths, filename="big.bin")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.json
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert (record.file_size, record.md5) == (len(CONTENT), md5(CONTENT))
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": CONTENT}
    assert s3_bucket.pending_uploads() == []
    final_token = token_of(response.headers["location"])
    assert [row[2] for row in concat_states(catalog)] == [final_token] * 3 + [None]
    # one part gathered while joining (8 MiB), and a chunk of what is read
    assert peak < PART_SIZE + 2 * MiB, peak

    # an unfinished partial upload expires as any upload: its multipart upload is aborted
    partial(client, auth, CONTENT[:10 * MiB], sent=9 * MiB)
    assert len(s3_bucket.pending_uploads()) == 1
    clock.advance(datetime.timedelta(days=2))
    with catalog.database.connection_context():
        blob_store = open_blob_store(settings.storage_url, settings.s3)
        assert remove_expired_resumable_uploads(
            ResumableUploads(catalog), open_partial_store(blob_store), blob_store, clock()) == 5
    assert uploads(catalog) == []
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": CONTENT}
    assert s3_bucket.pending_uploads() == []


def test_a_file_smaller_than_a_part_is_the_staged_rest_copied(client, people, catalog,
                                                              s3_bucket):
    auth = people.auth("ada")
    small = CONTENT[:3 * MiB]
    path = created(client, auth, len(small))
    assert patch(client, auth, path, 0, small[:MiB]).status_code == 204
    assert staged_rest(s3_bucket, path) == small[:MiB]
    assert patch(client, auth, path, MiB, small[MiB:]).status_code == 204
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": small}
    assert s3_bucket.pending_uploads() == []


def test_a_wrong_checksum_keeps_the_parts_and_the_rest_as_they_were(
        client, people, catalog, s3_bucket):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:5 * MiB]).status_code == 204
    # this PATCH fills a part (uploaded as it streams) before its checksum fails
    response = patch(client, auth, path, 5 * MiB, CONTENT[5 * MiB:12 * MiB],
                     headers={"Upload-Checksum": checksum("sha1", b"other bytes")})
    assert response.status_code == 460
    assert uploads(catalog) == [(token_of(path), 5 * MiB, len(CONTENT), None)]
    assert parts(catalog, path) == (0, 0)
    assert staged_rest(s3_bucket, path) == CONTENT[:5 * MiB]
    # sent again, right: the part written past the row's count is written over
    assert patch(client, auth, path, 5 * MiB, CONTENT[5 * MiB:]).status_code == 204
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": CONTENT}
    assert s3_bucket.pending_uploads() == []


def test_a_refusal_at_the_end_leaves_the_bucket_empty(settings, plugin_manager, people,
                                                      catalog, s3_bucket):
    client = falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, allowlist=("image/png",)), plugin_manager=plugin_manager,
        clock=lambda: FROZEN_NOW))
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:9 * MiB]).status_code == 204
    assert patch(client, auth, path, 9 * MiB, CONTENT[9 * MiB:]).status_code == 422
    assert uploads(catalog) == []
    with catalog.database.connection_context():
        assert list(catalog.Attachment.select()) == []
    assert s3_bucket.objects() == {}
    assert s3_bucket.pending_uploads() == []


def test_cleanup_aborts_the_multipart_upload_and_deletes_the_rest(
        client, people, catalog, s3_bucket, settings, clock):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:10 * MiB]).status_code == 204
    assert len(s3_bucket.pending_uploads()) == 1 and staged_rest(s3_bucket, path)
    clock.advance(datetime.timedelta(days=1))
    with catalog.database.connection_context():
        blob_store = open_blob_store(settings.storage_url, settings.s3)
        assert remove_expired_resumable_uploads(
            ResumableUploads(catalog), open_partial_store(blob_store), blob_store, clock()) == 1
    assert uploads(catalog) == []
    assert s3_bucket.objects() == {}
    assert s3_bucket.pending_uploads() == []


def test_neither_a_node_s_start_nor_gc_aborts_a_live_upload_s_multipart_upload(
        settings, plugin_manager, people, catalog, s3_bucket):
    # the app's clock is the wall clock's moment: the commands' sweeps go by the wall clock
    clock = Clock(utc_now())
    client = falcon.testing.TestClient(create_app(settings, plugin_manager=plugin_manager,
                                                  clock=clock))
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT), filename="big.bin")
    assert patch(client, auth, path, 0, CONTENT[:9 * MiB]).status_code == 204
    assert parts(catalog, path) == (1, 8 * MiB)
    # beside it, a multipart upload that a worker killed mid-upload left behind
    blob_store = open_blob_store(settings.storage_url, settings.s3)
    abandoned = blob_store.stage()
    abandoned.write(random_bytes(PART_SIZE))
    assert len(s3_bucket.pending_uploads()) == 2

    # a node starting once the upload has gone on for longer than the sweep's age
    later = S3BlobStore(settings.storage_url, settings.s3,
                        clock=lambda: utc_now() + DEFAULT_STAGING_MAX_AGE * 2)
    with catalog.database.connection_context():
        assert sweep_staging(compose(settings, catalog=catalog, blob_store=later)) == 1
    assert s3_bucket.pending_uploads() == [f"{PREFIX}/{parts_key(catalog, path)}"]
    out = io.StringIO()
    environ = {"AFFIX_DATA_DIR": str(settings.data_dir),
               "AFFIX_DATABASE_URL": settings.database_url,
               "AFFIX_STORAGE_URL": settings.storage_url, **s3_environ(s3_bucket.endpoint_url)}
    assert main(["gc", "--min-age", "0"], environ=environ, out=out) == 0
    assert out.getvalue() == "removed 0 blobs without an attachment, older than 0 minutes\n"
    assert len(s3_bucket.pending_uploads()) == 1

    clock.advance(datetime.timedelta(hours=1))
    assert patch(client, auth, path, 9 * MiB, CONTENT[9 * MiB:]).status_code == 204
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert (record.file_size, record.md5) == (len(CONTENT), md5(CONTENT))
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": CONTENT}
    assert s3_bucket.pending_uploads() == []


def parts_key(catalog, path):
    with catalog.database.connection_context():
        return ResumableUploads(catalog).by_token(token_of(path)).storage_key


class StallingChunkedBody(io.RawIOBase):
    """A PATCH body without Content-Length whose end comes only after ``on_end`` ran."""

    def __init__(self, data, on_end):
        self._data = io.BytesIO(data)
        self._on_end = on_end

    def readable(self):
        return True

    def read(self, size=-1):
        chunk = self._data.read(size)
        if not chunk:
            self._on_end()
        return chunk


def test_a_patch_that_lost_its_lease_before_keeping_leaves_the_staged_rest_alone(
        settings, plugin_manager, client, people, catalog, s3_bucket, clock):
    auth = people.auth("ada")
    small = CONTENT[:4 * MiB]
    path = created(client, auth, len(small))
    assert patch(client, auth, path, 0, small[:MiB]).status_code == 204
    other_node = falcon.testing.TestClient(create_app(
        settings, plugin_manager=plugin_manager, clock=clock))

    def stalled_then_overtaken():
        # this PATCH's node stalls after its last byte, past its lease; the client's retry
        # goes on through another node
        clock.advance(LEASE_DURATION)
        assert head(other_node, auth, path).headers["upload-offset"] == str(MiB)
        assert patch(other_node, auth, path, MiB, small[MiB:3 * MiB]).status_code == 204

    response = client.simulate_patch(path, headers={
        **auth, **TUS, "Upload-Offset": str(MiB), "Content-Type": OFFSET_OCTET_STREAM},
        extras={"wsgi.input": StallingChunkedBody(b"x" * MiB, stalled_then_overtaken)})
    assert_error(response, 423, "Locked", LOCKED)
    assert uploads(catalog) == [(token_of(path), 3 * MiB, len(small), None)]
    assert staged_rest(s3_bucket, path) == small[:3 * MiB]
    assert patch(client, auth, path, 3 * MiB, small[3 * MiB:]).status_code == 204
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": small}


def test_removing_an_upload_read_before_a_patch_moved_it_on_aborts_its_multipart_upload(
        client, people, catalog, s3_bucket, settings, clock):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    blob_store = open_blob_store(settings.storage_url, settings.s3)
    with catalog.database.connection_context():
        table = ResumableUploads(catalog)
        # read by a termination or cleanup before the PATCH that started the multipart upload
        stale = table.by_token(token_of(path))
        assert patch(client, auth, path, 0, CONTENT[:9 * MiB]).status_code == 204
        removed = remove_unless_leased(table, open_partial_store(blob_store), stale, clock())
    assert (removed.received, removed.part_count) == (9 * MiB, 1)
    assert removed.multipart_id is not None
    assert uploads(catalog) == []
    assert s3_bucket.objects() == {}
    assert s3_bucket.pending_uploads() == []


def record_progress_failing_once(services):
    """The app's table of resumable uploads (on cue) raising a database error once as it
    records progress, after the PATCH's bytes were kept: a failure at that instant cannot be
    made otherwise."""
    services.resumable_uploads.fail_once("record_progress",
                                         peewee.OperationalError("database is locked"))


@pytest.mark.on_cue("resumable_uploads")
@pytest.mark.parametrize("end, rest_left, multipart_left", [
    # a rest alone, longer than the row's
    (6 * MiB, {f"0-{6 * MiB}": CONTENT[:6 * MiB]}, 0),
    # a part and a rest as long as the row's: read as the row's, it would go unnoticed; and
    # a multipart upload that no row names
    (11 * MiB, {f"{8 * MiB}-{11 * MiB}": CONTENT[8 * MiB:11 * MiB]}, 1),
])
def test_a_patch_whose_progress_was_not_recorded_leaves_the_row_s_rest_to_go_on_from(
        client, people, catalog, s3_bucket, settings, services, end, rest_left,
        multipart_left):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT), filename="big.bin")
    assert patch(client, auth, path, 0, CONTENT[:3 * MiB]).status_code == 204
    record_progress_failing_once(services)
    assert_error(patch(client, auth, path, 3 * MiB, CONTENT[3 * MiB:end]), 503,
                 "ServiceUnavailable", UNAVAILABLE)
    assert uploads(catalog) == [(token_of(path), 3 * MiB, len(CONTENT), None)]
    assert parts(catalog, path) == (0, 0)
    assert staged_rests(s3_bucket, path) == {f"0-{3 * MiB}": CONTENT[:3 * MiB], **rest_left}

    # the client goes on from the offset HEAD tells
    offset = int(head(client, auth, path).headers["upload-offset"])
    assert offset == 3 * MiB
    response = patch(client, auth, path, offset, CONTENT[offset:offset + 3 * MiB])
    assert response.status_code == 204
    # the row's rest, the earlier one and the one no row names are gone
    assert staged_rests(s3_bucket, path) == {f"0-{6 * MiB}": CONTENT[:6 * MiB]}
    offset = 6 * MiB
    while offset < len(CONTENT):
        response = patch(client, auth, path, offset, CONTENT[offset:offset + 3 * MiB])
        assert response.status_code == 204, response.json
        offset = int(response.headers["upload-offset"])
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert (record.file_size, record.md5, record.status) == (
        len(CONTENT), md5(CONTENT), "uploaded")
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": CONTENT}
    # the failed PATCH's multipart upload is left to the staging sweep: whether its database
    # error left the row unchanged, nobody can tell at that instant
    assert len(s3_bucket.pending_uploads()) == multipart_left
    later = S3BlobStore(settings.storage_url, settings.s3,
                        clock=lambda: utc_now() + DEFAULT_STAGING_MAX_AGE * 2)
    with catalog.database.connection_context():
        assert sweep_staging(compose(settings, catalog=catalog, blob_store=later)) == multipart_left
    assert s3_bucket.pending_uploads() == []


def terminated(client, auth, path, **_):
    response = client.simulate_delete(path, headers={**auth, **TUS})
    assert response.status_code == 204


def cleaned_up(client, auth, path, *, catalog, settings, clock):
    clock.advance(datetime.timedelta(days=1))
    with catalog.database.connection_context():
        blob_store = open_blob_store(settings.storage_url, settings.s3)
        assert remove_expired_resumable_uploads(
            ResumableUploads(catalog), open_partial_store(blob_store), blob_store, clock()) == 1


@pytest.mark.on_cue("resumable_uploads")
@pytest.mark.parametrize("removed", [terminated, cleaned_up])
def test_removing_an_upload_deletes_every_rest_staged_for_it(
        client, people, catalog, s3_bucket, settings, clock, services, removed):
    auth = people.auth("ada")
    path = created(client, auth, len(CONTENT))
    assert patch(client, auth, path, 0, CONTENT[:9 * MiB]).status_code == 204
    record_progress_failing_once(services)
    assert_error(patch(client, auth, path, 9 * MiB, CONTENT[9 * MiB:12 * MiB]), 503,
                 "ServiceUnavailable", UNAVAILABLE)
    assert staged_rests(s3_bucket, path) == {
        f"{8 * MiB}-{9 * MiB}": CONTENT[8 * MiB:9 * MiB],
        f"{8 * MiB}-{12 * MiB}": CONTENT[8 * MiB:12 * MiB]}
    removed(client, auth, path, catalog=catalog, settings=settings, clock=clock)
    assert uploads(catalog) == []
    assert s3_bucket.objects() == {}
    assert s3_bucket.pending_uploads() == []


SMALL = b"helloworld"


def finishing_failed_once(settings, plugin_manager, people, catalog, started):
    """(client, auth, clock, path) of a tus upload of ``SMALL`` begun ``started`` before now
    (the wall clock's, as the commands go by), whose finishing failed for a passing reason
    once its bytes were at its storage key: its attachment prepared, waiting for the retry."""
    clock = Clock(utc_now() - started)
    blob_store = OnCue(open_blob_store(settings.storage_url, settings.s3))
    client = falcon.testing.TestClient(create_app(settings, plugin_manager=plugin_manager,
                                                  clock=clock, blob_store=blob_store))
    auth = people.auth("ada")
    path = created(client, auth, len(SMALL), filename="notes.txt")
    assert patch(client, auth, path, 0, SMALL[:5]).status_code == 204
    # reading the committed file back
    blob_store.fail_once("open", StoreUnavailable("the store is away"))
    assert_error(patch(client, auth, path, 5, SMALL[5:]), 503, "ServiceUnavailable", UNAVAILABLE)
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert record.status == "prepared"
    assert uploads(catalog) == [(token_of(path), len(SMALL), len(SMALL), record.id)]
    return client, auth, clock, path


def commands_environ(databases, settings, s3_bucket):
    return databases.environ(settings.data_dir, AFFIX_STORAGE_URL=settings.storage_url,
                             **s3_environ(s3_bucket.endpoint_url))


def run(environ, *command) -> list:
    out = io.StringIO()
    assert main(list(command), environ=environ, out=out) == 0
    return out.getvalue().splitlines()


def test_an_upload_waiting_for_its_retry_outlives_the_direct_uploads_expiry(
        settings, plugin_manager, people, catalog, s3_bucket, databases):
    client, auth, clock, path = finishing_failed_once(
        settings, plugin_manager, people, catalog,
        started=datetime.timedelta(seconds=settings.direct_upload_expiry + 3600))
    stored = s3_bucket.objects()
    assert list(stored.values()) == [SMALL]

    # its prepared attachment is no direct upload nobody completed, nor are its bytes garbage
    environ = commands_environ(databases, settings, s3_bucket)
    assert run(environ, "cleanup") == [
        "removed 0 unclaimed attachments older than 180 minutes",
        f"removed 0 direct uploads never completed, prepared more than "
        f"{settings.direct_upload_expiry} seconds ago",
        "removed 0 resumable uploads left unfinished past Upload-Expires",
    ]
    assert run(environ, "gc", "--min-age", "0") == [
        "removed 0 blobs without an attachment, older than 0 minutes"]
    assert s3_bucket.objects() == stored

    # the client's retry, now, finishes it
    clock.now = utc_now()
    retried = patch(client, auth, path, 5, SMALL[5:])
    assert retried.status_code == 204, retried.json
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()
    assert (record.status, record.file_size, record.md5) == ("uploaded", len(SMALL), md5(SMALL))
    assert s3_bucket.objects() == {f"{PREFIX}/{record.storage_key}": SMALL}


def test_a_direct_upload_s_completion_does_not_take_an_upload_waiting_for_its_retry(
        settings, plugin_manager, people, catalog, s3_bucket):
    client, auth, clock, path = finishing_failed_once(
        settings, plugin_manager, people, catalog, started=datetime.timedelta(0))
    stored = s3_bucket.objects()
    with catalog.database.connection_context():
        (record,) = catalog.Attachment.select()

    # its prepared attachment's id, asked to complete as a direct upload's
    answer = client.simulate_get(f"/api/v3/attachments/{record.id}/uploaded", headers=auth)
    assert_error(answer, 404, "NotFound", NOT_FOUND)
    with catalog.database.connection_context():
        assert [(row.id, row.status) for row in catalog.Attachment.select()] == [
            (record.id, "prepared")]
    assert s3_bucket.objects() == stored
    # and the client's retry finishes it
    assert patch(client, auth, path, 5, SMALL[5:]).status_code == 204
    assert list(s3_bucket.objects().values()) == [SMALL]


def test_an_upload_whose_finishing_failed_goes_entirely_once_it_expires(
        settings, plugin_manager, people, catalog, s3_bucket, databases):
    finishing_failed_once(settings, plugin_manager, people, catalog,
                          started=datetime.timedelta(seconds=settings.tus_expiry + 3600))
    assert run(commands_environ(databases, settings, s3_bucket), "cleanup") == [
        "removed 0 unclaimed attachments older than 180 minutes",
        f"removed 0 direct uploads never completed, prepared more than "
        f"{settings.direct_upload_expiry} seconds ago",
        "removed 1 resumable upload left unfinished past Upload-Expires",
    ]
    with catalog.database.connection_context():
        assert list(catalog.Attachment.select()) == []
    assert uploads(catalog) == []
    assert s3_bucket.objects() == {}
    assert s3_bucket.pending_uploads() == []


def test_a_prepared_attachment_whose_upload_is_gone_goes_with_the_expired_direct_uploads(
        settings, plugin_manager, people, catalog, s3_bucket, databases):
    finishing_failed_once(
        settings, plugin_manager, people, catalog,
        started=datetime.timedelta(seconds=settings.direct_upload_expiry + 3600))
    # a crash between removing the upload and the attachment it prepared
    with catalog.database.connection_context():
        ResumableUploads(catalog).ResumableUpload.delete().execute()
    assert run(commands_environ(databases, settings, s3_bucket), "cleanup")[1] == (
        f"removed 1 direct upload never completed, prepared more than "
        f"{settings.direct_upload_expiry} seconds ago")
    with catalog.database.connection_context():
        assert list(catalog.Attachment.select()) == []
    assert s3_bucket.objects() == {}
