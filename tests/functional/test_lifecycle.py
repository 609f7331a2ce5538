"""The attachment lifecycle as OpenProject defines it: who may see, download, claim and delete
an attachment in each status, with virus scanning on; quarantine for admins; ``affix cleanup``
and ``affix gc`` beside the statuses.

Statuses are set in the database here: system/test_clamav.py makes them with a real clamd, and
system/test_lifecycle_s3.py checks quarantine on S3."""
import json

import falcon.testing
import pytest

from affix.app import create_app
from affix.plugins.clamav import ScanOptions
from support.cli import affix
from support.client import download, get, uploaded
from support.defaults import FROZEN_NOW
from support.errors import NO_SUCH_ATTACHMENT, assert_error
from support.state import containers
from support.statuses import NO_CLAMD, QUARANTINED, set_status
from support.webhooks import outbox, outbox_entries, subscribe
from support.work_packages import created, link, patch

NOT_SCANNED = ("The file {} has not been scanned for viruses yet: until then, only its author "
               "may download it.")
NOT_UPLOADED = "The file has not been uploaded yet."


@pytest.fixture
def settings(tmp_path, databases):
    return databases.settings(tmp_path / "data",
                              scan=ScanOptions(mode="after", clamd=NO_CLAMD))


@pytest.fixture(autouse=True)
def walt(people):
    """Beyond conftest's ada (admin) and eve (who may view work packages): Walt, who may
    upload and create work packages in the same project."""
    return people.add("walt", name="Walt Writer", permissions=[
        "view_work_packages", "add_work_packages", "edit_work_packages"])


@pytest.fixture
def in_work_package(client, people):
    """An attachment of Walt's, claimed for a work package Eve may see."""
    attachment_id = uploaded(client, people, "walt", name="report.pdf", content=b"%PDF-1.4 x")
    work_package = created(client, people, "walt", attachment_ids=[attachment_id])
    return attachment_id, work_package


# --- who may download --------------------------------------------------------------------------

@pytest.mark.parametrize("status, author, other, admin", [
    ("uploaded", 200, 403, 403),
    ("scanned", 200, 200, 200),
    ("rescan", 200, 200, 200),
    ("quarantined", 403, 403, 403),
])
def test_who_may_download_in_each_status(
        client, people, catalog, in_work_package, status, author, other, admin):
    attachment_id, _ = in_work_package
    set_status(catalog, attachment_id, status)

    answers = {login: download(client, people, login, attachment_id)
               for login in ("walt", "eve", "ada")}

    assert {login: answer.status_code for login, answer in answers.items()} == {
        "walt": author, "eve": other, "ada": admin}
    messages = {"uploaded": NOT_SCANNED, "quarantined": QUARANTINED}
    for answer in answers.values():
        if answer.status_code == 403:
            assert_error(answer, 403, "MissingPermission",
                         messages[status].format("report.pdf"))
        else:
            assert answer.content == b"%PDF-1.4 x"


def test_an_uploaded_attachment_is_everybodys_to_download_with_scanning_off(
        tmp_path, databases, people, plugin_manager):
    settings = databases.settings(tmp_path / "data")
    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    attachment_id = uploaded(client, people, "walt", content=b"no scanner")
    created(client, people, "walt", attachment_ids=[attachment_id])

    assert download(client, people, "eve", attachment_id).content == b"no scanner"


@pytest.mark.parametrize("status", ["uploaded", "scanned", "quarantined", "rescan"])
def test_every_stored_status_stays_listed_in_its_container(
        client, people, catalog, in_work_package, status):
    attachment_id, work_package = in_work_package
    set_status(catalog, attachment_id, status)

    listed = get(client, people, "eve", f"/api/v3/work_packages/{work_package}/attachments")
    shown = get(client, people, "eve", f"/api/v3/attachments/{attachment_id}")

    assert [each["status"] for each in listed.json["_embedded"]["elements"]] == [status]
    assert (shown.status_code, shown.json["status"]) == (200, status)


