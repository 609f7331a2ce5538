"""Several affix nodes behind one address: two real servers (``affix serve``, gunicorn each, on
ports of their own and data dirs of their own) sharing one database (a PostgreSQL database in
the PostgreSQL run, one SQLite file in the SQLite run) and one S3 bucket (moto on loopback).

What one node stores, the other serves, claims and deletes; two claims of one attachment through
both nodes at the same moment have one winner; ``affix cleanup`` run beside node B while node A
takes uploads and claims loses nothing that was claimed; a resumable (tus) upload's PATCHes
alternate between the nodes, and two PATCHes of one upload at once never interleave.
"""
import concurrent.futures
import contextlib
import dataclasses
import datetime
import io
import itertools
import os
import subprocess
import sys

import pytest
import requests
from tusclient import client as tus_client

from affix.app import open_catalog
from affix.app.cli.commands import main as affix
from affix.app.testing import upload_form
from affix.storage.models import utc_now
from support.content import MiB, md5
from support.errors import CANNOT_BE_CHANGED, DOES_NOT_EXIST
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.processes import COMMAND_TIMEOUT, REPO_ROOT
from support.races import race
from support.s3 import s3_environ
from support.servers import (
    HIGH_LIMIT, WORKERS, ServedAffix, await_startup, stop_expecting_it_running,
)
from support.tus import (
    OFFSET_OCTET_STREAM, TUS, TUS_PATH, attachment_of, encode_metadata, offset_of,
)

# real servers, moto, and (in the PostgreSQL run) PostgreSQL
pytestmark = pytest.mark.system

THREADS = 4
PREFIX = "blobs"
RACE_ROUNDS = 10
# how long node A's claims may take while cleanup runs beside node B
RACE_TIMEOUT = 60
GRACE_PERIOD_MINUTES = 60
# resumable uploads: PATCHes smaller than an S3 part, so that the rest one node staged is read
# back by the other
TUS_CHUNK = 3 * MiB
TUS_RACE_ROUNDS = 5


@dataclasses.dataclass
class Node(ServedAffix):
    name: str

    def get(self, path, **kwargs):
        return requests.get(self.url(path), headers=self.auth, timeout=REQUEST_TIMEOUT, **kwargs)

    def upload(self, file_name, content) -> dict:
        body, content_type = upload_form(file_name, content)
        response = requests.post(
            self.url("/api/v3/attachments"), data=body,
            headers={**self.auth, "Content-Type": content_type}, timeout=REQUEST_TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    def create_work_package(self, project_id, subject, attachment_ids):
        return requests.post(
            self.url(f"/api/v3/projects/{project_id}/work_packages"),
            json={"subject": subject, "_links": {"attachments": [
                {"href": f"/api/v3/attachments/{attachment_id}"}
                for attachment_id in attachment_ids]}},
            headers=self.auth, timeout=REQUEST_TIMEOUT)

    def delete(self, attachment_id):
        return requests.delete(self.url(f"/api/v3/attachments/{attachment_id}"),
                               headers=self.auth, timeout=REQUEST_TIMEOUT)


@dataclasses.dataclass
class Cluster:
    a: Node
    b: Node
    environ: dict
    bucket: object
    project_id: int
    catalog: object

    def object_of(self, attachment_id):
        """The bytes of the attachment's object, or None when the bucket has none."""
        record = self.catalog.Attachment.get_or_none(self.catalog.Attachment.id == attachment_id)
        if record is None:
            return None
        return self.bucket.objects().get(f"{PREFIX}/{record.storage_key}")

    def stored_keys(self) -> set:
        Attachment = self.catalog.Attachment
        return {f"{PREFIX}/{row.storage_key}" for row in Attachment.select(Attachment.storage_key)}

    def cleanup_on_b(self) -> str:
        """``affix cleanup`` as cron runs it beside node B: a process of its own."""
        result = subprocess.run(
            [sys.executable, "-m", "affix.app.cli.commands", "cleanup"], cwd=REPO_ROOT,
            env={**self.environ, "AFFIX_DATA_DIR": str(self.environ["NODE_B_DATA_DIR"])},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        assert result.returncode == 0, result.stderr
        return result.stdout


def start_node(stack, name, run_dir, environ, api_key=None) -> Node:
    run_dir.mkdir(parents=True)
    port = free_port()
    stdout_path, stderr_path = run_dir / "stdout", run_dir / "stderr"
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "affix.app.cli.commands", "serve", "--bind", f"{HOST}:{port}",
             "--workers", str(WORKERS), "--threads", str(THREADS)],
            cwd=REPO_ROOT, env={**environ, "AFFIX_DATA_DIR": str(run_dir / "data")},
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)
    stack.callback(stop_expecting_it_running, process, stderr_path)
    # the first node to start creates the admin and announces its key; the second finds it
    return Node(port, await_startup(process, port, stdout_path, stderr_path, api_key), name)


