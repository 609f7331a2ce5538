"""``affix storage init`` on S3 (issue #25, trap 6: the bucket must exist and nobody said so),
against moto's S3 server: the bucket is made where the credentials allow, one that exists is
left as it is (exit 0), and S3's refusal is one line with S3's own code (exit 1)."""
import uuid

import pytest

from support.cli import affix, assert_refused
from support.s3 import s3_environ

pytestmark = pytest.mark.system


def environ_for(endpoint_url, bucket, data_dir) -> dict:
    return {**s3_environ(endpoint_url), "AFFIX_STORAGE_URL": f"s3://{bucket}/blobs",
            "AFFIX_DATA_DIR": str(data_dir)}


def bucket_names(s3_bucket) -> set:
    return {bucket["Name"] for bucket in s3_bucket.client.list_buckets()["Buckets"]}


def test_storage_init_makes_the_bucket_once(tmp_path, s3_server, s3_bucket, capsys):
    name = f"affix-new-{uuid.uuid4().hex[:16]}"
    environ = environ_for(s3_server, name, tmp_path / "data")
    try:
        assert affix(environ, "storage", "init") == (0, f"created the bucket {name!r}\n")
        assert name in bucket_names(s3_bucket)
        assert affix(environ, "storage", "init") == (
            0, f"the bucket {name!r} exists already: nothing to do\n")
    finally:
        s3_bucket.client.delete_bucket(Bucket=name)
    assert capsys.readouterr().err == ""
    # no database, no data folder: the bucket is all it made
    assert not (tmp_path / "data").exists()


def test_storage_init_leaves_an_existing_bucket_and_its_objects(tmp_path, s3_server, s3_bucket):
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="blobs/kept", Body=b"kept")
    environ = environ_for(s3_server, s3_bucket.name, tmp_path / "data")
    assert affix(environ, "storage", "init") == (
        0, f"the bucket {s3_bucket.name!r} exists already: nothing to do\n")
    assert s3_bucket.objects() == {"blobs/kept": b"kept"}


def test_storage_init_refused_by_s3_is_one_line(tmp_path, s3_server_checking_keys, capsys):
    environ = environ_for(s3_server_checking_keys, "affix-refused", tmp_path / "data")
    assert_refused(capsys, environ, ["storage", "init"],
                   "could not create the bucket 'affix-refused': An error occurred "
                   "(InvalidAccessKeyId) when calling the CreateBucket operation: The AWS Access "
                   "Key Id you provided does not exist in our records.")
    assert not (tmp_path / "data").exists()

