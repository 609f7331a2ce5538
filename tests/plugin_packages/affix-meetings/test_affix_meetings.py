"""affix-meetings' own tests, written as any plugin's can be: with the ``affix_*`` fixtures that
come with affix (pytest finds them once affix is installed), and nothing of affix imported.

``affix_plugins`` names this plugin; ``affix_client`` is then an affix app with it registered,
on a fresh data dir of each test's own.
"""
from pathlib import Path

import pytest

import affix_meetings

EDIT_MEETINGS = "edit_meetings"
# the first bytes of a Windows program (a DOS header)
DOS_PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48)


@pytest.fixture
def affix_plugins():
    return [affix_meetings]


@pytest.fixture
def carol(affix_users):
    """A member of the project "demo" whose one permission is editing meetings."""
    affix_users.add("carol", permissions=[EDIT_MEETINGS])
    return affix_users.auth("carol")


@pytest.fixture
def meeting(affix_catalog, carol):
    """A meeting in carol's project, in the plugin's own table."""
    Meeting = affix_meetings.define_meeting_model(affix_catalog)
    with affix_catalog.database.connection_context():
        project = affix_catalog.Project.get(affix_catalog.Project.identifier == "demo")
        return Meeting.create(project=project, title="Sprint review")


def stored(catalog, settings):
    """(attachment rows, files under the blob folder): what affix keeps."""
    with catalog.database.connection_context():
        rows = [(a.file_name, a.container_type, a.container_id)
                for a in catalog.Attachment.select()]
    blobs = sorted(path for path in Path(settings.storage_url).rglob("*") if path.is_file())
    return rows, blobs


def test_a_meeting_editor_uploads_into_a_meeting(
        affix_client, affix_upload, affix_catalog, affix_settings, carol, meeting):
    attachments = f"/api/v3/meetings/{meeting.id}/attachments"

    response = affix_upload(affix_client, carol, "agenda.txt", b"1. Welcome\n", path=attachments)

    assert response.status_code == 200, response.json
    assert response.json["_links"]["container"] == {
        "href": f"/api/v3/meetings/{meeting.id}", "title": "Sprint review"}
    listed = affix_client.simulate_get(attachments, headers=carol)
    assert [element["id"] for element in listed.json["_embedded"]["elements"]] == [
        response.json["id"]]
    rows, blobs = stored(affix_catalog, affix_settings)
    assert rows == [("agenda.txt", "Meeting", meeting.id)]
    assert [blob.read_bytes() for blob in blobs] == [b"1. Welcome\n"]


@pytest.mark.parametrize("file_name, content", [
    ("setup.exe", b"@echo off\n"),
    ("minutes.txt", DOS_PROGRAM),
])
def test_an_executable_is_refused_and_nothing_is_stored(
        affix_client, affix_upload, affix_catalog, affix_settings, carol, file_name, content):
    response = affix_upload(affix_client, carol, file_name, content)

    assert response.status_code == 422
    assert response.json["message"] == affix_meetings.NO_EXECUTABLES
    assert response.json["_embedded"]["details"] == {"attribute": "file"}
    assert stored(affix_catalog, affix_settings) == ([], [])