@pytest.fixture
def cluster(tmp_path, databases, s3_bucket):
    shared = tmp_path / "shared"
    shared.mkdir()
    database_url = databases.settings(shared).database_url
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith(("AFFIX_", "AWS_"))}
    environ.update(s3_environ(s3_bucket.endpoint_url), AFFIX_DATABASE_URL=database_url,
                   AFFIX_STORAGE_URL=s3_bucket.url(PREFIX),
                   AFFIX_GRACE_PERIOD=str(GRACE_PERIOD_MINUTES),
                   # the resumable upload below is larger than the default limit
                   AFFIX_MAX_ATTACHMENT_SIZE=str(HIGH_LIMIT),
                   NODE_B_DATA_DIR=str(tmp_path / "b" / "data"))
    with contextlib.ExitStack() as stack:
        a = start_node(stack, "A", tmp_path / "a", environ)
        b = start_node(stack, "B", tmp_path / "b", environ, api_key=a.api_key)
        assert affix(["project", "add", "demo"], environ=environ, out=io.StringIO()) == 0
        catalog = open_catalog(databases.settings(shared, database_url=database_url))
        stack.callback(catalog.database.close)
        with catalog.database.connection_context():
            project_id = catalog.Project.get(catalog.Project.identifier == "demo").id
        yield Cluster(a, b, environ, s3_bucket, project_id, catalog)


def assert_served(node, attachment_id, content):
    """The attachment through ``node``: its document, and its bytes behind the redirect."""
    document = node.get(f"/api/v3/attachments/{attachment_id}").json()
    assert document["digest"]["hash"] == md5(content)
    redirect = node.get(f"/api/v3/attachments/{attachment_id}/download", allow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    fetched = requests.get(redirect.headers["Location"], timeout=REQUEST_TIMEOUT)
    assert fetched.status_code == 200
    assert fetched.content == content


def test_what_node_a_stores_node_b_serves_claims_and_deletes(cluster):
    content = os.urandom(300_000)
    attachment_id = cluster.a.upload("report.bin", content)["id"]

    assert_served(cluster.b, attachment_id, content)
    claim = cluster.b.create_work_package(cluster.project_id, "Report", [attachment_id])
    assert claim.status_code == 201, claim.text
    work_package_id = claim.json()["id"]
    listed = cluster.a.get(f"/api/v3/work_packages/{work_package_id}/attachments").json()
    assert [element["id"] for element in listed["_embedded"]["elements"]] == [attachment_id]
    with cluster.catalog.database.connection_context():
        assert cluster.object_of(attachment_id) == content

        assert cluster.b.delete(attachment_id).status_code == 204
        assert cluster.a.get(f"/api/v3/attachments/{attachment_id}").status_code == 404
        assert cluster.object_of(attachment_id) is None
        assert cluster.bucket.objects() == {}
        assert cluster.bucket.pending_uploads() == []


def test_two_claims_through_both_nodes_at_once_have_one_winner(cluster):
    for round_number in range(RACE_ROUNDS):
        attachment_id = cluster.a.upload(f"race-{round_number}.txt", b"contested")["id"]
        responses = race(*(
            lambda node=node: node.create_work_package(cluster.project_id,
                                                       f"{node.name} {round_number}",
                                                       [attachment_id])
            for node in (cluster.a, cluster.b)))
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201, 422], [response.text for response in responses]
        winner, loser = sorted(responses, key=lambda response: response.status_code)
        assert loser.json()["message"] == CANNOT_BE_CHANGED
        document = cluster.b.get(f"/api/v3/attachments/{attachment_id}").json()
        assert document["_links"]["container"]["href"] == (
            f"/api/v3/work_packages/{winner.json()['id']}")


