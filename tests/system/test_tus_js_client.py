"""tus-js-client (from npm, installed in tests/js by `npm ci`), the tus client of Uppy and of
most web front ends, against a real ``affix serve``: four partial uploads in parallel joined by
a final one (concatenation), and a stream of unknown length (creation-defer-length), in node
and in headless Chromium on another origin. The attachment's bytes, digest and sniffed type
are checked, and that no partial upload is left behind. SQLite alone: the database is not the
point."""
import base64
import json
import subprocess
from pathlib import Path

import pytest
import requests

from support.browser import headless_chromium
from support.content import MiB, md5, png_bytes, random_bytes
from support.net import REQUEST_TIMEOUT
from support.pages import NODE_MODULES, serving_pages
from support.servers import HIGH_LIMIT, running_server
from support.tus import TUS_PATH, attachment_of, concat_states

pytestmark = [pytest.mark.system, pytest.mark.one_database("the client is the point")]

TUS_JS = Path(__file__).parent.parent / "js"
BROWSER_BUNDLE = NODE_MODULES / "tus-js-client" / "dist" / "tus.min.js"
# a PNG's head, then more than four parts' worth of bytes: the type is sniffed from the
# joined file's first bytes, which the first partial upload alone carries
CONTENT = png_bytes(8, 8) + random_bytes(3 * MiB + 5, seed=29)
FILE_NAME = "plan.png"
WAYS = {
    "parallel": {"parallelUploads": 4},
    "deferred": {"uploadLengthDeferred": True, "chunkSize": MiB},
}


def assert_attachment(server, outcome):
    """The upload that ended in ``outcome`` is an attachment of CONTENT, and no upload but
    joined partial ones and the finished one is left."""
    attachment_id = attachment_of(outcome["link"])
    document = requests.get(server.url(f"/api/v3/attachments/{attachment_id}"),
                            headers=server.auth, timeout=REQUEST_TIMEOUT).json()
    assert (document["fileName"], document["fileSize"], document["contentType"],
            document["digest"]["hash"]) == (FILE_NAME, len(CONTENT), "image/png", md5(CONTENT))
    downloaded = requests.get(server.url(f"/api/v3/attachments/{attachment_id}/download"),
                              headers=server.auth, timeout=REQUEST_TIMEOUT)
    assert md5(downloaded.content) == md5(CONTENT)
    assert [path for path in server.stored.files() if path.startswith(".tus/")] == []
    return concat_states(server.stored.catalog)


def assert_uploaded_as(states, way):
    if way == "parallel":
        *partials, final = states
        assert [row[1:] for row in partials] == [("partial", final[0], False)] * 4
        assert final[1].startswith("final;") and final[2:] == (None, False)
    else:
        assert [row[1:] for row in states] == [(None, None, False)]


def test_tus_js_client_in_node(tmp_path, databases):
    file = tmp_path / FILE_NAME
    file.write_bytes(CONTENT)
    with running_server(tmp_path, databases, HIGH_LIMIT) as server:
        for way in WAYS:
            before = len(concat_states(server.stored.catalog))
            finished = subprocess.run(
                ["node", "tus_upload.js", server.url(TUS_PATH), server.api_key, str(file), way],
                cwd=TUS_JS, capture_output=True, text=True, timeout=120)
            assert finished.returncode == 0, finished.stderr
            outcome = json.loads(finished.stdout)
            assert outcome["url"].startswith(server.url(f"{TUS_PATH}/"))
            assert_uploaded_as(assert_attachment(server, outcome)[before:], way)


def test_tus_js_client_in_chromium(tmp_path, databases):
    with serving_pages({"tus.min.js": BROWSER_BUNDLE}) as page_origin, \
            running_server(tmp_path, databases, HIGH_LIMIT,
                           {"AFFIX_CORS_ORIGINS": page_origin}) as server, \
            headless_chromium(tmp_path / "chromium") as browser:
        browser.get(f"{page_origin}/tus.html")
        content = base64.b64encode(CONTENT).decode()
        for way, options in WAYS.items():
            before = len(concat_states(server.stored.catalog))
            outcome = browser.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "tusUpload(...Array.from(arguments).slice(0, -1)).then(done);",
                server.url(TUS_PATH), server.api_key, FILE_NAME, content, options)
            assert "failed" not in outcome, outcome
            assert_uploaded_as(assert_attachment(server, outcome)[before:], way)
