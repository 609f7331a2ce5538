"""A real browser on another origin: headless Chromium loads a page from a static server on one
loopback port and calls a real affix on another, as a browser client of affix would. affix
allows the page's origin; the same page served from a second origin is refused by the browser."""
import base64
import datetime
import email.utils
import hashlib

import pytest

from support.browser import headless_chromium
from support.pages import serving_pages
from support.servers import HIGH_LIMIT, running_server

pytestmark = pytest.mark.system

# every byte value, so that nothing on the way may treat the file as text
CONTENT = bytes(range(256)) * 64
FILE_NAME = "from-a-page.bin"
BLOCKED = {"failed": "TypeError: Failed to fetch"}


def call(browser, function, *arguments):
    """What the page's async ``function`` resolves to, or BLOCKED's shape when its fetch
    failed."""
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"outcome({function}(...Array.from(arguments).slice(0, -1))).then(done);",
        *arguments)


def http_date(timestamp):
    """An attachment's ``createdAt`` as an HTTP date."""
    moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return email.utils.format_datetime(moment, usegmt=True)


def test_a_page_on_an_allowed_origin_uploads_and_downloads_and_another_origin_cannot(
        tmp_path, databases):
    with serving_pages() as page_origin, serving_pages() as other_origin, \
            running_server(tmp_path, databases, HIGH_LIMIT,
                           {"AFFIX_CORS_ORIGINS": page_origin}) as server, \
            headless_chromium(tmp_path / "chromium") as browser:
        affix = server.url("")
        browser.get(f"{page_origin}/attachments.html")

        uploaded = call(browser, "upload", affix, server.api_key, FILE_NAME,
                        base64.b64encode(CONTENT).decode())
        assert uploaded["status"] == 200, uploaded
        attachment = uploaded["body"]
        assert (attachment["fileName"], attachment["fileSize"], attachment["digest"]["hash"]) \
            == (FILE_NAME, len(CONTENT), hashlib.md5(CONTENT).hexdigest())
        [(attachment_id, file_name, size, md5, storage_key)] = server.stored.rows()
        assert (attachment_id, file_name, size, md5) == (
            attachment["id"], FILE_NAME, len(CONTENT), hashlib.md5(CONTENT).hexdigest())
        assert server.stored.files() == {storage_key: CONTENT}
        after_upload = server.stored.snapshot()

        downloaded = call(browser, "download", affix, server.api_key,
                          attachment["_links"]["downloadLocation"]["href"])
        # the page reads these headers only because affix exposes them
        assert {name: value for name, value in downloaded.items()
                if name != "contentBase64"} == {
            "status": 200,
            "contentDisposition":
                f"attachment; filename=\"{FILE_NAME}\"; filename*=UTF-8''{FILE_NAME}",
            "etag": f'"{hashlib.md5(CONTENT).hexdigest()}"',
            "lastModified": http_date(attachment["createdAt"]),
        }
        assert base64.b64decode(downloaded["contentBase64"]) == CONTENT

        # a refusal reaches the page as affix's own error, not as a failed fetch
        refused = call(browser, "upload", affix, "not-a-key", FILE_NAME, "AAAA")
        assert refused == {"status": 401, "body": {
            "_type": "Error",
            "errorIdentifier": "urn:openproject-org:api:v3:errors:Unauthenticated",
            "message": "You did not provide the correct credentials."}}

        browser.get(f"{other_origin}/attachments.html")

        # a request with a key needs a preflight, which is refused: the request itself is
        # never sent
        assert call(browser, "upload", affix, server.api_key, FILE_NAME,
                    base64.b64encode(CONTENT).decode()) == BLOCKED
        assert call(browser, "download", affix, server.api_key,
                    attachment["_links"]["downloadLocation"]["href"]) == BLOCKED
        # a request without one is answered, but without CORS headers: the browser keeps the
        # answer from the page
        assert call(browser, "health", affix) == BLOCKED
        assert server.stored.snapshot() == after_upload

        browser.get(f"{page_origin}/attachments.html")
        assert call(browser, "health", affix) == {"status": 200, "body": {"status": "ok"}}