def test_cleanup_beside_node_b_loses_nothing_node_a_claimed(cluster):
    # uploads old enough for cleanup, of which node A claims every other one while cleanup runs
    old = {cluster.a.upload(f"old-{n}.bin", os.urandom(1000 + n))["id"]: n for n in range(16)}
    contents = {}
    with cluster.catalog.database.connection_context():
        Attachment = cluster.catalog.Attachment
        for attachment_id in old:
            contents[attachment_id] = cluster.object_of(attachment_id)
        Attachment.update(created_at=utc_now() - datetime.timedelta(days=1)).where(
            Attachment.id.in_(list(old))).execute()

    claims = {}
    fresh = {}

    def node_a_at_work():
        for attachment_id in list(old)[::2]:
            claims[attachment_id] = cluster.a.create_work_package(
                cluster.project_id, f"claims {attachment_id}", [attachment_id])
            content = os.urandom(2000)
            fresh[cluster.a.upload("fresh.bin", content)["id"]] = content

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        at_work = pool.submit(node_a_at_work)
        reports = [cluster.cleanup_on_b() for _ in range(3)]
        at_work.result(timeout=RACE_TIMEOUT)
    removed = sum(int(report.split()[1]) for report in reports)

    with cluster.catalog.database.connection_context():
        survivors = 0
        for attachment_id, claim in claims.items():
            if claim.status_code == 201:
                # claimed: intact, and served with its bytes
                survivors += 1
                assert cluster.object_of(attachment_id) == contents[attachment_id]
                assert_served(cluster.b, attachment_id, contents[attachment_id])
            else:
                # cleanup came first: gone whole, and the claim said so
                assert (claim.status_code, claim.json()["message"]) == (422, DOES_NOT_EXIST)
                assert cluster.object_of(attachment_id) is None
        for attachment_id in list(old)[1::2]:
            # never claimed: gone whole
            assert cluster.catalog.Attachment.get_or_none(
                cluster.catalog.Attachment.id == attachment_id) is None
        for attachment_id, content in fresh.items():
            assert cluster.object_of(attachment_id) == content
        assert removed == len(old) - survivors
        # no object without its row, no row without its object, nothing half-uploaded
        assert set(cluster.bucket.objects()) == cluster.stored_keys()
        assert cluster.bucket.pending_uploads() == []


def created_upload(node, length, file_name) -> str:
    response = requests.post(node.url(TUS_PATH), headers={
        **node.auth, **TUS, "Upload-Length": str(length),
        "Upload-Metadata": encode_metadata(filename=file_name)}, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def test_a_resumable_upload_s_patches_alternate_between_the_nodes(cluster):
    content = os.urandom(20 * MiB + 5)
    path = created_upload(cluster.a, len(content), "shared.bin")
    offset = 0
    for node in itertools.cycle((cluster.b, cluster.a)):
        # each PATCH from a tuspy client of its own, which asks that node for the offset first
        uploader = tus_client.TusClient(node.url(TUS_PATH), headers=node.auth).uploader(
            file_stream=io.BytesIO(content), chunk_size=TUS_CHUNK, url=node.url(path))
        assert uploader.offset == offset
        uploader.upload_chunk()
        offset = uploader.offset
        if offset == len(content):
            break
    attachment_id = attachment_of(uploader.request.response_headers.get("link"))
    assert_served(cluster.a, attachment_id, content)
    with cluster.catalog.database.connection_context():
        assert cluster.object_of(attachment_id) == content
        assert set(cluster.bucket.objects()) == cluster.stored_keys()
    assert cluster.bucket.pending_uploads() == []


def test_two_patches_of_one_upload_through_both_nodes_at_once_never_interleave(cluster):
    content = os.urandom(2 * TUS_CHUNK)
    for _ in range(TUS_RACE_ROUNDS):
        path = created_upload(cluster.a, len(content), "contested.bin")

        def patch(node):
            return requests.patch(node.url(path), data=content[:TUS_CHUNK], headers={
                **node.auth, **TUS, "Upload-Offset": "0", "Content-Type": OFFSET_OCTET_STREAM},
                timeout=REQUEST_TIMEOUT)

        responses = race(lambda: patch(cluster.a), lambda: patch(cluster.b))
        # the loser found the upload held (423) or already moved on (409)
        statuses = sorted(response.status_code for response in responses)
        assert statuses in ([204, 409], [204, 423]), [r.text for r in responses]
        assert offset_of(cluster.b.url(path), cluster.b.auth) == TUS_CHUNK
        finished = requests.patch(cluster.b.url(path), data=content[TUS_CHUNK:], headers={
            **cluster.b.auth, **TUS, "Upload-Offset": str(TUS_CHUNK),
            "Content-Type": OFFSET_OCTET_STREAM}, timeout=REQUEST_TIMEOUT)
        assert finished.status_code == 204, finished.text
        attachment_id = attachment_of(finished.headers.get("Link"))
        with cluster.catalog.database.connection_context():
            assert cluster.object_of(attachment_id) == content
