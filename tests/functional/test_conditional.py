"""Conditional downloads: the md5 is the bytes' entity tag and the upload time their last
modification; If-None-Match and If-Modified-Since answer 304, If-Range holds a range to the
bytes it names; nothing is ever for a shared cache."""
import hashlib
import json

import pytest

from support.bodies import upload_body
from support.content import png_bytes

CONTENT = png_bytes(4, 4)
TAG = f'"{hashlib.md5(CONTENT).hexdigest()}"'
# support.defaults.FROZEN_NOW, as an HTTP date
UPLOADED = "Wed, 21 May 2014 08:51:20 GMT"
BEFORE = "Wed, 21 May 2014 08:51:19 GMT"
AFTER = "Wed, 21 May 2014 08:51:21 GMT"


@pytest.fixture
def content_path(client, people):
    body, content_type = upload_body(json.dumps({"fileName": "cat.png"}).encode(), CONTENT)
    response = client.simulate_post("/api/v3/attachments", body=body, headers={
        **people.auth("bob"), "Content-Type": content_type})
    assert response.status_code == 200
    return f"/api/v3/attachments/{response.json['id']}/content"


def download(client, people, path, **headers):
    return client.simulate_get(path, headers={**people.auth("bob"), **headers})


def test_a_download_carries_its_validators_and_is_private(client, people, content_path):
    response = download(client, people, content_path)

    assert response.status_code == 200
    assert response.content == CONTENT
    assert (response.headers["etag"], response.headers["last-modified"]) == (TAG, UPLOADED)
    assert response.headers["cache-control"] == "private"


@pytest.mark.parametrize("headers, status", [
    ({"If-None-Match": TAG}, 304),
    ({"If-None-Match": f"W/{TAG}"}, 304),
    ({"If-None-Match": f'"other", {TAG}'}, 304),
    ({"If-None-Match": "*"}, 304),
    ({"If-None-Match": '"other"'}, 200),
    ({"If-Modified-Since": UPLOADED}, 304),
    ({"If-Modified-Since": AFTER}, 304),
    ({"If-Modified-Since": BEFORE}, 200),
    # If-None-Match decides when both are sent, even one whose tags cannot be read
    ({"If-None-Match": '"other"', "If-Modified-Since": AFTER}, 200),
    ({"If-None-Match": "unquoted", "If-Modified-Since": AFTER}, 200),
    # an invalid date is ignored (RFC 9110, 13.1.3), a list of dates too: the whole file
    ({"If-Modified-Since": "not a date"}, 200),
    ({"If-Modified-Since": f"{UPLOADED}, {AFTER}"}, 200),
    ({"If-Modified-Since": "Wed, 21 May 2014 25:61:20 GMT"}, 200),
    ({"If-Modified-Since": ""}, 200),
    ({"If-Modified-Since": "9" * 5000}, 200),
], ids=["tag", "weak tag", "one of tags", "any", "other tag", "same date", "later date",
        "earlier date", "tag over date", "unreadable tag over date", "invalid date",
        "list of dates", "impossible time", "empty date", "5000 digits"])
def test_a_current_copy_is_304_without_a_body(client, people, content_path, headers, status):
    response = download(client, people, content_path, **headers)

    assert response.status_code == status
    assert response.content == (b"" if status == 304 else CONTENT)
    assert response.headers["etag"] == TAG


@pytest.mark.parametrize("if_range, status, content", [
    (None, 206, CONTENT[1:5]),
    (TAG, 206, CONTENT[1:5]),
    (UPLOADED, 206, CONTENT[1:5]),
    ('"other"', 200, CONTENT),
    (f"W/{TAG}", 200, CONTENT),
    (BEFORE, 200, CONTENT),
    ("not a date", 200, CONTENT),
], ids=["no if-range", "same tag", "same date", "other tag", "weak tag", "other date",
        "unreadable"])
def test_if_range_holds_a_range_to_the_bytes_it_names(client, people, content_path, if_range,
                                                      status, content):
    headers = {"Range": "bytes=1-4"}
    if if_range is not None:
        headers["If-Range"] = if_range

    response = download(client, people, content_path, **headers)

    assert (response.status_code, response.content) == (status, content)
