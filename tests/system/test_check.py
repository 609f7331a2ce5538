"""``affix check`` on the real services it looks at (issue #25): a bucket of moto's S3 server
(there, missing, or refusing the keys) and a running clamd."""
import re

import pytest

from support.cli import affix, run_ok
from support.s3 import missing_bucket, s3_environ


def checked(environ, capsys, status):
    """The store's line of ``affix check`` (status 0) or its error (status 2)."""
    code, printed = affix(environ, "check")
    assert code == status, capsys.readouterr().err
    if status == 0:
        [line] = [line for line in printed.splitlines(keepends=True) if " store " in line]
        return line
    return capsys.readouterr().err


def test_check_writes_a_probe_object_and_removes_it(tmp_path, databases, s3_bucket, capsys):
    environ = databases.environ(tmp_path / "data", AFFIX_STORAGE_URL=s3_bucket.url(),
                                **s3_environ(s3_bucket.endpoint_url))
    run_ok(environ, "migrate")
    assert checked(environ, capsys, 0) == (
        f"ok  store     {s3_bucket.url()}: a probe object written and removed\n")
    assert (s3_bucket.objects(), s3_bucket.pending_uploads()) == ({}, [])


def test_check_names_a_bucket_that_does_not_exist(tmp_path, databases, s3_server, capsys):
    environ = databases.environ(tmp_path / "data", AFFIX_STORAGE_URL="s3://no-such-bucket/affix",
                                **s3_environ(s3_server))
    run_ok(environ, "migrate")
    assert checked(environ, capsys, 2) == (
        f"affix: error: store: s3://no-such-bucket/affix: {missing_bucket('no-such-bucket')}\n")


def test_check_says_the_keys_are_refused(tmp_path, databases, s3_server_checking_keys, capsys):
    environ = databases.environ(tmp_path / "data", AFFIX_STORAGE_URL="s3://attachments/affix",
                                **s3_environ(s3_server_checking_keys))
    run_ok(environ, "migrate")
    assert checked(environ, capsys, 2) == (
        "affix: error: store: s3://attachments/affix: the bucket 'attachments' refuses these "
        "keys (403 Forbidden): check AFFIX_S3_ACCESS_KEY_ID and AFFIX_S3_SECRET_ACCESS_KEY, "
        "and what they may do in the bucket\n")


@pytest.mark.parametrize("mode", ["stream", "after"])
def test_check_asks_clamd_its_version(environ, clamd, capsys, mode):
    environ.update(AFFIX_SCAN_MODE=mode, AFFIX_CLAMD=clamd.socket_path)
    status, printed = affix(environ, "check")
    assert status == 0, capsys.readouterr().err
    assert re.search(rf"^ok  clamd     {re.escape(str(clamd.socket_path))} answers: "
                     r"ClamAV [0-9.]+(/.*)?$", printed, re.MULTILINE), printed
