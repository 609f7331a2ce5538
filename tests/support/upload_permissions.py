"""Uploads that the permissions plugins grant decide: the built-in plugin's permissions, an upload
as one of conftest's ``people``, and what a refused or an accepted one left stored."""
import falcon.testing

from affix.app import create_app
from support.bodies import upload_body
from support.defaults import FROZEN_NOW
from support.errors import MAY_NOT_UPLOAD, hal_error

BUILTIN_PERMISSIONS = frozenset(
    {"edit_work_packages", "add_work_packages", "edit_messages", "edit_wiki_pages"}
)
UPLOADED = b"minutes of the last meeting"
MISSING_PERMISSION = hal_error("MissingPermission", MAY_NOT_UPLOAD)


def post_upload(client, people, login):
    body, content_type = upload_body(file=UPLOADED)
    return client.simulate_post(
        "/api/v3/attachments", body=body,
        headers={**people.auth(login), "Content-Type": content_type},
    )


def assert_refused_and_nothing_stored(response, stored):
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json == MISSING_PERMISSION
    # no row, and no file anywhere under the blob root, staging included
    assert stored.snapshot() == ([], {})


def assert_accepted_and_stored(response, stored):
    assert response.status_code == 200
    assert response.json["fileName"] == "cat.png"
    [(attachment_id, file_name, size, _, storage_key)] = stored.rows()
    assert (attachment_id, file_name, size) == (response.json["id"], "cat.png", len(UPLOADED))
    assert stored.files() == {storage_key: UPLOADED}


def client_for(settings, plugin_manager=None):
    """A fresh app on the test's data dir; without a manager, the default one that loads
    every installed entry point."""
    return falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW)
    )
