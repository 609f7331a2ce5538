"""The guides' client examples against a real ``affix serve``, run as a user runs them: the
API guide's curl commands (docs/examples/api/), the tuspy and curl scripts of the
resumable-uploads guide (docs/examples/tus/), and the curl steps of the direct-uploads guide
(docs/examples/direct-uploads/direct-upload.sh) against moto's S3 server.

The guides' server is on port 8000, which a test run beside others cannot count on: a shell
function ``curl`` sends the curl steps to the test's server instead."""
import base64
import json
import shutil
import subprocess
import sys

import pytest

import requests

from support.content import MiB, md5, png_bytes, random_bytes
from support.net import HOST
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix
from support.s3 import s3_environ
from support.servers import running_server
from support.state import containers, work_packages

EXAMPLES = REPO_ROOT / "docs" / "examples"
TUSPY_UPLOAD = EXAMPLES / "tus" / "tuspy_upload.py"
DIRECT_UPLOAD = EXAMPLES / "direct-uploads" / "direct-upload.sh"
CURL_TUS_UPLOAD = EXAMPLES / "tus" / "curl-upload.sh"
API_STEPS = EXAMPLES / "api"
# the server the guides' steps name
GUIDE_SERVER = "localhost:8000"
PAGES_SERVER = "127.0.0.1:8000"
TUS = {"Tus-Resumable": "1.0.0"}
# affix's default AFFIX_MAX_ATTACHMENT_SIZE, which the guide's file stays under
DEFAULT_LIMIT = 5 * MiB


def run_steps(script, guide_server, port, folder, text=True, **environ):
    """A guide's shell steps, sourced by bash in ``folder``, their curl sent to ``port``."""
    steps = (f"curl() {{ command curl \"${{@//{guide_server}/{HOST}:{port}}}\"; }}\n"
             f". {script}\n")
    return subprocess.run(["bash", "-c", steps], cwd=folder, env=environ_without_affix(**environ),
                          capture_output=True, text=text, timeout=COMMAND_TIMEOUT)


