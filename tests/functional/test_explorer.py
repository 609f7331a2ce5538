"""The API explorer at /api/v3/docs: a page that loads Swagger UI from affix itself (the
swagger-ui-bundle package), never from another host, and points it at affix's own OpenAPI
document, under whatever prefix the app is mounted at."""
import hashlib
import re
import shutil
import urllib.parse

import falcon
import falcon.testing
import pytest
from swagger_ui_bundle import swagger_ui_path

from affix.app.http.explorer import EXPLORER_ROUTE, ExplorerSink
from support.errors import NOT_FOUND, assert_error

PAGE = "/api/v3/docs"
METHOD_NOT_ALLOWED = "The requested HTTP method is not allowed for this resource."


def _references(text: str) -> list:
    """The URLs of a page's src and href attributes, or a script's url option."""
    return re.findall(r'(?:src|href)="([^"]+)"|url: "([^"]+)"', text)


def _path_below_mount(page_url: str, reference: str, root_path: str) -> str:
    path = urllib.parse.urljoin(page_url, reference)
    assert path.startswith(root_path + "/api/v3/"), path
    return path.removeprefix(root_path)


@pytest.mark.parametrize("root_path", ["", "/openproject"])
def test_the_page_and_everything_it_loads_are_served_without_a_key(client, root_path):
    page = client.simulate_get(PAGE, root_path=root_path)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    loaded = {}
    for src_or_href, _ in _references(page.text):
        # relative to the page: nothing from another host, the mount prefix kept
        assert not urllib.parse.urlsplit(src_or_href).netloc, src_or_href
        path = _path_below_mount(root_path + PAGE, src_or_href, root_path)
        loaded[path] = client.simulate_get(path, root_path=root_path)
    assert set(loaded) == {"/api/v3/docs/swagger-ui.css", "/api/v3/docs/swagger-ui-bundle.js",
                           "/api/v3/docs/explorer.js", "/api/v3/docs/favicon-32x32.png"}
    for name, content_type in (("swagger-ui.css", "text/css; charset=utf-8"),
                               ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
                               ("favicon-32x32.png", "image/png")):
        answer = loaded[f"/api/v3/docs/{name}"]
        assert (answer.status_code, answer.headers["content-type"]) == (200, content_type)
        assert answer.content == (swagger_ui_path / name).read_bytes()
        assert answer.headers["x-content-type-options"] == "nosniff"

    starter = loaded["/api/v3/docs/explorer.js"]
    assert starter.headers["content-type"] == "text/javascript; charset=utf-8"
    [(_, document_url)] = _references(starter.text)
    document = client.simulate_get(_path_below_mount(root_path + PAGE, document_url, root_path),
                                   root_path=root_path)
    assert document.status_code == 200
    assert document.json["servers"] == [{"url": root_path or "/"}]


def test_a_trailing_slash_is_the_same_page(client):
    slashed, page = client.simulate_get(PAGE + "/"), client.simulate_get(PAGE)

    assert (slashed.status_code, page.status_code) == (200, 200)
    assert slashed.content == page.content


@pytest.mark.parametrize("path", [
    # a file of the package that the page does not load (its own page names another host)
    "/api/v3/docs/index.html",
    "/api/v3/docs/..",
    "/api/v3/docs/swagger-ui.css/more",
    "/api/v3/docsx",
])
def test_nothing_else_is_served(client, path):
    assert_error(client.simulate_get(path), 404, "NotFound", NOT_FOUND)


def test_only_reading_is_allowed(client):
    response = client.simulate_post(PAGE, body=b"x")
    assert_error(response, 405, "NotImplemented", METHOD_NOT_ALLOWED)
    assert response.headers["allow"] == "GET, HEAD"


def test_head_answers_the_headers_of_get(client):
    head = client.simulate_head(PAGE + "/swagger-ui.css")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len((swagger_ui_path / "swagger-ui.css")
                                                     .read_bytes()))


@pytest.mark.parametrize("name", ["", "/swagger-ui-bundle.js", "/explorer.js"])
def test_a_browser_revalidates_what_it_has_and_gets_a_304(client, name):
    first = client.simulate_get(PAGE + name)
    etag = f'"{hashlib.md5(first.content).hexdigest()}"'
    assert (first.status_code, first.headers["etag"], first.headers["cache-control"]) == (
        200, etag, "no-cache")

    again = client.simulate_get(PAGE + name, headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other = client.simulate_get(PAGE + name, headers={"If-None-Match": '"something-else"'})
    assert (other.status_code, other.content) == (200, first.content)


def test_each_file_of_the_bundle_is_read_at_its_first_request_only(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(swagger_ui_path, bundle)
    app = falcon.App()
    app.add_sink(ExplorerSink(bundle), EXPLORER_ROUTE)
    client = falcon.testing.TestClient(app)
    css = (bundle / "swagger-ui.css").read_bytes()

    assert client.simulate_get(PAGE + "/swagger-ui.css").content == css
    (bundle / "swagger-ui.css").write_bytes(b"changed")
    (bundle / "favicon-32x32.png").write_bytes(b"changed before its first request")

    assert client.simulate_get(PAGE + "/swagger-ui.css").content == css
    assert client.simulate_get(PAGE + "/favicon-32x32.png").content == (
        b"changed before its first request")
