"""A real server's log: text or one JSON object a line, an access line per request with its
facts, the request id on every line written while serving; and never a key, an Authorization
header or a byte of a file, whatever the request. (Request ids and the log settings in process:
functional/test_logs.py.)"""
import base64
import contextlib
import re
import socket
import string
import urllib.parse

import pytest
import requests
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from affix.app.testing import basic_auth, multipart, upload_form
from support.logs import access_line, access_lines, json_lines
from support.net import HOST, REQUEST_TIMEOUT
from support.servers import HIGH_LIMIT, running_server
from support.waiting import wait_for

UPLOADS = "/api/v3/attachments"
JSON_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


# --- a real server's log -------------------------------------------------------------------------

@pytest.fixture
def start_logging_server(tmp_path, databases):
    """Starts a server with the given settings; it is stopped when the test ends."""
    with contextlib.ExitStack() as stack:
        def start(**environ):
            return stack.enter_context(running_server(tmp_path, databases, HIGH_LIMIT, environ))
        yield start


@pytest.fixture
def json_server(start_logging_server):
    return start_logging_server(AFFIX_LOG_FORMAT="json")


def test_an_upload_has_one_json_access_line_with_its_facts(json_server):
    server = json_server
    body, content_type = upload_form("notes.txt", b"some notes")
    response = requests.post(server.url(UPLOADS), data=body, timeout=REQUEST_TIMEOUT, headers={
        **server.auth, "Content-Type": content_type, "X-Request-Id": "upload-1"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "upload-1"

    line = access_line(server, "upload-1")

    assert JSON_TIME.fullmatch(line.pop("time"))
    assert line.pop("pid") in server.worker_pids()
    assert 0 < line.pop("duration") < REQUEST_TIMEOUT
    assert line == {
        "level": "INFO", "logger": "gunicorn.access", "message": "POST /api/v3/attachments 200",
        "request_id": "upload-1", "user_id": 1, "method": "POST", "route": UPLOADS,
        "path": UPLOADS, "status": 200, "error": None, "bytes_in": len(body),
        "bytes_out": len(response.content), "client": HOST,
        "user_agent": f"python-requests/{requests.__version__}",
    }
    # every line of the log is a JSON object, gunicorn's own too
    assert any(line["message"].startswith("Booting worker with pid: ")
               for line in json_lines(server.stderr()))


@pytest.mark.parametrize("allowed, client", [
    # gunicorn's default: the proxy on loopback is believed
    (None, "203.0.113.9"),
    # a proxy elsewhere: loopback is the client, what it forwards is not believed
    ("10.0.0.2", HOST),
], ids=["trusted", "untrusted"])
def test_the_access_line_names_the_client_a_trusted_proxy_forwards(start_logging_server,
                                                                  allowed, client):
    server = start_logging_server(AFFIX_LOG_FORMAT="json", **(
        {} if allowed is None else {"FORWARDED_ALLOW_IPS": allowed}))
    requests.get(server.url("/health"), timeout=REQUEST_TIMEOUT, headers={
        "X-Request-Id": "forwarded", "X-Forwarded-For": "203.0.113.9",
        "User-Agent": "agent/1.0 (" + "x" * 300 + ")"})

    line = access_line(server, "forwarded")

    # a User-Agent is cut to 200 characters
    assert (line["client"], line["user_agent"]) == (client, ("agent/1.0 (" + "x" * 300)[:200])


def test_a_refusal_names_its_error_and_a_path_that_routed_nowhere_is_not_logged(json_server):
    server = json_server
    requests.get(server.url("/api/v3/attachments/7"), timeout=REQUEST_TIMEOUT,
                 headers={"X-Request-Id": "refused"})
    requests.get(server.url("/api/v3/typed-by-hand"), timeout=REQUEST_TIMEOUT,
                 headers={"X-Request-Id": "lost"})

    refused, lost = access_line(server, "refused"), access_line(server, "lost")

    assert (refused["route"], refused["path"], refused["status"], refused["error"],
            refused["user_id"]) == (
        "/api/v3/attachments/{attachment_id:id}", "/api/v3/attachments/7", 401,
        "Unauthenticated", None)
    assert (lost["message"], lost["route"], lost["path"], lost["status"], lost["error"]) == (
        "GET (no route) 404", None, None, 404, "NotFound")
    assert "typed-by-hand" not in server.stderr()


def send_raw(server, data: bytes) -> bytes:
    """Send ``data`` on a connection of its own and read the answer until the server closes."""
    with socket.create_connection((HOST, server.port), timeout=REQUEST_TIMEOUT) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_a_line_the_app_writes_while_serving_carries_the_request_id(json_server):
    server = json_server
    answer = send_raw(server, (
        f"POST {UPLOADS} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {server.auth['Authorization']}"
        "\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n"
        "X-Request-Id: broken-chunks\r\n\r\nnot-a-size\r\n").encode())
    assert answer.startswith(b"HTTP/1.1 400 ")

    access_line(server, "broken-chunks")
    [app_line] = [line for line in json_lines(server.stderr())
                  if line["logger"] == "affix.app.uploads.multipart"]
    assert (app_line["level"], app_line["message"], app_line["request_id"]) == (
        "INFO", "the request body could not be read: InvalidChunkSize", "broken-chunks")


def test_text_logs_read_like_gunicorns_own(start_logging_server):
    server = start_logging_server()
    response = requests.get(server.url("/api/v3"), headers={**server.auth, "X-Request-Id": "t-1"},
                            timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200

    def written():
        return re.search(r"^\[[^]]+\] \[(\d+)\] \[INFO\] GET /api/v3 200 0 bytes in, "
                         rf"{len(response.content)} out, \d+\.\d{{3}} s, user 1, request t-1, "
                         rf"client {re.escape(HOST)}, agent python-requests/\S+$",
                         server.stderr(), re.MULTILINE)

    wait_for(written, "the text access line")
    assert re.search(r"^\[[^]]+\] \[\d+\] \[INFO\] Booting worker with pid: \d+$",
                     server.stderr(), re.MULTILINE)


# a routed path's string segment as a client can spell it: a line of its own making after a
# newline, and an escape sequence that erases the terminal's line
FORGED_SEGMENT = "x%0A%5B2026-12-01%2006:03:46%20+0000%5D%20%5BCRITICAL%5D%20forged%1B%5B2K"
FORGED_PATHS = [f"/api/v3/projects/{FORGED_SEGMENT}", f"/api/v3/attachments/tus/{FORGED_SEGMENT}"]
FORGED_ESCAPED = "x\\n[2026-12-01 06:03:46 +0000] [CRITICAL] forged\\x1b[2K"


def test_a_client_cannot_write_a_text_line_of_its_own(start_logging_server):
    server = start_logging_server()
    for number, path in enumerate(FORGED_PATHS):
        response = requests.get(server.url(path), timeout=REQUEST_TIMEOUT,
                                headers={"X-Request-Id": f"r-{number}"})
        assert response.status_code == 401

    def written():
        return all(f"request r-{number}" in server.stderr()
                   for number in range(len(FORGED_PATHS)))

    wait_for(written, "both access lines")
    log = server.stderr()
    assert "\x1b" not in log and "forged" not in log.replace(FORGED_ESCAPED, "")
    for number, path in enumerate(FORGED_PATHS):
        escaped_path = path.replace(FORGED_SEGMENT, FORGED_ESCAPED)
        assert re.search(rf"^\[[^]]+\] \[\d+\] \[INFO\] GET {re.escape(escaped_path)} 401 0 "
                         rf"bytes in, \d+ out, \d+\.\d{{3}} s, user None, request r-{number}, "
                         rf"client {re.escape(HOST)}, agent python-requests/\S+$",
                         log, re.MULTILINE)


def test_a_client_cannot_write_a_json_line_of_its_own(json_server):
    server = json_server
    requests.get(server.url(FORGED_PATHS[0]), timeout=REQUEST_TIMEOUT,
                 headers={"X-Request-Id": "forged"})

    line = access_line(server, "forged")

    assert line["path"] == "/api/v3/projects/" + urllib.parse.unquote(FORGED_SEGMENT)
    # json_lines parsed every line as an object of its own: none was begun by the client
    assert "\x1b" not in server.stderr()


def test_access_lines_can_be_left_to_the_proxy(start_logging_server):
    server = start_logging_server(AFFIX_LOG_FORMAT="json", AFFIX_ACCESS_LOG="0")
    for _ in range(3):
        assert requests.get(server.url("/health"), timeout=REQUEST_TIMEOUT).status_code == 200
    # a request gunicorn refuses itself is logged as a warning, after the ones before it
    send_raw(server, b"GET / HTTP/9.9\r\n\r\n")

    wait_for(lambda: "Invalid request from ip=" in server.stderr(), "gunicorn's warning")
    assert access_lines(server) == []


# --- nothing secret in any line ---------------------------------------------------------------

CONTENT_MARKER = "file-content-" + "7e1f" * 8
JSON_MARKER = "json-body-" + "c0de" * 8


def authorizations(key) -> list:
    """Authorization headers carrying ``key`` (or something close to it), right and wrong."""
    return [
        basic_auth(key), f"Bearer {key}", basic_auth(key + "0"), f"Bearer {key}0",
        "Basic " + base64.b64encode(f"apikey:{key}".encode()).decode() + "=",
        "Basic " + base64.b64encode(f"someone:{key}".encode()).decode(),
        f"Basic {key}", f"Token {key}", f"bearer  {key} ", key,
    ]


def forbidden_texts(key, sent_authorizations) -> set:
    return {key, base64.b64encode(f"apikey:{key}".encode()).decode(), CONTENT_MARKER,
            JSON_MARKER, *(value.strip() for value in sent_authorizations)}


def bodies():
    upload, upload_type = upload_form("f.bin", CONTENT_MARKER.encode() * 3)
    return [
        (None, None),
        (upload, upload_type),
        # cut short: the app reads less than the form
        (upload[:len(upload) // 2], upload_type),
        (f'{{"subject": "{JSON_MARKER}", "_links": {{"attachments": [{{"href": '
         f'"/api/v3/attachments/{JSON_MARKER}"}}]}}}}'.encode(), "application/json"),
        (CONTENT_MARKER.encode(), "multipart/form-data; boundary=" + CONTENT_MARKER),
        (multipart([("file", CONTENT_MARKER.encode(), {})])[0],
         "multipart/form-data; boundary=affix-test-boundary"),
    ]


def raw_requests(key) -> list:
    """Requests that ``requests`` cannot send: ones gunicorn refuses, and broken bodies."""
    auth = basic_auth(key)
    return [
        f"GET /api/v3/x {key}\r\nHost: a\r\n\r\n",
        f"GET /{key} HTTP/1.1\r\nHost: a\r\nAuthorization: {auth}\x01\r\n\r\n",
        f"GET /api/v3?{key} HTTP/1.1\r\nHost: a\r\n{key}: {auth}\r\n\r\n",
        f"POST {UPLOADS} HTTP/1.1\r\nHost: a\r\nAuthorization: {auth}\r\nContent-Type: "
        f"multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\ng{key}\r\n",
        # the file's bytes where a chunk's size should be: the app reads them
        f"POST {UPLOADS} HTTP/1.1\r\nHost: a\r\nAuthorization: {auth}\r\nContent-Type: "
        f"multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"{CONTENT_MARKER}\r\n",
        f"POST {UPLOADS} HTTP/1.1\r\nHost: a\r\nAuthorization: {auth}\r\nContent-Type: "
        f"multipart/form-data; boundary=b\r\nContent-Length: 9999\r\n\r\n{CONTENT_MARKER}",
        f"POST {UPLOADS} HTTP/1.1\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n{CONTENT_MARKER}\r\n",
    ]


PATHS = ["/api/v3", UPLOADS, "/api/v3/attachments/1", "/api/v3/attachments/1/download",
         "/api/v3/attachments/1/content", "/api/v3/work_packages", "/api/v3/work_packages/1",
         "/api/v3/work_packages/1/attachments", "/api/v3/users/1", "/health/ready",
         "/api/v3/spec.json", "/metrics", "/api/v3/{key}", "/api/v3/attachments?key={key}",
         "/api/v3/attachments/1/{key}"]
REQUEST_ID_ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "


def test_no_key_authorization_or_file_content_in_any_line(start_logging_server):
    server = start_logging_server(AFFIX_LOG_FORMAT="json")
    key = server.api_key
    body, content_type = upload_form("kept.bin", CONTENT_MARKER.encode())
    assert requests.post(server.url(UPLOADS), data=body, timeout=REQUEST_TIMEOUT, headers={
        **server.auth, "Content-Type": content_type}).status_code == 200
    sent_authorizations = set()

    @hypothesis_settings(max_examples=60, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow])
    @given(method=st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]),
           path=st.sampled_from(PATHS), authorization=st.sampled_from([None, *authorizations(key)]),
           body=st.sampled_from(bodies()), chunked=st.booleans(),
           # requests sends no header value with spaces around it
           request_id=st.none() | st.text(REQUEST_ID_ALPHABET, max_size=140).map(str.strip))
    def send(method, path, authorization, body, chunked, request_id):
        headers = {"Connection": "close"}
        if authorization is not None:
            headers["Authorization"] = authorization
            sent_authorizations.add(authorization)
        if request_id is not None:
            headers["X-Request-Id"] = request_id
        data, data_type = body
        if data_type is not None:
            headers["Content-Type"] = data_type
        if data is not None and chunked:
            data = iter([data])
        requests.request(method, server.url(path.format(key=key)), data=data, headers=headers,
                         timeout=REQUEST_TIMEOUT)

    send()
    for raw in raw_requests(key):
        send_raw(server, raw.encode())
    # the last request's line is written after those of every request before it
    requests.get(server.url("/health"), headers={"X-Request-Id": "last"}, timeout=REQUEST_TIMEOUT)
    access_line(server, "last")

    log = server.stderr()
    assert len(access_lines(server)) > 60
    for text in forbidden_texts(key, sent_authorizations):
        assert text not in log
    # and every line of it is JSON, whatever the request
    assert log.count("\n") == len(json_lines(log))
