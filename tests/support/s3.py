"""A real S3-compatible server on loopback for the tests: moto's standalone server, in a process
of its own (it holds a multipart upload in memory while completing it: that memory must not be
the test process's).

``s3_server`` runs once per test session; ``s3_bucket`` gives each test an empty bucket of its
own, with the options affix needs to reach it and a view of what the bucket holds. Both are
fixtures any test may ask for (``tests/conftest.py`` registers this module as a plugin); a test
that uses them is marked ``system``. ``python -m tests.bench.s3`` runs the server too.
"""
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from affix.storage.s3 import S3Options, s3_client

from .defaults import SMALL_LIMIT
from .net import HOST, free_port

STARTUP_TIMEOUT = 30
SHUTDOWN_TIMEOUT = 10
POLL_INTERVAL = 0.05
REGION = "us-east-1"
# moto checks neither; boto3 must find some, and never look for real ones
ACCESS_KEY_ID = "affix-test-key"
SECRET_ACCESS_KEY = "affix-test-secret"


def missing_bucket(name) -> str:
    """What affix says of a bucket that is not there."""
    return (f"the bucket {name!r} does not exist: create it (affix storage init does, where the "
            "credentials allow), or name another in AFFIX_STORAGE_URL (storage_url in affix.toml)")


def _answers(endpoint_url) -> bool:
    try:
        return requests.get(endpoint_url + "/moto-api/", timeout=1).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


@contextlib.contextmanager
def running_moto_server(log_path: Path, **variables: str):
    """The endpoint URL of a moto server running on a free loopback port until the block
    ends; its output goes to ``log_path``; ``variables``: moto's settings
    (``INITIAL_NO_AUTH_ACTION_COUNT="0"`` makes it check every key)."""
    port = free_port()
    endpoint_url = f"http://{HOST}:{port}"
    # no AWS settings of the caller's reach it
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith("AWS_")} | variables
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            env=environ, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(endpoint_url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"moto server did not come up on {endpoint_url}:\n{log_path.read_text()}")
            time.sleep(POLL_INTERVAL)
        yield endpoint_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def s3_options(endpoint_url, **overrides) -> S3Options:
    return S3Options(**{
        "endpoint_url": endpoint_url, "region": REGION, "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY, "addressing_style": "path", **overrides,
    })


def s3_environ(endpoint_url) -> dict:
    """The AFFIX_S3_* variables of a server that stores in this moto server."""
    return {
        "AFFIX_S3_ENDPOINT_URL": endpoint_url, "AFFIX_S3_REGION": REGION,
        "AFFIX_S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "AFFIX_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AFFIX_S3_ADDRESSING_STYLE": "path",
    }


@dataclasses.dataclass
class Bucket:
    """One bucket of the moto server, and what it holds."""

    name: str
    endpoint_url: str
    client: object

    @property
    def options(self) -> S3Options:
        return s3_options(self.endpoint_url)

    def url(self, prefix="blobs") -> str:
        return f"s3://{self.name}/{prefix}"

    def objects(self) -> dict:
        """{object key: bytes} of every object, whatever its prefix."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return {
            item["Key"]: self.client.get_object(Bucket=self.name, Key=item["Key"])["Body"].read()
            for page in pages for item in page.get("Contents", ())
        }

    def pending_uploads(self) -> list:
        """Object keys of the multipart uploads neither completed nor aborted."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.name)
        return [upload["Key"] for page in pages for upload in page.get("Uploads", ())]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The endpoint URL of a moto server shared by the whole session."""
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with running_moto_server(log_path) as endpoint_url:
        yield endpoint_url


@pytest.fixture(scope="session")
def s3_server_checking_keys(tmp_path_factory):
    """A moto server that checks every key, as S3 does, against its IAM users: it has none, so
    it refuses every key."""
    log_path = tmp_path_factory.mktemp("moto-keys") / "moto.log"
    with running_moto_server(log_path, INITIAL_NO_AUTH_ACTION_COUNT="0") as endpoint_url:
        yield endpoint_url


@pytest.fixture
def s3_bucket(s3_server):
    """An empty bucket of its own for each test."""
    client = s3_client(s3_options(s3_server))
    name = f"affix-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    yield Bucket(name=name, endpoint_url=s3_server, client=client)
    # moto keeps every byte in memory for the whole session
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for upload in page.get("Uploads", ()):
            client.abort_multipart_upload(Bucket=name, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", ()):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


def bucket_settings(databases, data_dir, bucket, **overrides):
    """conftest's settings (its small size limit, unless ``overrides`` name another), storing
    in ``bucket`` under ``blobs``."""
    return databases.settings(data_dir, **{"max_attachment_size": SMALL_LIMIT, **overrides},
                              storage_url=bucket.url(), s3=bucket.options)
