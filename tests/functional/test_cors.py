"""Cross-origin requests: AFFIX_CORS_ORIGINS names the origins whose pages may call affix;
preflights are answered without a key, answers to an allowed origin expose what a client reads,
and nothing ever allows credentials mode. (A real browser: tests/system/test_cors_browser.py.)"""
import dataclasses
import hashlib
import re

import falcon.testing
import pytest

from affix import create_app
from affix.app.settings import Settings, SettingsError
from support.bodies import upload_body
from support.client import post
from support.defaults import FROZEN_NOW
from support.errors import NOT_FOUND, UNAUTHENTICATED, assert_error, assert_unauthenticated

PAGE = "https://app.example"
OTHER_PAGE = "https://elsewhere.example"
METHODS = "GET, HEAD, POST, PATCH, DELETE"
REQUEST_HEADERS = (
    "Authorization, Content-Type, X-Requested-With, If-None-Match, If-Modified-Since, "
    "If-Range, Range, Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, "
    "Upload-Checksum, Upload-Concat, Upload-Defer-Length, X-HTTP-Method-Override, "
    # the operating guide invites a client to send its own request id
    "X-Request-Id")
EXPOSED = (
    "Content-Disposition, Content-Range, Accept-Ranges, Location, ETag, Last-Modified, "
    "X-Request-Id, "
    "Upload-Offset, Upload-Length, Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, "
    "Tus-Max-Size, Tus-Checksum-Algorithm, Link, Upload-Concat, Upload-Defer-Length")
NOT_ALLOWED = "Cross-origin requests from this origin are not allowed."
# what an answer to PAGE carries, besides what the route itself says
ANSWER_TO_PAGE = {"access-control-allow-origin": PAGE,
                  "access-control-expose-headers": EXPOSED, "vary": "Origin"}


def cors_headers(response) -> dict:
    """The response's CORS headers and Vary, by lower-case name."""
    return {name: value for name, value in response.headers.items()
            if name.startswith("access-control-") or name == "vary"}


def preflight(client, origin, path="/api/v3/attachments", method="POST"):
    return client.simulate_options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type"})


def client_allowing(settings, plugin_manager, origins):
    return falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, cors_origins=origins), plugin_manager=plugin_manager,
        clock=lambda: FROZEN_NOW))


@pytest.fixture
def app(settings, plugin_manager):
    """conftest's app, allowing pages from PAGE."""
    return create_app(dataclasses.replace(settings, cors_origins=(PAGE,)),
                      plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW)


# --- the setting ------------------------------------------------------------------------------

def test_no_origin_is_allowed_by_default():
    assert Settings.from_environ({}).cors_origins == ()
    assert Settings.from_environ({"AFFIX_CORS_ORIGINS": " "}).cors_origins == ()


def test_origins_are_read_lower_cased_from_a_comma_or_space_separated_list():
    settings = Settings.from_environ({"AFFIX_CORS_ORIGINS": (
        "https://App.Example, http://localhost:3000  http://127.0.0.1:8080,https://[::1]:8443")})

    assert settings.cors_origins == (
        "https://app.example", "http://localhost:3000", "http://127.0.0.1:8080",
        "https://[::1]:8443")


def test_a_wildcard_alone_allows_every_origin():
    assert Settings.from_environ({"AFFIX_CORS_ORIGINS": "*"}).cors_origins == ("*",)


NOT_AN_ORIGIN = ("is not an origin: scheme://host[:port] with http or https, no path, not even "
                 "a trailing /")
UNSENT_PORT = ("has a port a browser never sends: leave out the default port, and a port is at "
               "most 65535")


@pytest.mark.parametrize("value, problem", [
    ("https://app.example/", f"'https://app.example/' {NOT_AN_ORIGIN}"),
    ("https://app.example/api", f"'https://app.example/api' {NOT_AN_ORIGIN}"),
    ("app.example", f"'app.example' {NOT_AN_ORIGIN}"),
    ("ftp://app.example", f"'ftp://app.example' {NOT_AN_ORIGIN}"),
    ("https://ada@app.example", f"'https://ada@app.example' {NOT_AN_ORIGIN}"),
    ("https://*.app.example", f"'https://*.app.example' {NOT_AN_ORIGIN}"),
    # sandboxed frames and file:// pages send "null": allowing it would allow all of them
    ("null", f"'null' {NOT_AN_ORIGIN}"),
    ("https://app.example, http://app.example:80", f"'http://app.example:80' {UNSENT_PORT}"),
    ("https://app.example:443", f"'https://app.example:443' {UNSENT_PORT}"),
    ("https://app.example:65536", f"'https://app.example:65536' {UNSENT_PORT}"),
    ("*, https://app.example", "'*' allows every origin: it stands alone, not in a list"),
])
def test_a_value_no_browser_sends_as_its_origin_is_refused(value, problem):
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({"AFFIX_CORS_ORIGINS": value})

    assert str(refused.value) == f"AFFIX_CORS_ORIGINS: {problem}"


# --- preflights -------------------------------------------------------------------------------

def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key(client):
    response = preflight(client, PAGE)

    assert (response.status_code, response.content) == (204, b"")
    headers = dict(response.headers)
    # every answer carries its request's id (the access log's), preflights too
    assert re.fullmatch("[0-9a-f]{32}", headers.pop("x-request-id"))
    assert headers == {
        "access-control-allow-origin": PAGE,
        "access-control-allow-methods": METHODS,
        "access-control-allow-headers": REQUEST_HEADERS,
        "access-control-max-age": "7200",
        "access-control-expose-headers": EXPOSED,
        "vary": "Origin",
    }


