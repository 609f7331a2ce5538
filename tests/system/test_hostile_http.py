"""Hostile requests over real HTTP, against ``affix serve``: what gunicorn answers itself is HAL,
a broken chunked body is 400 with nothing in the log but a line that says so, and a forwarded
path prefix is used or refused (issue "Hardening", 7 and 9)."""
import json
import os
import socket

import pytest
import requests

from support.bodies import upload_body
from support.net import HOST, REQUEST_TIMEOUT
from support.disks import small_disk
from support.races import race
from support.servers import HIGH_LIMIT, running_server
from support.state import Stored

pytestmark = pytest.mark.system

URN = "urn:openproject-org:api:v3:errors:"
UNREADABLE = ("The request body could not be read: its framing is broken, or it ended "
              "early.")


def exchange(port, raw: bytes) -> tuple:
    """(status, headers, body) of the answer to ``raw``, sent whole and then half-closed."""
    with socket.create_connection((HOST, port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip()
               for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def hal(body: bytes) -> dict:
    return json.loads(body)


@pytest.mark.parametrize("raw, status, identifier, message", [
    (b"GARBAGE\r\n\r\n", 400, "InvalidRequestBody",
     "Invalid Request Line 'Invalid HTTP request line: 'GARBAGE''"),
    (b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\nHost: affix\r\n\r\n", 414, "InvalidRequestBody",
     "Request Line is too large (8014 > 4094)"),
    (b"GET /api/v3 HTTP/1.1\r\nHost: affix\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n", 431,
     "InvalidRequestBody", "Error parsing headers: 'limit request headers fields size'"),
    (b"POST /api/v3/attachments HTTP/1.1\r\nHost: affix\r\nTransfer-Encoding: foo\r\n\r\n",
     501, "NotImplemented", "Unsupported transfer coding: 'foo'"),
], ids=["bad request line", "request line too long", "header too large",
        "unknown transfer coding"])
def test_what_gunicorn_refuses_itself_is_answered_in_hal(server, raw, status, identifier,
                                                         message):
    answered, headers, body = exchange(server.port, raw)

    assert (answered, headers["content-type"]) == (status, "application/hal+json")
    assert hal(body) == {"_type": "Error", "errorIdentifier": URN + identifier,
                         "message": message}


def chunked_upload(server, chunked_body: bytes) -> bytes:
    return (b"POST /api/v3/attachments HTTP/1.1\r\nHost: affix\r\n"
            + f"Authorization: {server.auth['Authorization']}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Transfer-Encoding: chunked\r\n\r\n" + chunked_body)


@pytest.mark.parametrize("chunked_body", [
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"10\r\nabc\r\n0\r\n\r\n",
    b"10\r\nabc",
    b"3\r\nabcXY",
], ids=["bad chunk size", "short chunk", "cut off, then half-closed", "chunk without its CRLF"])
def test_a_broken_chunked_body_is_400_and_leaves_nothing(server, chunked_body):
    body, content_type = upload_body(b'{"fileName": "kept.txt"}', b"kept")
    kept = requests.post(server.url("/api/v3/attachments"), data=body, timeout=REQUEST_TIMEOUT,
                         headers={**server.auth, "Content-Type": content_type})
    assert kept.status_code == 200
    before = server.stored.snapshot()

    status, headers, answer = exchange(server.port, chunked_upload(server, chunked_body))

    assert (status, headers["content-type"]) == (400, "application/hal+json")
    assert hal(answer) == {"_type": "Error", "errorIdentifier": URN + "InvalidRequestBody",
                           "message": UNREADABLE}
    assert server.stored.snapshot() == before
    assert server.staged_blobs() == []
    assert "Traceback" not in server.stderr()


def test_a_forwarded_prefix_the_path_starts_with_is_the_mount_point(server):
    status, _, body = exchange(server.port, (
        b"GET /files/api/v3 HTTP/1.1\r\nHost: affix\r\nSCRIPT_NAME: /files\r\n"
        + f"Authorization: {server.auth['Authorization']}\r\nConnection: close\r\n\r\n"
        .encode()))

    assert status == 200
    assert hal(body)["_links"]["self"]["href"] == "/files/api/v3"


def test_a_forwarded_prefix_the_path_does_not_start_with_is_400(server):
    status, headers, body = exchange(server.port, (
        b"GET /api/v3 HTTP/1.1\r\nHost: affix\r\nSCRIPT_NAME: /files\r\n\r\n"))

    assert (status, headers["content-type"]) == (400, "application/hal+json")
    assert hal(body) == {
        "_type": "Error", "errorIdentifier": URN + "InvalidRequestBody",
        "message": "The forwarded path prefix does not fit the path: Request path '/api/v3' "
                   "does not start with SCRIPT_NAME '/files'"}


# --- the numbered defects, each over real HTTP --------------------------------------------------

def post_upload(server, name="kept.txt", content=b"kept", base=None):
    body, content_type = upload_body(json.dumps({"fileName": name}).encode(), content)
    return requests.post((base or server.url("")) + "/api/v3/attachments", data=body,
                         headers={**server.auth, "Content-Type": content_type},
                         timeout=REQUEST_TIMEOUT)


def create_work_package(server, hrefs, project="/api/v3/projects/1"):
    return requests.post(server.url("/api/v3/work_packages"), headers=server.auth, json={
        "subject": "Hostile", "_links": {"project": {"href": project}, "attachments": [
            {"href": href} for href in hrefs]}}, timeout=REQUEST_TIMEOUT)


def make_project(server):
    """The project "demo" (id 1), in the server's database."""
    catalog = server.stored.catalog
    with catalog.database.connection_context():
        catalog.Project.create(identifier="demo", name="Demo")


def work_package_count(server) -> int:
    catalog = server.stored.catalog
    with catalog.database.connection_context():
        return catalog.WorkPackage.select().count()


def test_1_a_claim_listing_the_same_attachment_a_thousand_times_is_one_claim(server):
    attachment_id = post_upload(server).json()["id"]
    make_project(server)

    too_many = create_work_package(server, [f"/api/v3/attachments/{attachment_id}"] * 1001)
    repeated = create_work_package(server, [f"/api/v3/attachments/{attachment_id}"] * 1000)

    assert too_many.status_code == 422
    assert too_many.json()["message"] == "Attachments can list at most 1000 attachments."
    assert repeated.status_code == 201, repeated.text
    assert [element["id"] for element in repeated.json()["_embedded"]["attachments"][
        "_embedded"]["elements"]] == [attachment_id]


def test_3_downloads_racing_a_delete_are_200_or_404_never_500(server):
    content = b"raced" * 1000
    for _ in range(5):
        attachment_id = post_upload(server, content=content).json()["id"]
        url = server.url(f"/api/v3/attachments/{attachment_id}/content")
        calls = [lambda: requests.get(url, headers=server.auth, timeout=REQUEST_TIMEOUT)] * 8
        calls.append(lambda: requests.delete(server.url(f"/api/v3/attachments/{attachment_id}"),
                                             headers=server.auth, timeout=REQUEST_TIMEOUT))
        responses = race(*calls)
        assert responses[-1].status_code == 204
        for response in responses[:-1]:
            assert (response.status_code, response.content) in (
                (200, content), (404, response.content)), response.text
            if response.status_code == 404:
                assert response.json()["message"] == "The specified attachment does not exist."
    assert server.stored.rows() == []


@pytest.mark.parametrize("header, status", [
    ("bytes=0-" + "9" * 5000, 206), ("bytes=-" + "9" * 5000, 206),
    ("bytes=" + "9" * 5000 + "-", 416),
])
def test_4_huge_numbers_in_range_are_read_for_what_they_mean(server, header, status):
    attachment_id = post_upload(server, content=b"0123456789").json()["id"]

    response = requests.get(server.url(f"/api/v3/attachments/{attachment_id}/content"),
                            headers={**server.auth, "Range": header}, timeout=REQUEST_TIMEOUT)

    assert response.status_code == status
    if status == 206:
        assert response.content == b"0123456789"


def test_5_huge_ids_in_hrefs_and_paths_are_unknown_ids(server):
    huge = "9" * 5000
    make_project(server)

    claimed = create_work_package(server, [f"/api/v3/attachments/{huge}"])
    project = create_work_package(server, [], project=f"/api/v3/projects/{huge}")
    # as long as gunicorn lets a request line be
    path = requests.get(server.url(f"/api/v3/work_packages/{huge[:4000]}"),
                        headers=server.auth, timeout=REQUEST_TIMEOUT)

    assert (claimed.status_code, claimed.json()["message"]) == (
        422, "Attachments does not exist.")
    assert (project.status_code, project.json()["message"]) == (
        422, "Project does not exist.")
    assert (path.status_code, path.json()["message"]) == (
        404, "The specified work package does not exist.")
    assert work_package_count(server) == 0


def test_6_json_nested_a_thousand_levels_deep_is_400(server):
    before = server.stored.snapshot()
    deep = "[" * 1000 + "]" * 1000
    metadata = f'{{"fileName": "deep.txt", "description": {deep}}}'.encode()
    body, content_type = upload_body(metadata, b"deep")

    in_metadata = requests.post(server.url("/api/v3/attachments"), data=body,
                                headers={**server.auth, "Content-Type": content_type},
                                timeout=REQUEST_TIMEOUT)
    in_body = requests.post(server.url("/api/v3/work_packages"), data=f'{{"x": {deep}}}',
                            headers={**server.auth, "Content-Type": "application/json"},
                            timeout=REQUEST_TIMEOUT)

    for response in (in_metadata, in_body):
        assert response.status_code == 400
        assert response.json()["message"] == "The request could not be parsed as JSON."
    assert server.stored.snapshot() == before
    assert "Traceback" not in server.stderr()


def fill(path):
    """Fill the filesystem of ``path``'s folder up with the file ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [3 * 1024, 256 * 1024], ids=["buffered", "streamed"])
def test_2_a_full_disk_is_507_and_leaves_no_staged_file(tmp_path, databases, size):
    (tmp_path / "run").mkdir()
    with small_disk(tmp_path / "disk", 256 * 1024) as disk, running_server(
            tmp_path / "run", databases, HIGH_LIMIT,
            {"AFFIX_STORAGE_URL": str(disk)}) as server:
        # the server's blobs are on the small disk: its Stored looks there
        stored = Stored(server.stored.catalog, disk)
        assert post_upload(server, content=b"fits").status_code == 200
        fill(disk / "filler")
        before = stored.snapshot()

        responses = [post_upload(server, name=f"late-{n}.bin", content=b"z" * size)
                     for n in range(3)]

        for response in responses:
            assert (response.status_code, response.json()["message"]) == (
                507, "There is not enough storage space left to store the file."), response.text
        # staging included: Stored lists every file below the blob folder
        assert stored.snapshot() == before


@pytest.mark.sqlite_only("the SQLite file fills a small disk of its own")
def test_10_a_full_database_disk_is_503_and_the_log_says_why(tmp_path, databases):
    with small_disk(tmp_path / "run", 4 * 1024 * 1024) as run_dir, running_server(
            run_dir, databases, HIGH_LIMIT,
            {"AFFIX_STORAGE_URL": str(tmp_path / "blobs")}) as server:
        assert post_upload(server).status_code == 200
        fill(run_dir / "filler")
        responses = [post_upload(server, name="x" * 200 + f"{n}", content=bytes(1024))
                     for n in range(20)]
        (run_dir / "filler").unlink()

        failed = [response for response in responses if response.status_code != 200]
        assert failed, "the disk never filled up"
        for response in failed:
            assert (response.status_code, response.json()["errorIdentifier"]) == (
                503, URN + "ServiceUnavailable")
        log = server.stderr()
        assert "database or disk is full" in log
        assert "cannot rollback" not in log
