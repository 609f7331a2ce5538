"""The backup of an affix on PostgreSQL and S3, tried: `pg_dump` while a real server serves, then
the bucket copied with deploy/copy_bucket.py; restored with `pg_restore` into a new database and
the copy uploaded into an empty prefix; served again."""
import subprocess
import sys

import pytest

from support.content import random_bytes
from support.errors import NO_SUCH_ATTACHMENT
from support.http import assert_downloads_as, assert_uploaded, download, upload
from support.processes import COMMAND_TIMEOUT, REPO_ROOT
from support.s3 import s3_environ
from support.servers import HIGH_LIMIT, running_server

pytestmark = pytest.mark.system

COPY_BUCKET = REPO_ROOT / "deploy" / "copy_bucket.py"


def run(command, environ=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, env=environ)


def copy_bucket(direction, folder, bucket, prefix) -> subprocess.CompletedProcess:
    """``python3 deploy/copy_bucket.py DIRECTION FOLDER`` with an affix's S3 settings."""
    environ = {**s3_environ(bucket.endpoint_url), "AFFIX_STORAGE_URL": bucket.url(prefix)}
    return run([sys.executable, COPY_BUCKET, direction, folder], environ)


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
def test_a_dump_and_a_bucket_copy_taken_while_serving_restore_into_a_new_database_and_prefix(
        tmp_path, databases, s3_bucket):
    for run_dir in ("served", "restored"):
        (tmp_path / run_dir).mkdir()
    served_from = {**s3_environ(s3_bucket.endpoint_url), "AFFIX_STORAGE_URL": s3_bucket.url()}
    with running_server(tmp_path / "served", databases, HIGH_LIMIT, served_from) as server:
        contents = {f"file-{number}.bin": random_bytes(100_000 + number, seed=number)
                    for number in range(5)}
        in_bucket = f"{s3_bucket.endpoint_url}/{s3_bucket.name}/blobs/"
        ids = {name: assert_uploaded(upload(server, name, content), name, content, in_bucket)
               for name, content in contents.items()}
        backed_up_rows = server.stored.rows()

        # the documented order: the database first, then the blobs
        dumped = run(["pg_dump", "--format=custom", f"--file={tmp_path / 'affix.dump'}",
                      databases.url(tmp_path / "served" / "data")])
        copied = copy_bucket("download", tmp_path / "blobs", s3_bucket, "blobs")
        later = assert_uploaded(upload(server, "later.bin", b"after the backup"), "later.bin",
                                b"after the backup", in_bucket)
        api_key = server.api_key

    assert (dumped.returncode, dumped.stderr) == (0, "")
    assert (copied.returncode, copied.stderr) == (0, "")
    assert copied.stdout == (f"copy_bucket: copied 5 blobs from s3://{s3_bucket.name}/blobs to "
                             f"{tmp_path / 'blobs'}\n")
    # the restore, into a new, empty database and an empty prefix of the bucket
    restored_database = databases.url(tmp_path / "restored" / "data")
    restored = run(["pg_restore", "--no-owner", f"--dbname={restored_database}",
                    tmp_path / "affix.dump"])
    assert (restored.returncode, restored.stderr) == (0, "")
    uploaded = copy_bucket("upload", tmp_path / "blobs", s3_bucket, "restored")
    assert (uploaded.returncode, uploaded.stderr) == (0, "")

    restored_to = {**served_from, "AFFIX_STORAGE_URL": s3_bucket.url("restored")}
    with running_server(tmp_path / "restored", databases, HIGH_LIMIT, restored_to,
                        api_key=api_key) as restored_server:
        for name, content in contents.items():
            assert_downloads_as(restored_server, ids[name], content)
        missing = download(restored_server, later)
        assert (missing.status_code, missing.json()["message"]) == (404, NO_SUCH_ATTACHMENT)
        assert restored_server.stored.rows() == backed_up_rows
    restored_objects = {key for key in s3_bucket.objects() if key.startswith("restored/")}
    assert restored_objects == {f"restored/{row[4]}" for row in backed_up_rows}


def test_a_restore_into_a_prefix_that_holds_objects_copies_nothing(tmp_path, s3_bucket):
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "backed-up").write_bytes(b"from the backup")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="blobs/in-use", Body=b"live")

    refused = copy_bucket("upload", tmp_path / "blobs", s3_bucket, "blobs")

    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1, "", f"copy_bucket: s3://{s3_bucket.name}/blobs holds objects already: "
               "restore into an empty bucket or prefix\n")
    assert s3_bucket.objects() == {"blobs/in-use": b"live"}


def test_a_download_into_a_folder_that_exists_copies_nothing(tmp_path, s3_bucket):
    (tmp_path / "blobs").mkdir()
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="blobs/in-use", Body=b"live")

    refused = copy_bucket("download", tmp_path / "blobs", s3_bucket, "blobs")

    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1, "", f"copy_bucket: {tmp_path / 'blobs'} exists already: name a new folder\n")
    assert list((tmp_path / "blobs").iterdir()) == []
