"""The embedding guide's host (docs/examples/embedding/host.py), run as it stands: affix mounted
at /files inside a host site, the host's session cookie naming the user."""
import runpy

import falcon.testing
import pytest

from affix.app import open_catalog
from affix.app.settings import Settings
from affix.app.testing import upload
from affix.storage.database import release_connections
from support.content import md5
from support.errors import assert_error
from support.processes import REPO_ROOT
from support.state import Stored

HOST = REPO_ROOT / "docs" / "examples" / "embedding" / "host.py"
SESSION = {"Cookie": "session=secret-cookie"}


@pytest.fixture
def host(tmp_path, monkeypatch):
    """(a client of the host's ``application``, affix's settings in it)."""
    monkeypatch.setenv("HOST_AFFIX_DATA_DIR", str(tmp_path / "affix"))
    application = runpy.run_path(str(HOST))["application"]
    yield falcon.testing.TestClient(application), Settings.for_data_dir(tmp_path / "affix")


@pytest.mark.sqlite_only("the example runs affix on its embedded defaults")
def test_the_host_serves_its_own_pages_and_mounts_affix_at_files(host):
    client, _ = host

    page = client.simulate_get("/")
    root = client.simulate_get("/files/api/v3", headers=SESSION)
    nobody = client.simulate_get("/files/api/v3")

    assert (page.status_code, page.text) == (200, "the host's own pages")
    assert root.status_code == 200, root.text
    assert root.json["_links"]["user"] == {"href": "/files/api/v3/users/1", "title": "ada"}
    assert_error(nobody, 401, "Unauthenticated",
                 "You need to be authenticated to access this resource.")


@pytest.mark.sqlite_only("the example runs affix on its embedded defaults")
def test_the_session_s_user_uploads_through_the_mount_and_every_link_carries_it(host):
    client, settings = host
    assert client.simulate_get("/files/api/v3", headers=SESSION).status_code == 200
    catalog = open_catalog(settings)
    try:
        with catalog.database.connection_context():
            # ada was made on first sight, without a role: an admin may upload anyway
            catalog.User.update(admin=True).execute()

        response = upload(client, SESSION, "notes.txt", b"hello", path="/files/api/v3/attachments")

        assert response.status_code == 200, response.text
        assert response.json["_links"]["self"]["href"] == "/files/api/v3/attachments/1"
        assert response.json["_links"]["downloadLocation"] == {
            "href": "/files/api/v3/attachments/1/download"}
        stored = Stored(catalog, settings.data_dir / "blobs")
        [(attachment_id, name, size, digest, key)] = stored.rows()
        assert (attachment_id, name, size, digest) == (1, "notes.txt", 5, md5(b"hello"))
        assert stored.files() == {key: b"hello"}
    finally:
        release_connections(catalog.database)
