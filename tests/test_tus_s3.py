"""Resumable (tus) uploads into S3 (moto's server), through falcon.testing: parts of at least
5 MiB in a multipart upload, the rest staged in the bucket between PATCHes, nothing visible
before the last byte; a wrong checksum, a refusal at the end and cleanup leave the bucket as it
was."""
import dataclasses
import datetime

import falcon.testing
import pytest

from affix.app import create_app
from affix.storage.cleanup import remove_expired_resumable_uploads
from affix.storage.resumable import ResumableUploads
from affix.storage.stores import open_blob_store, open_partial_store
from support.content import MiB, md5, random_bytes
from support.defaults import FROZEN_NOW, SMALL_LIMIT
from support.tus import checksum, created, patch, token_of, uploads

pytestmark = pytest.mark.system

PREFIX = "blobs"
CONTENT = random_bytes(20 * MiB + 12345, seed=5)


@pytest.fixture
def settings(tmp_path, s3_bucket, databases):
    return databases.settings(
        tmp_path / "data", max_attachment_size=SMALL_LIMIT, storage_url=s3_bucket.url(PREFIX),
        s3=s3_bucket.options)


def staged_rest(s3_bucket, path) -> bytes | None:
    return s3_bucket.objects().get(f"{PREFIX}/.tus/{token_of(path)}")


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
        assert staged_rest(s3_bucket, path) == (CONTENT[parts_in_mib * MiB:offset] or None)
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
