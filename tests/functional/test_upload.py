"""The Create Attachment contract through falcon.testing: success and every refusal, with what
is stored asserted after each. (Full disks, for real: system/test_full_disks.py.)"""
import concurrent.futures
import dataclasses
import errno
import hashlib
import json
import os

import falcon.testing
import peewee

import pytest

from affix.app import create_app
from affix.app.testing import multipart
from affix.storage import group_sync
from support.bodies import upload_body
from support.client import post
from support.content import png_bytes
from support.defaults import FROZEN_NOW, SMALL_LIMIT
from support.errors import FULL, UNAVAILABLE, URN, assert_error
from support.state import STORAGE_KEY


def test_upload_answers_the_seed_body_and_stores_row_and_blob(client, people, stored):
    png = png_bytes()
    metadata = json.dumps({"fileName": "cat.png",
                           "description": {"raw": "A picture of a cute cat"}}).encode()
    response = post(client, people, upload_body(metadata, png))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/hal+json"
    digest = hashlib.md5(png).hexdigest()
    assert response.json == {
        "_type": "Attachment", "id": 1, "title": "cat.png", "fileName": "cat.png",
        "fileSize": len(png), "filesize": len(png),
        "description": {"format": "plain", "raw": "A picture of a cute cat",
                        "html": "<p>A picture of a cute cat</p>"},
        "contentType": "image/png", "digest": {"algorithm": "md5", "hash": digest},
        "createdAt": "2014-05-21T08:51:20Z", "status": "uploaded",
        "_links": {
            "self": {"href": "/api/v3/attachments/1", "title": "cat.png"},
            "author": {"href": "/api/v3/users/1", "title": "Ada Admin"},
            "container": {"href": None},
            "staticDownloadLocation": {"href": "/api/v3/attachments/1/download"},
            "downloadLocation": {"href": "/api/v3/attachments/1/download"},
            "delete": {"href": "/api/v3/attachments/1", "method": "delete"},
        },
    }
    rows, files = stored.snapshot()
    assert [row[:4] for row in rows] == [(1, "cat.png", len(png), digest)]
    assert files == {rows[0][4]: png}


def test_parts_in_either_order_and_metadata_without_content_type(client, people, stored):
    file_first = post(client, people, upload_body(file=b"first", file_first=True))
    bare = post(client, people, multipart([
        ("metadata", b'{"fileName": "bare.txt", "description": "plain string"}', {}),
        ("file", b"second", {}),
    ]))
    assert (file_first.status_code, bare.status_code) == (200, 200)
    assert bare.json["description"]["raw"] == "plain string"
    assert [(row[1], row[2]) for row in stored.rows()] == [("cat.png", 5), ("bare.txt", 6)]
    assert sorted(stored.files().values()) == [b"first", b"second"]


def test_empty_file_is_stored(client, people, stored):
    response = post(client, people, upload_body(file=b""))
    assert response.status_code == 200
    assert response.json["fileSize"] == 0
    assert response.json["digest"]["hash"] == hashlib.md5(b"").hexdigest()
    assert response.json["contentType"] == "application/octet-stream"
    assert list(stored.files().values()) == [b""]


def test_a_file_of_exactly_the_limit_is_accepted(client, people, stored):
    response = post(client, people, upload_body(file=b"x" * SMALL_LIMIT))
    assert response.status_code == 200
    assert list(stored.files().values()) == [b"x" * SMALL_LIMIT]


def test_description_over_255_characters_and_blank_name_are_multiple_errors(
        client, people, stored, earlier):
    metadata = json.dumps({"fileName": " ", "description": "d" * 256}).encode()
    response = post(client, people, upload_body(metadata))
    assert response.status_code == 422
    assert response.json == {
        "_type": "Error", "errorIdentifier": URN + "MultipleErrors",
        "message": "Multiple field constraints have been violated.",
        "_embedded": {"errors": [
            {"_type": "Error", "errorIdentifier": URN + "PropertyConstraintViolation",
             "message": "File name can't be blank.",
             "_embedded": {"details": {"attribute": "fileName"}}},
            {"_type": "Error", "errorIdentifier": URN + "PropertyConstraintViolation",
             "message": "Description is too long (maximum is 255 characters).",
             "_embedded": {"details": {"attribute": "description"}}},
        ]},
    }
    assert stored.snapshot() == earlier


