"""The pytest fixtures affix ships for plugin authors (``affix.app.testing``, loaded through
affix's ``pytest11`` entry point), used here as a plugin's own tests use them: by name, the
plugin named in ``affix_plugins``. system/test_meetings_plugin.py runs a real plugin package's
tests with them in that package's own environment."""
from pathlib import Path

import pluggy
import pytest

hookimpl = pluggy.HookimplMarker("affix")

MINUTES = b"minutes of the last meeting"


class Minutes:
    """Editing minutes authorises uploads."""

    @hookimpl
    def affix_upload_permissions(self):
        return ["edit_minutes"]


@pytest.fixture
def affix_plugins():
    return [Minutes()]


def blobs(settings) -> list:
    """The bytes of every file in the blob folder, staging included."""
    return sorted(path.read_bytes() for path in Path(settings.storage_url).rglob("*")
                  if path.is_file())


def test_a_member_with_the_plugins_permission_uploads(
        affix_client, affix_users, affix_upload, affix_catalog, affix_settings):
    affix_users.add("mia", permissions=["edit_minutes"])

    response = affix_upload(affix_client, affix_users.auth("mia"), "minutes.txt", MINUTES)

    assert response.status_code == 200, response.json
    assert (response.json["fileName"], response.json["fileSize"]) == ("minutes.txt", len(MINUTES))
    assert response.json["_links"]["author"] == {"href": "/api/v3/users/1", "title": "Mia"}
    with affix_catalog.database.connection_context():
        assert [(a.file_name, a.author.login) for a in affix_catalog.Attachment.select()] == [
            ("minutes.txt", "mia")]
    assert blobs(affix_settings) == [MINUTES]


@pytest.mark.parametrize("affix_plugins", [[]], ids=["no plugin"])
def test_without_the_plugin_its_permission_authorises_nothing(
        affix_client, affix_users, affix_upload, affix_settings):
    affix_users.add("mia", permissions=["edit_minutes"])

    response = affix_upload(affix_client, affix_users.auth("mia"), "minutes.txt", MINUTES)

    assert response.status_code == 403
    assert response.json["errorIdentifier"].endswith(":MissingPermission")
    assert blobs(affix_settings) == []


def test_users_are_members_of_the_project_they_are_added_to(affix_users, affix_catalog):
    affix_users.add("ada", admin=True)
    affix_users.add("olga", permissions=["view_work_packages"], project="ops")

    with affix_catalog.database.connection_context():
        assert [(m.user.login, m.project.identifier, m.project.name)
                for m in affix_catalog.Membership.select()] == [("olga", "ops", "Ops")]
    assert set(affix_users.auth("ada")) == {"Authorization"}