@pytest.mark.on_cue("catalog")
def test_a_preflight_asks_nothing_of_the_database(client, services):
    def refuse(*args, **kwargs):
        raise AssertionError("a preflight asked the database for a connection")

    services.catalog.database.replace("connect", refuse)

    assert preflight(client, PAGE).status_code == 204
    assert_error(preflight(client, OTHER_PAGE), 403, "MissingPermission", NOT_ALLOWED)


def test_a_preflight_of_a_method_the_route_lacks_is_answered_and_the_request_gets_its_405(
        client, people):
    """The page then reads affix's own error instead of an opaque failed preflight."""
    assert preflight(client, PAGE, path="/api/v3", method="DELETE").status_code == 204

    response = client.simulate_delete("/api/v3", headers={**people.auth("ada"), "Origin": PAGE})

    assert_error(response, 405, "NotImplemented",
                 "The requested HTTP method is not allowed for this resource.")
    assert cors_headers(response) == ANSWER_TO_PAGE


def test_a_preflight_from_another_origin_is_refused_without_cors_headers(client, earlier,
                                                                        stored):
    response = preflight(client, OTHER_PAGE)

    assert_error(response, 403, "MissingPermission", NOT_ALLOWED)
    assert cors_headers(response) == {"vary": "Origin"}
    assert stored.snapshot() == earlier


def test_every_preflight_is_refused_when_no_origin_is_allowed(settings, plugin_manager):
    client = client_allowing(settings, plugin_manager, ())

    response = preflight(client, PAGE)

    assert_error(response, 403, "MissingPermission", NOT_ALLOWED)
    # nothing differs by origin: there is nothing for a cache to keep apart
    assert cors_headers(response) == {}


def test_a_preflight_to_no_route_is_a_404_the_browser_treats_as_failed(client):
    response = preflight(client, PAGE, path="/api/v3/nothing")

    assert_error(response, 404, "NotFound", NOT_FOUND)
    assert cors_headers(response) == ANSWER_TO_PAGE


def test_an_options_request_that_is_no_preflight_still_needs_a_key(client):
    response = client.simulate_options("/api/v3/attachments", headers={"Origin": PAGE})

    assert_unauthenticated(response)
    assert cors_headers(response) == ANSWER_TO_PAGE


# --- actual requests --------------------------------------------------------------------------

def test_an_upload_from_an_allowed_origin_names_it_and_exposes_the_headers(client, people,
                                                                          stored):
    response = post(client, people, upload_body(b'{"fileName": "notes.txt"}', b"from a page"),
                    Origin=PAGE)

    assert response.status_code == 200
    assert cors_headers(response) == ANSWER_TO_PAGE
    [(attachment_id, file_name, size, md5, storage_key)] = stored.rows()
    assert (attachment_id, file_name, size, md5) == (
        response.json["id"], "notes.txt", 11, hashlib.md5(b"from a page").hexdigest())
    assert stored.files() == {storage_key: b"from a page"}


def test_a_download_from_an_allowed_origin_exposes_its_name_and_validators(client, people):
    uploaded = post(client, people, upload_body(b'{"fileName": "notes.txt"}', b"from a page"))

    response = client.simulate_get(
        f"/api/v3/attachments/{uploaded.json['id']}/download",
        headers={**people.auth("ada"), "Origin": PAGE})

    assert (response.status_code, response.content) == (200, b"from a page")
    assert cors_headers(response) == ANSWER_TO_PAGE
    for exposed in ("Content-Disposition", "ETag", "Last-Modified"):
        assert exposed in response.headers


def test_an_error_to_an_allowed_origin_is_readable_by_the_page(client):
    response = client.simulate_get("/api/v3", headers={"Origin": PAGE})

    assert_error(response, 401, "Unauthenticated", UNAUTHENTICATED)
    assert cors_headers(response) == ANSWER_TO_PAGE


def test_an_answer_to_another_origin_carries_no_cors_headers(client, people, earlier, stored):
    response = post(client, people, upload_body(b'{"fileName": "notes.txt"}', b"elsewhere"),
                    Origin=OTHER_PAGE)

    # affix cannot tell a page from a script that sets Origin itself: the key decides, and the
    # browser keeps the answer from the page
    assert response.status_code == 200
    assert cors_headers(response) == {"vary": "Origin"}
    assert [row[1:4] for row in stored.rows()] == [row[1:4] for row in earlier[0]] + [
        ("notes.txt", 9, hashlib.md5(b"elsewhere").hexdigest())]


def test_an_answer_without_an_origin_varies_by_origin(client, people):
    response = client.simulate_get("/api/v3", headers=people.auth("ada"))

    assert response.status_code == 200
    assert cors_headers(response) == {"vary": "Origin"}


def test_without_allowed_origins_no_answer_carries_cors_headers(settings, plugin_manager):
    client = client_allowing(settings, plugin_manager, ())

    response = client.simulate_get("/api/v3", headers={"Origin": PAGE})

    assert_unauthenticated(response)
    assert cors_headers(response) == {}


# --- the wildcard -----------------------------------------------------------------------------

def test_the_wildcard_answers_every_origin_with_a_star_and_never_with_credentials(
        settings, plugin_manager):
    client = client_allowing(settings, plugin_manager, ("*",))

    answered = preflight(client, OTHER_PAGE)
    refused = client.simulate_get("/api/v3", headers={"Origin": OTHER_PAGE})

    assert answered.status_code == 204
    assert cors_headers(answered) == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": METHODS,
        "access-control-allow-headers": REQUEST_HEADERS,
        "access-control-max-age": "7200",
        "access-control-expose-headers": EXPOSED,
        "vary": "Origin",
    }
    assert_unauthenticated(refused)
    assert cors_headers(refused) == {"access-control-allow-origin": "*",
                                     "access-control-expose-headers": EXPOSED,
                                     "vary": "Origin"}
