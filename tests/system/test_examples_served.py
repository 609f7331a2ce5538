"""The guides' client examples against a real ``affix serve``, run as a user runs them: the
tuspy script of the resumable-uploads guide (docs/examples/tus/tuspy_upload.py)."""
import subprocess
import sys

import pytest

from support.content import MiB, md5, random_bytes
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix

TUSPY_UPLOAD = REPO_ROOT / "docs" / "examples" / "tus" / "tuspy_upload.py"


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
