"""Reading, downloading and deleting attachments, the user and root resources, and the HAL shape
of routing and internal errors, through falcon.testing."""
import io
import json
import re
import urllib.parse
import zipfile

import falcon.testing
import pytest

from support.bodies import upload_body
from support.client import post, uploaded
from support.content import png_bytes
from support.errors import NO_SUCH_ATTACHMENT, assert_error
from support.state import STORAGE_KEY


def upload(client, people, login="ada", name="cat.png", content=b"hello"):
    """The HAL answer to a successful upload of ``content`` named ``name`` by ``login``."""
    metadata = json.dumps({"fileName": name}).encode()
    response = post(client, people, upload_body(metadata, content), login)
    assert response.status_code == 200
    return response.json


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inside.txt", "hello")
    return buffer.getvalue()


# --- reading an attachment -----------------------------------------------------------------

@pytest.mark.parametrize("login", ["ada", "bob"])
def test_get_answers_what_the_upload_answered(client, people, login):
    uploaded = upload(client, people, login, content=png_bytes())
    response = client.simulate_get(
        f"/api/v3/attachments/{uploaded['id']}", headers=people.auth(login)
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json == uploaded


ATTACHMENT_REQUESTS = {
    "get": ("GET", "/api/v3/attachments/{id}"),
    "download": ("GET", "/api/v3/attachments/{id}/download"),
    "content": ("GET", "/api/v3/attachments/{id}/content"),
    "delete": ("DELETE", "/api/v3/attachments/{id}"),
}
# (author, viewer): a containerless attachment is its author's alone, even for an admin
STRANGERS = [("ada", "bob"), ("ada", "eve"), ("bob", "ada")]


@pytest.mark.parametrize("author, viewer", STRANGERS, ids=[f"{a}-by-{v}" for a, v in STRANGERS])
@pytest.mark.parametrize(
    "method, path", ATTACHMENT_REQUESTS.values(), ids=ATTACHMENT_REQUESTS.keys()
)
def test_another_users_attachment_does_not_exist_for_them(
        client, people, stored, author, viewer, method, path):
    attachment_id = upload(client, people, author)["id"]
    before = stored.snapshot()
    response = client.simulate_request(
        method, path.format(id=attachment_id), headers=people.auth(viewer)
    )
    assert_error(response, 404, "NotFound", NO_SUCH_ATTACHMENT)
    assert stored.snapshot() == before


# past 32 bits, the largest 64-bit id, and past it: 404 on every database, never 500
@pytest.mark.parametrize("missing_id", [999, 0, 2**31, 2**63 - 1, 2**63, 10**30])
@pytest.mark.parametrize(
    "method, path", ATTACHMENT_REQUESTS.values(), ids=ATTACHMENT_REQUESTS.keys()
)
def test_a_nonexistent_attachment_is_not_found(
        client, people, stored, method, path, missing_id):
    upload(client, people)
    before = stored.snapshot()
    response = client.simulate_request(
        method, path.format(id=missing_id), headers=people.auth("ada")
    )
    assert_error(response, 404, "NotFound", NO_SUCH_ATTACHMENT)
    assert stored.snapshot() == before


def test_the_author_deletes_row_and_blob_and_nothing_else(client, people, stored):
    upload(client, people, "ada", "first.txt", b"first")
    doomed = upload(client, people, "ada", "doomed.txt", b"doomed")
    upload(client, people, "bob", "bobs.txt", b"bob's")
    rows, files = stored.snapshot()
    (doomed_row,) = [row for row in rows if row[0] == doomed["id"]]

    response = client.simulate_delete(
        f"/api/v3/attachments/{doomed['id']}", headers=people.auth("ada")
    )

    assert response.status_code == 204
    assert response.content == b""
    doomed_key = doomed_row[4]
    assert stored.snapshot() == (
        [row for row in rows if row != doomed_row],
        {key: data for key, data in files.items() if key != doomed_key},
    )
    gone = client.simulate_get(f"/api/v3/attachments/{doomed['id']}", headers=people.auth("ada"))
    assert_error(gone, 404, "NotFound", NO_SUCH_ATTACHMENT)


def test_the_id_of_a_deleted_attachment_is_never_given_to_another(client, people):
    # the load test of system/test_robustness.py found SQLite handing it to the next upload
    first = uploaded(client, people, "bob", content=b"first")
    second = uploaded(client, people, "bob", content=b"second")
    deleted = client.simulate_delete(f"/api/v3/attachments/{second}", headers=people.auth("bob"))
    assert deleted.status_code == 204

    third = uploaded(client, people, "bob", content=b"third")

    assert third not in (first, second)
    # a link kept to the deleted attachment leads nowhere, never to another file
    gone = client.simulate_get(f"/api/v3/attachments/{second}/download",
                               headers=people.auth("bob"))
    assert gone.status_code == 404


# --- downloads -----------------------------------------------------------------------------

SVG = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(1)</script><rect width="10" height="10"/></svg>\n')
# content, its name, what libmagic calls it (the HAL contentType), the Content-Type it is
# served with, and whether it is shown inline
DOWNLOADS = {
    "png": (png_bytes(), "cat.png", "image/png", "image/png", True),
    "ascii text": (b"hello world\n", "hello.txt", "text/plain",
                   "text/plain; charset=us-ascii", True),
    "utf-8 text": ("Grüße aus Köln ✓\n".encode(), "gruss.txt", "text/plain",
                   "text/plain; charset=utf-8", True),
    # HTML is only ever shown as its source
    "html": (b"<html><body><script>alert(1)</script></body></html>", "evil.html", "text/html",
             "text/plain; charset=us-ascii", True),
    # SVG runs scripts when rendered: it is never inline
    "svg": (SVG, "evil.svg", "image/svg+xml", "application/octet-stream", False),
    "zip": (zip_bytes(), "archive.zip", "application/zip", "application/octet-stream", False),
    "binary": (bytes(range(256)) * 4, "data.bin", "image/x-tga", "application/octet-stream",
               False),
}


@pytest.mark.parametrize("link", ["download", "content"])
@pytest.mark.parametrize(
    "content, name, sniffed, served, inline", DOWNLOADS.values(), ids=DOWNLOADS.keys()
)
def test_download_serves_the_exact_bytes_with_a_safe_type(
        client, people, link, content, name, sniffed, served, inline):
    uploaded = upload(client, people, name=name, content=content)
    assert uploaded["contentType"] == sniffed

    response = client.simulate_get(
        f"/api/v3/attachments/{uploaded['id']}/{link}", headers=people.auth("ada")
    )

    assert response.status_code == 200
    disposition = "inline" if inline else "attachment"
    assert response.headers["Content-Type"] == served
    assert response.headers["Content-Disposition"] == (
        f"{disposition}; filename=\"{name}\"; filename*=UTF-8''{name}"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Length"] == str(len(content))
    assert response.content == content


def test_an_empty_file_downloads_as_zero_bytes(client, people):
    uploaded = upload(client, people, name="empty", content=b"")
    response = client.simulate_get(
        f"/api/v3/attachments/{uploaded['id']}/download", headers=people.auth("ada")
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == "0"
    assert response.content == b""


def raw_headers(app, path, headers):
    """Every header line of a GET exactly as the app hands it to the server, duplicates
    included (falcon.testing's Result folds them into a dict)."""
    start_response = falcon.testing.StartResponseMock()
    body = app(falcon.testing.create_environ(path=path, headers=headers), start_response)
    try:
        b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return start_response.headers


# name sent, and the ASCII fallback expected in filename="…"
FILE_NAMES = {
    "path traversal": ("../../etc/passwd", "../../etc/passwd"),
    "header injection": ("a\r\nX-Injected: 1.txt", "a__X-Injected: 1.txt"),
    "control characters": ("a\x01b\x7f.txt", "a_b_.txt"),
    "quotes and backslash": ('say "hi" \\ bye.txt', "say _hi_ _ bye.txt"),
    "unicode": ("Ünïcødé ✓.txt", "_n_c_d_ _.txt"),
    "1000 characters": ("n" * 996 + ".txt", "n" * 996 + ".txt"),
}
# RFC 8187 attr-char plus the percent sign of its escapes
EXT_VALUE = re.compile(r"[A-Za-z0-9!#$&+.^_`|~%-]*")


@pytest.mark.parametrize("name, ascii_name", FILE_NAMES.values(), ids=FILE_NAMES.keys())
def test_file_names_are_kept_as_data_and_served_in_one_safe_header(
        app, client, people, stored, name, ascii_name):
    uploaded = upload(client, people, name=name, content=b"data\n")

    assert uploaded["fileName"] == name
    ((_, stored_name, _, _, key),) = stored.rows()
    assert stored_name == name
    assert STORAGE_KEY.fullmatch(key)
    assert list(stored.files()) == [key]

    headers = raw_headers(
        app, f"/api/v3/attachments/{uploaded['id']}/download", people.auth("ada")
    )
    dispositions = [value for header, value in headers if header == "content-disposition"]
    assert len(dispositions) == 1
    assert not any(control in value for _, value in headers for control in "\r\n\x00")
    match = re.fullmatch(r"inline; filename=\"([^\"]*)\"; filename\*=UTF-8''(.*)",
                         dispositions[0])
    assert match is not None, dispositions[0]
    assert match[1] == ascii_name
    assert EXT_VALUE.fullmatch(match[2])
    assert urllib.parse.unquote(match[2], errors="strict") == name


# --- byte ranges ---------------------------------------------------------------------------

DIGITS = b"0123456789"
# Range header, status, Content-Range, the body's bytes
RANGES = {
    "first five": ("bytes=0-4", 206, "bytes 0-4/10", DIGITS[0:5]),
    "suffix": ("bytes=-3", 206, "bytes 7-9/10", DIGITS[7:]),
    "open end": ("bytes=5-", 206, "bytes 5-9/10", DIGITS[5:]),
    "last byte beyond the end": ("bytes=8-100", 206, "bytes 8-9/10", DIGITS[8:]),
    "suffix longer than the file": ("bytes=-100", 206, "bytes 0-9/10", DIGITS),
    "several ranges": ("bytes=0-1,3-4", 200, None, DIGITS),
    "last before first": ("bytes=5-3", 200, None, DIGITS),
    # both past the end, as positions of more digits than the size has
    "last before first, both past the end": ("bytes=150-120", 200, None, DIGITS),
    "last before first, in leading zeros": ("bytes=0150-00120", 200, None, DIGITS),
    "unknown unit": ("items=0-4", 200, None, DIGITS),
}


@pytest.fixture
def digits(client, people):
    """The download path of an attachment holding the ten ASCII digits."""
    uploaded = upload(client, people, name="digits.txt", content=DIGITS)
    return f"/api/v3/attachments/{uploaded['id']}/download"


@pytest.mark.parametrize(
    "range_header, status, content_range, content", RANGES.values(), ids=RANGES.keys()
)
def test_range_requests(client, people, digits, range_header, status, content_range, content):
    response = client.simulate_get(digits, headers={**people.auth("ada"), "Range": range_header})
    assert response.status_code == status
    assert response.headers.get("Content-Range") == content_range
    assert response.headers["Content-Length"] == str(len(content))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.content == content


UNSATISFIABLE = ["bytes=10-", "bytes=99-100", "bytes=-0"]


@pytest.mark.parametrize("range_header", UNSATISFIABLE)
def test_a_range_past_the_end_is_416(client, people, digits, range_header):
    response = client.simulate_get(digits, headers={**people.auth("ada"), "Range": range_header})
    assert_error(response, 416, "InvalidRequestBody", "The requested range cannot be satisfied.")
    assert response.headers["Content-Range"] == "bytes */10"


def test_a_416_error_does_not_carry_the_files_headers(client, people, digits):
    # the error body is HAL JSON: labelling it as the file (inline, named digits.txt) would make
    # a browser save or show the JSON as if it were the attachment
    response = client.simulate_get(digits, headers={**people.auth("ada"), "Range": "bytes=10-"})
    assert response.status_code == 416
    assert "Content-Disposition" not in response.headers


# --- users and root ------------------------------------------------------------------------

def user_body(user_id, name, *, admin=False, status="active", login=None):
    body = {
        "_type": "User", "id": user_id, "name": name, "admin": admin, "status": status,
        "_links": {"self": {"href": f"/api/v3/users/{user_id}", "title": name}},
    }
    if login is not None:
        body["login"] = login
    return body


# viewer, user id, the expected body: the login is shown to the user and to admins only
USER_VIEWS = {
    "admin views bob": ("ada", 2, user_body(2, "Bob Builder", login="bob")),
    "bob views himself": ("bob", 2, user_body(2, "Bob Builder", login="bob")),
    "bob views the admin": ("bob", 1, user_body(1, "Ada Admin", admin=True)),
    "eve views bob": ("eve", 2, user_body(2, "Bob Builder")),
    "admin views a locked user": (
        "ada", 4, user_body(4, "Lou", status="locked", login="lou")),
}


@pytest.mark.parametrize("viewer, user_id, expected", USER_VIEWS.values(), ids=USER_VIEWS.keys())
def test_user_resource(client, people, viewer, user_id, expected):
    people.add("lou", locked=True)
    response = client.simulate_get(f"/api/v3/users/{user_id}", headers=people.auth(viewer))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json == expected


def test_unknown_user_is_not_found(client, people):
    response = client.simulate_get("/api/v3/users/999", headers=people.auth("ada"))
    assert_error(response, 404, "NotFound", "The specified user does not exist.")


def test_root_links_to_attachments_and_the_caller(client, people):
    response = client.simulate_get("/api/v3", headers=people.auth("bob"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json == {
        "_type": "Root", "instanceName": "affix",
        "_links": {
            "self": {"href": "/api/v3"},
            "attachments": {"href": "/api/v3/attachments"},
            "configuration": {"href": "/api/v3/configuration"},
            "projects": {"href": "/api/v3/projects"},
            "workPackages": {"href": "/api/v3/work_packages"},
            "types": {"href": "/api/v3/types"},
            "statuses": {"href": "/api/v3/statuses"},
            "priorities": {"href": "/api/v3/priorities"},
            "user": {"href": "/api/v3/users/2", "title": "Bob Builder"},
        },
    }


# --- errors outside the resources ------------------------------------------------------------

@pytest.mark.parametrize("path", ["/nowhere", "/api/v3/nothing", "/api/v3/attachments/abc"])
def test_an_unknown_route_is_a_hal_404_whatever_the_client_accepts(client, people, path):
    response = client.simulate_get(path, headers={**people.auth("ada"), "Accept": "text/html"})
    assert_error(response, 404, "NotFound", "The requested resource could not be found.")


def test_a_wrong_method_is_a_hal_405(client, people):
    response = client.simulate_put("/api/v3/attachments", headers=people.auth("ada"))
    assert_error(response, 405, "NotImplemented",
                 "The requested HTTP method is not allowed for this resource.")
    assert sorted(method.strip() for method in response.headers["Allow"].split(",")) == [
        "OPTIONS", "POST"
    ]


@pytest.mark.on_cue("attachments")
def test_an_unexpected_exception_is_a_bare_hal_500(client, people, services):
    secret = "secret detail from /srv/affix/internals.py"

    def explode(*args, **kwargs):
        raise RuntimeError(secret)

    services.attachments.replace("find_visible", explode)
    response = client.simulate_get("/api/v3/attachments/1", headers=people.auth("ada"))
    assert_error(response, 500, "InternalServerError", "An internal error has occurred.")
    assert secret not in response.text
    assert "Traceback" not in response.text
