"""Which users may upload is decided by plugins: the built-in one, one registered in-process, and
a real third-party distribution that pip installs and affix finds through its entry point."""
import subprocess
import sys

import falcon.testing
import pytest

from affix.app import create_app
from affix.plugins import hookimpl
from affix.plugins.manager import create_plugin_manager, upload_permissions
from support.bodies import upload_body
from support.defaults import FROZEN_NOW
from support.errors import NOT_AUTHORIZED, hal_error
from support.plugin_packages import meetings_source_copy

BUILTIN_PERMISSIONS = frozenset(
    {"edit_work_packages", "add_work_packages", "edit_messages", "edit_wiki_pages"}
)
MEETINGS_MODULE = "affix_meetings"
UPLOADED = b"minutes of the last meeting"
MISSING_PERMISSION = hal_error("MissingPermission", NOT_AUTHORIZED)


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


class MeetingsAndDocuments:
    """A plugin registered in-process, as a test or an embedding application would."""

    @hookimpl
    def affix_upload_permissions(self):
        return ["edit_meetings", "edit_documents"]


def test_builtin_plugin_alone_authorises_the_four_core_permissions():
    manager = create_plugin_manager(load_entry_points=False)
    assert upload_permissions(manager) == BUILTIN_PERMISSIONS


def test_registered_plugin_adds_its_permissions_to_the_builtin_ones():
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(MeetingsAndDocuments())
    assert upload_permissions(manager) == BUILTIN_PERMISSIONS | {"edit_meetings", "edit_documents"}


def test_user_who_may_only_view_is_refused(client, people, stored):
    assert_refused_and_nothing_stored(post_upload(client, people, "eve"), stored)


@pytest.mark.parametrize("permission", sorted(BUILTIN_PERMISSIONS))
def test_each_builtin_permission_authorises_an_upload(client, people, stored, permission):
    people.add("member", permissions=[permission])
    assert_accepted_and_stored(post_upload(client, people, "member"), stored)


def test_admin_without_any_membership_may_upload(client, people, stored):
    people.add("root", admin=True)
    assert_accepted_and_stored(post_upload(client, people, "root"), stored)


def test_permission_of_a_registered_plugin_authorises_an_upload(settings, people, stored):
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(MeetingsAndDocuments())
    people.add("mia", permissions=["edit_documents"])
    assert_accepted_and_stored(post_upload(client_for(settings, manager), people, "mia"), stored)


@pytest.fixture(scope="session")
def meetings_target(tmp_path_factory):
    """A folder into which pip has installed the affix-meetings distribution, and which is on
    no import path until a test puts it there."""
    source = meetings_source_copy(tmp_path_factory)
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, f"pip failed:\n{result.stdout}\n{result.stderr}"
    return target


@pytest.fixture
def meetings_on_sys_path(monkeypatch, meetings_target):
    monkeypatch.syspath_prepend(str(meetings_target))
    yield meetings_target
    # entry-point loading imported the plugin; later tests must not find it already imported
    sys.modules.pop(MEETINGS_MODULE, None)


@pytest.mark.system  # pip installs the package in a subprocess
def test_installed_plugin_off_the_import_path_authorises_nothing(
        meetings_target, settings, people, stored):
    assert str(meetings_target) not in sys.path
    people.add("mia", permissions=["edit_meetings"])
    assert_refused_and_nothing_stored(post_upload(client_for(settings), people, "mia"), stored)


@pytest.mark.system  # pip installs the package in a subprocess
def test_installed_plugin_is_loaded_through_its_entry_point(
        meetings_on_sys_path, settings, people, stored):
    people.add("mia", permissions=["edit_meetings"])
    assert_accepted_and_stored(post_upload(client_for(settings), people, "mia"), stored)

    manager = create_plugin_manager()
    # found as the distribution declares it: its entry-point name, its project name
    plugin = manager.get_plugin("meetings")
    assert plugin is sys.modules[MEETINGS_MODULE]
    assert manager.origins["meetings"] == ("affix-meetings", "0.2.0")
    assert upload_permissions(manager) == BUILTIN_PERMISSIONS | {"edit_meetings"}
