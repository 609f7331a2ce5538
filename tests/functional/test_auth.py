"""Authentication by API key and the upload permission, through falcon.testing: who is refused
with which error, and that a refused upload stores nothing and never reads its body."""
import base64

import pytest

from support.bodies import UnreadBody, upload_body
from support.errors import (
    MAY_NOT_UPLOAD, UNAUTHENTICATED, WRONG_CREDENTIALS, assert_error, assert_unauthenticated,
)


def basic(credentials: bytes) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


# Requests on every kind of resource that needs a user; none of them reaches its responder.
PROTECTED = {
    "root": ("GET", "/api/v3"),
    "attachment": ("GET", "/api/v3/attachments/1"),
    "download": ("GET", "/api/v3/attachments/1/download"),
    "delete": ("DELETE", "/api/v3/attachments/1"),
    "user": ("GET", "/api/v3/users/1"),
    "upload": ("POST", "/api/v3/attachments"),
}


@pytest.mark.parametrize("method, path", PROTECTED.values(), ids=PROTECTED.keys())
def test_no_authorization_is_unauthenticated(client, earlier, stored, method, path):
    response = client.simulate_request(method, path)
    assert_unauthenticated(response, UNAUTHENTICATED)
    assert stored.snapshot() == earlier


# Authorization header values built from the users' real keys; each carries no usable key.
WRONG_AUTHORIZATIONS = {
    "basic with a wrong key": lambda keys: basic(b"apikey:wrong"),
    "bearer with a wrong key": lambda keys: {"Authorization": "Bearer wrong"},
    "basic with a login instead of apikey": lambda keys: basic(f"ada:{keys['ada']}".encode()),
    "basic with the key as user name": lambda keys: basic(f"{keys['ada']}:".encode()),
    "basic without a colon": lambda keys: basic(keys["ada"].encode()),
    "basic with an empty key": lambda keys: basic(b"apikey:"),
    "malformed base64": lambda keys: {"Authorization": "Basic not*base64!"},
    "base64 of non-UTF-8": lambda keys: basic(b"apikey:\xff\xfe"),
    "basic without credentials": lambda keys: {"Authorization": "Basic"},
    "bearer without a key": lambda keys: {"Authorization": "Bearer "},
    "unknown scheme with a valid key": lambda keys: {"Authorization": f"Token {keys['ada']}"},
}


@pytest.mark.parametrize(
    "authorization", WRONG_AUTHORIZATIONS.values(), ids=WRONG_AUTHORIZATIONS.keys()
)
def test_wrong_credentials_are_refused(client, people, authorization):
    response = client.simulate_get("/api/v3", headers=authorization(people.keys))
    assert_unauthenticated(response, WRONG_CREDENTIALS)


# The same key presented in each accepted way; schemes are case-insensitive (RFC 9110 11.1).
VALID_AUTHORIZATIONS = {
    "basic": lambda key: basic(f"apikey:{key}".encode()),
    "bearer": lambda key: {"Authorization": f"Bearer {key}"},
    "lower-case bearer": lambda key: {"Authorization": f"bearer {key}"},
}


@pytest.mark.parametrize(
    "authorization", VALID_AUTHORIZATIONS.values(), ids=VALID_AUTHORIZATIONS.keys()
)
def test_a_valid_key_identifies_its_user(client, people, authorization):
    response = client.simulate_get("/api/v3", headers=authorization(people.keys["bob"]))
    assert response.status_code == 200
    assert response.json["_links"]["user"] == {"href": "/api/v3/users/2", "title": "Bob Builder"}


@pytest.mark.parametrize(
    "authorization", VALID_AUTHORIZATIONS.values(), ids=VALID_AUTHORIZATIONS.keys()
)
def test_a_locked_users_valid_key_is_refused(client, people, authorization):
    people.add("lou", locked=True)
    response = client.simulate_get("/api/v3", headers=authorization(people.keys["lou"]))
    assert_unauthenticated(response, WRONG_CREDENTIALS)


def test_bearer_uploads_like_basic(client, people, stored):
    body, content_type = upload_body(file=b"bearer bytes")
    response = client.simulate_post(
        "/api/v3/attachments", body=body,
        headers={"Authorization": f"Bearer {people.keys['bob']}", "Content-Type": content_type},
    )
    assert response.status_code == 200
    assert response.json["_links"]["author"] == {"href": "/api/v3/users/2",
                                                 "title": "Bob Builder"}
    assert list(stored.files().values()) == [b"bearer bytes"]


def wrong_key(people):
    return basic(b"apikey:wrong")


def no_authorization(people):
    return {}


def locked_user(people):
    people.add("lou", locked=True)
    return people.auth("lou")


def user_without_upload_permission(people):
    return people.auth("eve")


def user_without_any_role(people):
    people.add("nora")
    return people.auth("nora")


REFUSED_UPLOADERS = {
    "no authorization": (no_authorization, 401, "Unauthenticated", UNAUTHENTICATED),
    "wrong key": (wrong_key, 401, "Unauthenticated", WRONG_CREDENTIALS),
    "locked user": (locked_user, 401, "Unauthenticated", WRONG_CREDENTIALS),
    "view permission only": (
        user_without_upload_permission, 403, "MissingPermission", MAY_NOT_UPLOAD),
    "no role at all": (user_without_any_role, 403, "MissingPermission", MAY_NOT_UPLOAD),
}


@pytest.mark.parametrize(
    "authorization, status, identifier, message",
    REFUSED_UPLOADERS.values(), ids=REFUSED_UPLOADERS.keys(),
)
def test_refused_upload_reads_no_body_and_stores_nothing(
        client, people, stored, earlier, authorization, status, identifier, message):
    # a real upload's headers, so only the refusal can explain why the body stays unread
    body, content_type = upload_body(file=b"never read")
    unread = UnreadBody()
    response = client.simulate_post(
        "/api/v3/attachments",
        headers={**authorization(people), "Content-Type": content_type,
                 "Content-Length": str(len(body))},
        extras={"wsgi.input": unread},
    )
    assert_error(response, status, identifier, message)
    assert unread.reads == []
    assert stored.snapshot() == earlier


def test_an_accepted_upload_does_read_the_probe_body(client, people, stored, earlier):
    # the control for the test above: the probe really is the body the app would read
    body, content_type = upload_body()
    unread = UnreadBody()
    response = client.simulate_post(
        "/api/v3/attachments",
        headers={**people.auth("bob"), "Content-Type": content_type,
                 "Content-Length": str(len(body))},
        extras={"wsgi.input": unread},
    )
    assert response.status_code == 400
    assert unread.reads != []
    assert stored.snapshot() == earlier