# --- prepared ----------------------------------------------------------------------------------

def test_a_prepared_attachment_is_its_authors_alone_and_has_nothing_to_download(
        client, people, catalog, in_work_package):
    attachment_id, _ = in_work_package
    set_status(catalog, attachment_id, "prepared")

    assert get(client, people, "walt", f"/api/v3/attachments/{attachment_id}").json[
        "status"] == "prepared"
    for login in ("eve", "ada"):
        assert_error(get(client, people, login, f"/api/v3/attachments/{attachment_id}"),
                     404, "NotFound", NO_SUCH_ATTACHMENT)
    assert_error(download(client, people, "walt", attachment_id), 404, "NotFound", NOT_UPLOADED)


# --- claiming ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status, message", [
    ("quarantined", "Attachments in quarantine cannot be claimed."),
    ("prepared", "Attachments still being uploaded cannot be claimed."),
])
def test_an_attachment_in_quarantine_or_not_uploaded_cannot_be_claimed(
        client, people, catalog, status, message):
    attachment_id = uploaded(client, people, "walt", content=b"unclaimable")
    work_package = created(client, people, "walt")
    set_status(catalog, attachment_id, status)

    response = patch(client, people, "walt", work_package,
                     {"_links": {"attachments": [link(attachment_id)]}})

    assert_error(response, 422, "PropertyConstraintViolation", message, "attachments")
    assert containers(catalog) == {attachment_id: (None, None)}


@pytest.mark.parametrize("status", ["uploaded", "scanned", "rescan"])
def test_an_attachment_waiting_for_or_past_its_scan_can_be_claimed(
        client, people, catalog, status):
    attachment_id = uploaded(client, people, "walt", content=b"claimable")
    set_status(catalog, attachment_id, status)

    work_package = created(client, people, "walt", attachment_ids=[attachment_id])

    assert containers(catalog) == {attachment_id: ("WorkPackage", work_package)}


# --- quarantine: admins see and delete ---------------------------------------------------------

def test_admins_see_and_delete_a_quarantined_upload_of_anybody(
        client, people, catalog, stored):
    attachment_id = uploaded(client, people, "walt", name="bad.exe", content=b"malware")
    set_status(catalog, attachment_id, "quarantined", "Some.Signature")

    assert_error(get(client, people, "eve", f"/api/v3/attachments/{attachment_id}"),
                 404, "NotFound", NO_SUCH_ATTACHMENT)
    shown = get(client, people, "ada", f"/api/v3/attachments/{attachment_id}")
    assert (shown.status_code, shown.json["status"]) == (200, "quarantined")
    assert "delete" in shown.json["_links"]
    deleted = client.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                     headers=people.auth("ada"))

    assert deleted.status_code == 204
    assert stored.snapshot() == ([], {})


@pytest.mark.parametrize("login, deleted", [("eve", 403), ("walt", 204), ("ada", 204)])
def test_a_quarantined_attachment_in_a_container_is_deleted_by_who_may_delete_there(
        client, people, catalog, stored, in_work_package, login, deleted):
    attachment_id, _ = in_work_package
    set_status(catalog, attachment_id, "quarantined", "Some.Signature")
    before = stored.snapshot()

    response = client.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                      headers=people.auth(login))

    if deleted == 403:
        assert_error(response, 403, "MissingPermission",
                     "You are not allowed to delete this attachment. Missing permission: "
                     "edit_work_packages.")
        assert stored.snapshot() == before
    else:
        assert response.status_code == 204
        assert stored.snapshot() == ([], {})