BOUNDARY = "b0undary"
TYPE = f"multipart/form-data; boundary={BOUNDARY}"
GOOD_PARTS = (
    b"--b0undary\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n"
    b"{\"fileName\": \"a.txt\"}\r\n"
    b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
    b"some bytes\r\n"
)
GOOD_BODY = GOOD_PARTS + b"--b0undary--\r\n"


def part(name, data):
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            .encode() + data + b"\r\n")


REFUSALS = {
    "not multipart": (
        b"{}", "application/json", 415, "TypeNotSupported",
        "Expected CONTENT-TYPE to be multipart/form-data but got application/json.", None),
    "multipart without boundary": (
        GOOD_BODY, "multipart/form-data", 400, "InvalidRequestBody",
        "The multipart/form-data Content-Type has no boundary.", None),
    "boundary of characters RFC 2046 does not allow": (
        GOOD_BODY.replace(b"b0undary", b"b0und\xc3\xa4ry"),
        "multipart/form-data; boundary=b0und\u00e4ry", 400, "InvalidRequestBody",
        "The multipart/form-data boundary is not valid.", None),
    "boundary longer than 70 characters": (
        GOOD_BODY.replace(b"b0undary", b"b" * 71), f"multipart/form-data; boundary={'b' * 71}",
        400, "InvalidRequestBody", "The multipart/form-data boundary is not valid.", None),
    "more than 64 KiB after the closing boundary": (
        GOOD_BODY + b"e" * (64 * 1024 - 1), TYPE, 400, "InvalidRequestBody",
        "The request body goes on for more than 65536 bytes after its closing boundary.", None),
    "not multipart at all": (
        b"this is not a multipart body", TYPE, 400, "InvalidRequestBody",
        "The request body is not valid multipart/form-data.", None),
    "ends before the closing boundary": (
        GOOD_PARTS[:-20], TYPE, 400, "InvalidRequestBody",
        "The request body ended before the closing boundary.", None),
    "closing boundary missing entirely": (
        GOOD_PARTS, TYPE, 400, "InvalidRequestBody",
        "The request body ended before the closing boundary.", None),
    "bare LF line endings": (
        GOOD_BODY.replace(b"\r\n", b"\n"), TYPE, 400, "InvalidRequestBody",
        "The request body is not valid multipart/form-data.", None),
    "missing file part": (
        part("metadata", b'{"fileName": "a.txt"}') + b"--b0undary--\r\n", TYPE, 400,
        "InvalidRequestBody", "The request is missing the 'file' part.", None),
    "missing metadata part": (
        part("file", b"bytes") + b"--b0undary--\r\n", TYPE, 400,
        "InvalidRequestBody", "The request is missing the 'metadata' part.", None),
    "duplicated file part": (
        GOOD_PARTS + part("file", b"again") + b"--b0undary--\r\n", TYPE, 400,
        "InvalidRequestBody", "The part 'file' appears more than once.", None),
    "duplicated metadata part": (
        GOOD_PARTS + part("metadata", b"{}") + b"--b0undary--\r\n", TYPE, 400,
        "InvalidRequestBody", "The part 'metadata' appears more than once.", None),
    "extra part": (
        GOOD_PARTS + part("comment", b"hi") + b"--b0undary--\r\n", TYPE, 400,
        "InvalidRequestBody",
        "The part 'comment' is not expected: send exactly the parts 'metadata' and 'file'.",
        None),
    "non-UTF-8 part header": (
        b"--b0undary\r\nContent-Disposition: form-data; name=\"\xff\xfe\"\r\n\r\nx\r\n"
        + GOOD_BODY,
        TYPE, 400, "InvalidRequestBody",
        "The request body is not valid multipart/form-data.", None),
    "metadata not JSON": (
        part("metadata", b"{fileName: oops") + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 400, "InvalidRequestBody", "The request could not be parsed as JSON.", None),
    "metadata not UTF-8": (
        part("metadata", b'{"fileName": "\xff"}') + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 400, "InvalidRequestBody", "The request could not be parsed as JSON.", None),
    "metadata with a lone surrogate": (
        part("metadata", b'{"fileName": "a\\ud800.txt"}') + part("file", b"x")
        + b"--b0undary--\r\n",
        TYPE, 400, "InvalidRequestBody", "The request could not be parsed as JSON.", None),
    "NUL character in the file name": (
        part("metadata", b'{"fileName": "a\\u0000.txt"}') + part("file", b"x")
        + b"--b0undary--\r\n",
        TYPE, 400, "InvalidRequestBody", "Text may not contain the NUL character (U+0000).",
        None),
    "NUL character in the description": (
        part("metadata", b'{"fileName": "a.txt", "description": {"raw": "\\u0000"}}')
        + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 400, "InvalidRequestBody", "Text may not contain the NUL character (U+0000).",
        None),
    "metadata not an object": (
        part("metadata", b'["a.txt"]') + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 400, "InvalidRequestBody", "The request could not be parsed as JSON.", None),
    "metadata over 64 KiB": (
        part("metadata", b'{"fileName": "a.txt", "pad": "' + b"p" * 65536 + b'"}')
        + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 400, "InvalidRequestBody", "The metadata part is larger than 65536 bytes.", None),
    "fileName missing": (
        part("metadata", b'{"description": "no name"}') + part("file", b"x")
        + b"--b0undary--\r\n",
        TYPE, 422, "PropertyConstraintViolation", "File name can't be blank.", "fileName"),
    "fileName blank": (
        part("metadata", b'{"fileName": "   "}') + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 422, "PropertyConstraintViolation", "File name can't be blank.", "fileName"),
    "fileName not a string": (
        part("metadata", b'{"fileName": 42}') + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 422, "PropertyConstraintViolation", "File name can't be blank.", "fileName"),
    "description over 255 characters": (
        part("metadata", b'{"fileName": "a.txt", "description": {"raw": "'
             + b"d" * 256 + b'"}}') + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 422, "PropertyConstraintViolation",
        "Description is too long (maximum is 255 characters).", "description"),
    "description not text": (
        part("metadata", b'{"fileName": "a.txt", "description": ["x"]}')
        + part("file", b"x") + b"--b0undary--\r\n",
        TYPE, 422, "PropertyConstraintViolation", "Description must be a text.", "description"),
    "file one byte over the limit": (
        part("metadata", b'{"fileName": "a.txt"}') + part("file", b"x" * (SMALL_LIMIT + 1))
        + b"--b0undary--\r\n",
        TYPE, 422, "PropertyConstraintViolation",
        f"File is too large (maximum size is {SMALL_LIMIT} Bytes).", "fileSize"),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_upload_leaves_everything_as_it_was(client, people, stored, earlier, case):
    body, content_type, status, identifier, message, attribute = case
    response = post(client, people, (body, content_type))
    assert_error(response, status, identifier, message, attribute)
    assert stored.snapshot() == earlier


def test_an_epilogue_up_to_64_kib_is_allowed_and_never_stored(client, people, stored):
    # RFC 2046: what follows the closing delimiter is to be ignored; here "\r\n" and then more
    response = post(client, people, (GOOD_BODY + b"e" * (64 * 1024 - 2), TYPE))
    assert response.status_code == 200, response.json
    assert response.json["fileSize"] == len(b"some bytes")
    [(_, _, _, _, key)] = stored.rows()
    assert stored.files() == {key: b"some bytes"}


def test_missing_content_type_is_406(client, people, stored, earlier):
    response = client.simulate_post(
        "/api/v3/attachments", body=GOOD_BODY, headers=people.auth("ada")
    )
    assert_error(response, 406, "MissingContentType", "Missing content-type header.")
    assert stored.snapshot() == earlier


def test_body_shorter_than_content_length_leaves_nothing(client, people, stored, earlier):
    response = client.simulate_post(
        "/api/v3/attachments", body=GOOD_BODY[:100],
        headers={**people.auth("ada"), "Content-Type": TYPE,
                 "Content-Length": str(len(GOOD_BODY))},
    )
    assert_error(response, 400, "InvalidRequestBody",
                 f"The request body ended after 100 of {len(GOOD_BODY)} bytes.")
    assert stored.snapshot() == earlier


class ExplodingStream:
    """A request body that fails mid-way, as a broken connection does."""

    def __init__(self, first):
        self.first = first

    def read(self, size=-1):
        if self.first is None:
            raise OSError("connection reset by peer")
        chunk, self.first = self.first, None
        return chunk

    # the WSGI validator of falcon.testing insists on the whole file-like interface
    readline = read

    def readlines(self, hint=-1):
        return [self.read()]

    def __iter__(self):
        return iter(self.readlines())


def test_failure_while_reading_the_body_discards_the_staged_blob(
        client, people, stored, earlier):
    response = client.simulate_post(
        "/api/v3/attachments", headers={**people.auth("ada"), "Content-Type": TYPE},
        extras={"wsgi.input": ExplodingStream(GOOD_PARTS[:150])},
    )
    # the client went away: its doing, not a fault of the server
    assert_error(response, 400, "InvalidRequestBody", "The request body could not be read: "
                 "its framing is broken, or it ended early.")
    assert stored.snapshot() == earlier


@pytest.mark.on_cue("catalog")
@pytest.mark.parametrize("failure", ["database is locked", "disk I/O error"])
def test_database_failure_at_commit_is_503_and_removes_the_committed_blob(
        client, people, stored, earlier, services, failure):
    def failing_insert(*args, **kwargs):
        raise peewee.OperationalError(failure)

    # the row's insert, after the blob is committed
    services.catalog.replace("add_attachment", failing_insert)
    response = post(client, people, upload_body(file=b"lost"))
    assert_error(response, 503, "ServiceUnavailable", UNAVAILABLE)
    assert response.headers["retry-after"] == "5"
    assert stored.snapshot() == earlier


@pytest.mark.on_cue("catalog")
def test_database_out_of_reach_is_503_before_anything_is_read(
        client, people, stored, earlier, services):
    def refuse(*args, **kwargs):
        raise peewee.OperationalError("unable to open database file")

    services.catalog.database.replace("connect", refuse)
    response = post(client, people, upload_body(file=b"lost"))
    services.catalog.database.restore("connect")
    assert_error(response, 503, "ServiceUnavailable", UNAVAILABLE)
    assert stored.snapshot() == earlier


def test_a_blob_is_in_place_and_flushed_once_before_its_row_is_written(
        client, people, stored, monkeypatch):
    fsynced, flushes = [], []
    real_fsync, real_syncfs = os.fsync, group_sync.syncfs

    def fsync(fd):
        fsynced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def syncfs(fd):
        real_syncfs(fd)
        # read on a thread of its own: the request's thread holds its own connection
        with concurrent.futures.ThreadPoolExecutor(1) as reader:
            flushes.append(reader.submit(stored.snapshot).result())

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(group_sync, "syncfs", syncfs)
    response = post(client, people, upload_body(file=b"durable"))
    monkeypatch.undo()
    assert response.status_code == 200
    [(_, _, _, _, key)] = stored.rows()
    # one flush for the bytes and the rename, with no row yet; the only fsync is the new
    # fan-out folder's entry in the store's root
    assert (flushes, fsynced) == ([([], {key: b"durable"})], [str(stored.blob_root)])


@pytest.mark.parametrize("error_number, status, identifier, message", [
    # a quota cannot be exhausted here for real: the disk's answer is played instead
    (errno.EDQUOT, *FULL),
    (errno.EIO, 500, "InternalServerError", "An internal error has occurred."),
])
def test_storage_failing_as_the_blob_is_made_durable_leaves_nothing(
        client, people, stored, earlier, monkeypatch, error_number, status, identifier,
        message):
    def syncfs(fd):
        raise OSError(error_number, os.strerror(error_number))

    monkeypatch.setattr(group_sync, "syncfs", syncfs)
    response = post(client, people, upload_body(file=b"z" * 1000))
    monkeypatch.undo()
    assert_error(response, status, identifier, message)
    assert stored.snapshot() == earlier


@pytest.fixture
def large_client(settings, plugin_manager, app):
    """A second app on the same store whose limit lets a file span several chunks."""
    roomy = dataclasses.replace(settings, max_attachment_size=8 * 1024 * 1024)
    return falcon.testing.TestClient(
        create_app(roomy, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))


def test_a_large_upload_written_behind_is_stored_exactly(large_client, people, stored):
    content = os.urandom(5 * 1024 * 1024 + 17)
    response = post(large_client, people, upload_body(file=content))
    assert response.status_code == 200, response.json
    assert response.json["digest"]["hash"] == hashlib.md5(content).hexdigest()
    [(_, _, size, _, key)] = stored.rows()
    assert size == len(content)
    assert stored.files() == {key: content}


def test_file_names_are_data_never_paths(client, people, stored):
    name = "../../" + "x" * 990 + "\r\nX-Evil: 1\x01.txt"
    response = post(client, people, upload_body(json.dumps({"fileName": name}).encode()))
    assert response.status_code == 200
    assert response.json["fileName"] == name
    ((_, stored_name, _, _, key),) = stored.rows()
    assert stored_name == name
    # the key is the store's own random token, nothing of the name
    assert STORAGE_KEY.fullmatch(key)
    assert list(stored.files()) == [key]
