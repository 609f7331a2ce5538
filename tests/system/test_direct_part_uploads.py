"""Direct uploads in parts (issue #29) against moto's S3 server: prepare in parts, part URLs,
the parts the bucket holds, completion, and what is left in the bucket after each way out
(objects and open multipart uploads)."""
import pytest

from support.content import MiB, md5, random_bytes
from support.direct_parts import (
    ask_part_urls, held, part_of, part_urls, prepared_in_parts, put_part, send_parts,
)
from support.direct_uploads import complete
from support.s3 import bucket_settings

pytestmark = pytest.mark.system

PREFIX = "blobs"
PART = 8 * MiB
# three parts, the last one short
CONTENT = random_bytes(2 * PART + 1234, seed=29)


@pytest.fixture
def settings(tmp_path, s3_bucket, databases):
    return bucket_settings(databases, tmp_path / "data", s3_bucket, max_attachment_size=64 * MiB)


def rows(catalog):
    with catalog.database.connection_context():
        Attachment = catalog.Attachment
        return [(a.id, a.status, a.file_size, a.md5, a.storage_key)
                for a in Attachment.select().order_by(Attachment.id)]


def test_an_upload_in_parts_end_to_end(client, people, catalog, s3_bucket):
    upload = prepared_in_parts(client, people, "ada", "data.bin", len(CONTENT))
    assert (upload["fileSize"], upload["partSize"], upload["partCount"]) == (
        len(CONTENT), PART, 3)
    assert "addAttachment" not in upload["_links"]
    [staged] = s3_bucket.pending_uploads()
    assert staged.startswith(f"{PREFIX}/.direct-uploads/parts/")
    # the parts in another order than their numbers, as parallel clients send them
    send_parts(client, people, "ada", upload, CONTENT, [3, 1])
    answer = held(client, people, "ada", upload)
    assert answer.status_code == 200
    assert [(part["partNumber"], part["size"]) for part in answer.json["parts"]] == [
        (1, PART), (3, 1234)]
    send_parts(client, people, "ada", upload, CONTENT, [2])

    response = complete(client, people, "ada", upload)
    assert response.status_code == 200, response.json
    assert response.json["digest"] == {"algorithm": "md5", "hash": md5(CONTENT)}
    [(_, status, size, digest, storage_key)] = rows(catalog)
    assert (status, size, digest) == ("uploaded", len(CONTENT), md5(CONTENT))
    assert s3_bucket.objects() == {f"{PREFIX}/{storage_key}": CONTENT}
    assert s3_bucket.pending_uploads() == []
