"""The guides' client examples against a real ``affix serve``, run as a user runs them: the
tuspy script of the resumable-uploads guide (docs/examples/tus/tuspy_upload.py), and the curl
steps of the direct-uploads guide (docs/examples/direct-uploads/direct-upload.sh) against moto's
S3 server."""
import json
import shutil
import subprocess
import sys

import pytest

from support.content import MiB, md5, random_bytes
from support.net import HOST
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix
from support.s3 import s3_environ
from support.servers import running_server

EXAMPLES = REPO_ROOT / "docs" / "examples"
TUSPY_UPLOAD = EXAMPLES / "tus" / "tuspy_upload.py"
DIRECT_UPLOAD = EXAMPLES / "direct-uploads" / "direct-upload.sh"
# the server the guide's steps name
GUIDE_SERVER = "localhost:8000"
# affix's default AFFIX_MAX_ATTACHMENT_SIZE, which the guide's file stays under
DEFAULT_LIMIT = 5 * MiB


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
        # the guide's server is on port 8000, which a test run beside others cannot count on
        steps = (f"curl() {{ command curl \"${{@//{GUIDE_SERVER}/{HOST}:{server.port}}}\"; }}\n"
                 f". {DIRECT_UPLOAD}\n")
        finished = subprocess.run(["bash", "-c", steps], cwd=folder,
                                  env=environ_without_affix(KEY=server.api_key),
                                  capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
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