def json_documents(text) -> list:
    """The JSON answers of curl commands run one after the other, printed back to back."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while at < len(text):
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
    return documents


@pytest.mark.sqlite_only("the page's commands are the point; the functional tests run each route "
                         "on both databases")
def test_the_api_guide_s_commands_upload_read_claim_and_list(server, tmp_path):
    picture = png_bytes(40, 40)
    (tmp_path / "cat.png").write_bytes(picture)
    catalog = server.stored.catalog
    with catalog.database.connection_context():
        catalog.Project.create(identifier="demo", name="Demo")

    def run(step, text=True):
        finished = run_steps(API_STEPS / step, PAGES_SERVER, server.port, tmp_path, text=text,
                             KEY=server.api_key)
        assert (finished.returncode, finished.stderr) == (0, "" if text else b"")
        return finished.stdout

    [uploaded] = json_documents(run("upload.sh"))
    read = run("read.sh", text=False)
    # what read.sh asked for: the attachment, its first 100 bytes (below), its author
    answers = [requests.get(server.url(path), headers=server.auth, timeout=COMMAND_TIMEOUT)
               for path in ("/api/v3/attachments/1", "/api/v3/users/1")]
    created, noted, changed = json_documents(run("claim.sh"))
    [listed] = json_documents(run("list.sh"))

    assert (uploaded["id"], uploaded["fileName"], uploaded["contentType"],
            uploaded["description"]["raw"], uploaded["digest"]["hash"]) == (
        1, "cat.png", "image/png", "A cute cat", md5(picture))
    assert read == answers[0].content + picture[:100] + answers[1].content
    assert (tmp_path / "copy.png").read_bytes() == picture
    assert (created["id"], created["subject"], noted["id"], changed["id"],
            changed["lockVersion"]) == (1, "Fix the cat", 2, 1, 1)
    assert (listed["total"], [element["id"] for element in listed["_embedded"]["elements"]]) == (
        1, [1])
    assert containers(catalog) == {1: ("WorkPackage", 1), 2: ("WorkPackage", 1)}
    assert work_packages(catalog) == [(1, "Fix the cat", 1, 1)]


@pytest.mark.sqlite_only("the example's client is the point; test_tus_server.py runs tuspy on "
                         "both databases")
def test_the_tuspy_script_uploads_in_pieces_and_prints_the_attachment_s_link(server, tmp_path):
    # three pieces of the script's 4 MiB, the last a short one
    content = random_bytes(9 * MiB, seed=27)
    path = tmp_path / "talk.mp4"
    path.write_bytes(content)

    finished = subprocess.run(
        [sys.executable, str(TUSPY_UPLOAD), server.url(""), str(path), "The keynote"],
        env=environ_without_affix(AFFIX_API_KEY=server.api_key), capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT)

    assert (finished.returncode, finished.stderr) == (0, "")
    assert finished.stdout == '</api/v3/attachments/1>; rel="attachment"\n'
    [(attachment_id, name, size, digest, key)] = server.stored.rows()
    assert (attachment_id, name, size, digest) == (1, "talk.mp4", len(content), md5(content))
    assert server.stored.files() == {key: content}


@pytest.mark.sqlite_only("the example's steps are the point; test_direct_uploads.py runs the flow "
                         "on both databases")
def test_the_direct_upload_steps_store_the_file_under_the_default_limit(
        tmp_path, databases, s3_bucket):
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (apt-get install jq; .ci/run does)")
    content = random_bytes(4 * MiB, seed=28)
    folder = tmp_path / "steps"
    folder.mkdir()
    (folder / "talk.mp4").write_bytes(content)
    environ = {**s3_environ(s3_bucket.endpoint_url), "AFFIX_STORAGE_URL": s3_bucket.url()}

    with running_server(tmp_path, databases, DEFAULT_LIMIT, environ) as server:
        finished = run_steps(DIRECT_UPLOAD, GUIDE_SERVER, server.port, folder,
                             KEY=server.api_key)
        rows = server.stored.rows()

    assert (finished.returncode, finished.stderr) == (0, "")
    attachment = json.loads(finished.stdout)
    assert (attachment["_type"], attachment["id"], attachment["fileName"],
            attachment["fileSize"], attachment["digest"]["hash"]) == (
        "Attachment", 1, "talk.mp4", len(content), md5(content))
    [(attachment_id, name, size, digest, key)] = rows
    assert (attachment_id, name, size, digest) == (1, "talk.mp4", len(content), md5(content))
    # the staged object is gone once the upload is complete: only the attachment's own is left
    assert s3_bucket.objects() == {f"blobs/{key}": content}
    assert s3_bucket.pending_uploads() == []


@pytest.mark.sqlite_only("the example's steps are the point; test_tus_server.py runs tus on both "
                         "databases")
def test_the_curl_tus_script_uploads_a_file_and_goes_on_after_an_interruption(server, tmp_path):
    fresh, interrupted = tmp_path / "fresh", tmp_path / "interrupted"
    contents = {fresh: random_bytes(MiB, seed=29), interrupted: random_bytes(MiB + 3, seed=30)}
    for folder, content in contents.items():
        folder.mkdir()
        (folder / "talk.mp4").write_bytes(content)
    # the interrupted one: created, and its first half sent, by another client
    metadata = base64.b64encode(b"talk.mp4").decode()
    created = requests.post(server.url("/api/v3/attachments/tus"), headers={
        **server.auth, **TUS, "Upload-Length": str(len(contents[interrupted])),
        "Upload-Metadata": f"filename {metadata}"}, timeout=COMMAND_TIMEOUT)
    assert created.status_code == 201
    half = len(contents[interrupted]) // 2
    sent = requests.patch(server.url(created.headers["Location"]), headers={
        **server.auth, **TUS, "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"},
        data=contents[interrupted][:half], timeout=COMMAND_TIMEOUT)
    assert (sent.status_code, sent.headers["Upload-Offset"]) == (204, str(half))
    (interrupted / "talk.mp4.upload").write_text(created.headers["Location"] + "\n")

    runs = [run_steps(CURL_TUS_UPLOAD, PAGES_SERVER, server.port, folder,
                      AFFIX_API_KEY=server.api_key) for folder in (fresh, interrupted)]

    # a resumed run that sent from 0 would meet 409 and print nothing; header names come in
    # lower case, which HTTP allows
    assert [(run.returncode, run.stderr, run.stdout) for run in runs] == [
        (0, "", f'link: </api/v3/attachments/{attachment_id}>; rel="attachment"\n')
        for attachment_id in (1, 2)]
    rows = server.stored.rows()
    assert [(attachment_id, name, size, digest)
            for attachment_id, name, size, digest, _ in rows] == [
        (1, "talk.mp4", len(contents[fresh]), md5(contents[fresh])),
        (2, "talk.mp4", len(contents[interrupted]), md5(contents[interrupted]))]
    assert server.stored.files() == {
        key: content for (*_, key), content in zip(rows, contents.values())}