@pytest.mark.parametrize("container_type, container_id", [
    # a plugin's type, the plugin uninstalled since
    ("Meeting", None),
    # a container deleted without its attachments, as a plugin's may be
    ("WorkPackage", 999999),
])
def test_admins_see_a_quarantined_attachment_whose_container_is_gone_without_a_link_to_it(
        client, people, catalog, in_work_package, container_type, container_id):
    attachment_id, work_package_id = in_work_package
    set_status(catalog, attachment_id, "quarantined", "Some.Signature")
    with catalog.database.connection_context():
        catalog.Attachment.update(
            container_type=container_type, container_id=container_id or work_package_id,
        ).where(catalog.Attachment.id == attachment_id).execute()

    shown = get(client, people, "ada", f"/api/v3/attachments/{attachment_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json["_links"]["container"] == {"href": None}
    assert "delete" in shown.json["_links"]
    # nobody can tell who else may see it
    assert_error(get(client, people, "walt", f"/api/v3/attachments/{attachment_id}"),
                 404, "NotFound", NO_SUCH_ATTACHMENT)


def test_a_containerless_upload_of_another_user_stays_hidden_from_admins_unless_quarantined(
        client, people, catalog):
    attachment_id = uploaded(client, people, "walt", content=b"walt's own")

    assert_error(get(client, people, "ada", f"/api/v3/attachments/{attachment_id}"),
                 404, "NotFound", NO_SUCH_ATTACHMENT)


def test_affix_quarantine_delete_refuses_ids_that_are_not_quarantined(
        client, people, catalog, environ, stored, capsys):
    kept = uploaded(client, people, "walt", content=b"fine")
    bad = uploaded(client, people, "walt", name="bad.exe", content=b"bad")
    set_status(catalog, bad, "quarantined", "Some.Signature")
    subscription = subscribe(catalog, "http://127.0.0.1:9/hooks", ["attachment.deleted"],
                             FROZEN_NOW)
    before = stored.snapshot()

    assert affix(environ, "quarantine", "delete", str(kept), str(bad)) == (1, "")
    assert capsys.readouterr().err == (
        f"affix: error: no quarantined attachment with the id {kept}\n")
    assert stored.snapshot() == before
    assert affix(environ, "quarantine", "delete") == (1, "")
    assert capsys.readouterr().err == (
        "affix: error: name the ids of the attachments to delete, or --all\n")
    assert affix(environ, "quarantine", "delete", "--all") == (
        0, f"deleted attachment {bad} (bad.exe)\ndeleted 1 quarantined attachment\n")
    assert [row[0] for row in stored.rows()] == [kept]
    # written with the deletion; nobody's change but the command line's
    assert outbox(catalog) == [(subscription, "attachment.deleted", bad, False)]
    assert json.loads(outbox_entries(catalog)[0].body)["userId"] is None


# --- cleanup and gc ----------------------------------------------------------------------------

def test_affix_cleanup_keeps_quarantined_uploads_for_an_admin_and_prepared_ones(
        client, people, catalog, environ, stored):
    ids = {status: uploaded(client, people, "walt", name=f"{status}.txt", content=status.encode())
           for status in ("prepared", "uploaded", "scanned", "quarantined", "rescan")}
    for status, attachment_id in ids.items():
        set_status(catalog, attachment_id, status)

    status, out = affix(environ, "cleanup")

    # the app's clock dates every upload in 2014: all are past the grace period; a prepared
    # direct upload goes when its form expires (tests/system/test_direct_uploads.py), not here
    assert (status, out) == (0, "removed 3 unclaimed attachments older than 180 minutes\n"
                                "removed 0 resumable uploads left unfinished past "
                                "Upload-Expires\n")
    assert sorted(row[0] for row in stored.rows()) == [ids["prepared"], ids["quarantined"]]
    assert sorted(stored.files().values()) == [b"prepared", b"quarantined"]


def test_affix_gc_keeps_the_bytes_of_every_status(client, people, catalog, environ, stored):
    for status in ("prepared", "uploaded", "scanned", "quarantined", "rescan"):
        set_status(catalog, uploaded(client, people, "walt", content=status.encode()), status)
    before = stored.snapshot()

    assert affix(environ, "gc", "--min-age", "0") == (
        0, "removed 0 blobs without an attachment, older than 0 minutes\n")
    assert stored.snapshot() == before
