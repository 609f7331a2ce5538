"""Real OpenProject clients from PyPI, unmodified, against a real affix server (gunicorn), on
SQLite and PostgreSQL: their attachment flows work as against OpenProject, and each step leaves
exactly the rows and blobs it should. Versions are pinned in pyproject.toml's ``test`` extra
(openproject-cli) and in support/openproject_clients.py (pyopenproject, in an environment of its
own: its pins do not fit the test environment's).

Every request each flow makes, read from the clients' sources. Both authenticate with HTTP Basic
``apikey:<key>``.

pyopenproject 0.7.4 (requests; a new session per request; GETs carry
``Content-Type: application/hal+json``; any HTTP error, or a 2xx whose body is a HAL ``Error``,
raises its BusinessError):

- ``attachment.create(name, description, path)``: ``POST /api/v3/attachments``, multipart with
  the ``file`` part first (filename "attachment", no Content-Type), then ``metadata``
  (``{"fileName", "description": {"raw"}}``, no Content-Type) -> 200 Attachment
- ``work_package.create_form()``: ``POST /api/v3/work_packages/form``, Content-Type
  application/hal+json, no body -> Form; the client's own usage takes ``_embedded.payload`` and
  sets ``_links.project.href`` and ``_links.type.href`` in it
- ``project.find_all()``: ``GET /api/v3/projects``; ``type.find_all()``: ``GET /api/v3/types``;
  every list follows ``_links.nextByOffset.href`` (a path, appended to the base URL) to the end
- ``work_package.create(wp)``: ``POST /api/v3/work_packages/`` (a trailing slash), the model's
  fields as JSON -> 201 WorkPackage
- ``work_package.find(wp)``: ``GET /api/v3/work_packages//{id}`` (two slashes)
- ``work_package.find_attachments(wp)``: ``GET /api/v3/work_packages//{id}/attachments``
- ``work_package.update(wp)``: ``PATCH /api/v3/work_packages/{id}``, the model's fields
  (``id``, ``lockVersion``, the changes) as JSON
- ``work_package.find_all(filters, sort_by)``:
  ``GET /api/v3/work_packages/?filters=[...]&sortBy=...`` (the filter JSON written into the URL
  unquoted; requests quotes it); without filters, ``GET /api/v3/work_packages/``
- ``attachment.download_by_context(att, folder)``: ``GET`` the attachment's
  ``_links.downloadLocation.href``; writes the body to ``folder/fileName``
- ``work_package.add_attachment(wp, att)``: ``POST /api/v3/work_packages//{id}/attachments``
  with the attachment's fields as JSON
- ``work_package.delete(wp)``: ``DELETE /api/v3/work_packages/{id}``, Content-Type
  application/json;charset=utf-8 -> 204
- ``configuration.find()``: ``GET /api/v3/configuration``

openproject-cli 0.4.0 (httpx; ``Accept: application/json``; follows no redirect; lists walk pages
with ``offset`` as the page number from 1):

- ``auth login --url URL --with-token --insecure-storage``: no request; writes the config file
- ``wp create --project demo --type Task --subject S``: ``GET /api/v3/projects/demo`` (the
  identifier), ``GET /api/v3/types?pageSize=200&offset=1`` (and on until ``total``), then
  ``POST /api/v3/work_packages`` with ``{"subject", "_links": {"project": {"href":
  "/api/v3/projects/<id>"}, "type": {"href": "/api/v3/types/<id>"}}}``
- ``wp get ID``: ``GET /api/v3/work_packages/ID``
- ``wp update ID --subject S``: ``GET /api/v3/work_packages/ID`` for its lockVersion, then
  ``PATCH /api/v3/work_packages/ID`` with ``{"subject", "lockVersion"}``
- ``wp list --project demo --subject S``: ``GET /api/v3/projects/demo``, then
  ``GET /api/v3/work_packages?offset=1&filters=[{"project_id": {"operator": "=", "values":
  ["<id>"]}}, {"subject": {"operator": "~", "values": ["S"]}}]``
- ``attachment upload --work-package ID FILE``: ``POST /api/v3/work_packages/ID/attachments``,
  multipart: ``metadata`` (application/json) first, then ``file`` (its type guessed from the name)
- ``attachment list --work-package ID``: ``GET /api/v3/work_packages/ID/attachments?offset=1``
- ``attachment download ID --output PATH``: ``GET /api/v3/attachments/ID/content``
- ``attachment delete ID``: ``DELETE /api/v3/attachments/ID`` with Content-Type application/json
- ``wp delete ID``: ``DELETE /api/v3/work_packages/ID`` with Content-Type application/json
"""
import hashlib
import json

import pytest

from affix.app.testing import People
from support.content import md5, png_bytes, random_bytes
from support.errors import hal_error
from support.openproject_clients import (
    Model, OpenProjectCli, PyOpenProject, filters, require_pyopenproject_environment,
)
from support.servers import HIGH_LIMIT
from support.state import containers, work_packages

pytestmark = pytest.mark.system

CLIENT_LOGIN = "carol"
CLIENT_NAME = "Carol Client"
# what a user needs to create, change and delete work packages with their attachments
CLIENT_PERMISSIONS = ["view_work_packages", "add_work_packages", "edit_work_packages",
                      "delete_work_packages"]
PROJECT = "demo"


def member_key(server, login, permissions, name=None) -> str:
    """The API key of a new member of the project ``demo`` (not an admin) with a role holding
    ``permissions``."""
    people = People(server.stored.catalog)
    people.add(login, name=name, permissions=permissions, project=PROJECT)
    return people.keys[login]


@pytest.fixture
def api_key(server):
    return member_key(server, CLIENT_LOGIN, CLIENT_PERMISSIONS, name=CLIENT_NAME)


@pytest.fixture
def project_id(server, api_key):
    catalog = server.stored.catalog
    with catalog.database.connection_context():
        return catalog.Project.get(catalog.Project.identifier == PROJECT).id


def wp_href(work_package_id) -> str:
    return f"/api/v3/work_packages/{work_package_id}"


def attachment_href(attachment_id) -> str:
    return f"/api/v3/attachments/{attachment_id}"


def error_body(answer) -> dict:
    """The HAL error a pyopenproject call raised on."""
    assert "raised" in answer, answer
    return json.loads(answer["body"])


# --- pyopenproject --------------------------------------------------------------------------

@pytest.fixture
def pyopenproject(server, api_key):
    require_pyopenproject_environment()
    return PyOpenProject(server.url(""), api_key)


def pyopenproject_upload(pyopenproject, path, description) -> dict:
    """An upload without a container through pyopenproject's attachment service, checked."""
    content = path.read_bytes()
    uploaded = pyopenproject.returned("attachment", "create", path.name, description, str(path))
    assert (uploaded["fileName"], uploaded["fileSize"], uploaded["contentType"],
            uploaded["digest"], uploaded["description"]["raw"],
            uploaded["_links"]["container"]) == (
        path.name, len(content), "image/png", {"algorithm": "md5", "hash": md5(content)},
        description, {"href": None})
    return uploaded


def project_and_task(pyopenproject, project_id) -> tuple:
    """The hrefs of the project ``demo`` and of the type Task, as pyopenproject lists them."""
    projects = pyopenproject.returned("project", "find_all")
    assert [(p["id"], p["identifier"]) for p in projects] == [(project_id, PROJECT)]
    task = next(t for t in pyopenproject.returned("type", "find_all") if t["name"] == "Task")
    return projects[0]["_links"]["self"]["href"], task["_links"]["self"]["href"]


def test_pyopenproject_creates_through_the_form(server, pyopenproject, project_id, tmp_path):
    """The client's own way to a new work package (its tests do this against OpenProject): the
    form, asked for with no body, then its payload with a project and a type filled in.
    OpenProject answers that request with a Form whose payload's _links hold "project" and
    "type" with null hrefs (recorded in the client's tests/data/work_package_form.json)."""
    stored = server.stored
    (tmp_path / "roof.png").write_bytes(png_bytes(3, 2))
    upload = pyopenproject_upload(pyopenproject, tmp_path / "roof.png", "The roof")
    project_href, task_href = project_and_task(pyopenproject, project_id)

    form = pyopenproject.returned("work_package", "create_form")
    assert form["_type"] == "Form"
    payload = form["_embedded"]["payload"]
    assert payload["_links"]["project"] == {"href": None}
    payload["subject"] = "Fix the roof"
    payload["_links"]["project"]["href"] = project_href
    payload["_links"]["type"]["href"] = task_href
    payload["_links"]["attachments"] = [{"href": upload["_links"]["self"]["href"]}]
    created = pyopenproject.returned("work_package", "create", Model("WorkPackage", **payload))
    assert (created["subject"], created["_links"]["project"]["href"],
            created["_links"]["type"]) == (
        "Fix the roof", project_href, {"href": task_href, "title": "Task"})
    assert work_packages(stored.catalog) == [
        (created["id"], "Fix the roof", project_id, stored_user_id(stored, CLIENT_LOGIN))]
    assert containers(stored.catalog) == {upload["id"]: ("WorkPackage", created["id"])}


@pytest.mark.one_database("what a real client sends and reads, the same on both")
def test_pyopenproject_work_package_flow(server, pyopenproject, project_id, tmp_path):
    """Upload, create a work package claiming the upload, find it, list its attachments, claim
    another with update, download them, and delete it all."""
    stored = server.stored
    roof, gutter = png_bytes(3, 2), png_bytes(5, 4)
    (tmp_path / "roof.png").write_bytes(roof)
    (tmp_path / "gutter.png").write_bytes(gutter)

    configuration = pyopenproject.returned("configuration", "find")
    assert configuration["maximumAttachmentFileSize"] == HIGH_LIMIT

    first = pyopenproject_upload(pyopenproject, tmp_path / "roof.png", "The roof")
    project_href, task_href = project_and_task(pyopenproject, project_id)
    created = pyopenproject.returned("work_package", "create", Model(
        "WorkPackage", subject="Fix the roof", _links={
            "project": {"href": project_href}, "type": {"href": task_href},
            "attachments": [{"href": first["_links"]["self"]["href"]}]}))
    wp_id = created["id"]
    assert (created["subject"], created["_links"]["project"]["href"],
            created["_links"]["type"]) == (
        "Fix the roof", project_href, {"href": task_href, "title": "Task"})
    assert work_packages(stored.catalog) == [
        (wp_id, "Fix the roof", project_id, stored_user_id(stored, CLIENT_LOGIN))]
    assert containers(stored.catalog) == {first["id"]: ("WorkPackage", wp_id)}

    found = pyopenproject.returned("work_package", "find", Model("WorkPackage", id=wp_id))
    assert (found["id"], found["subject"], found["lockVersion"]) == (
        wp_id, "Fix the roof", created["lockVersion"])
    listed = pyopenproject.returned("work_package", "find_attachments",
                                    Model("WorkPackage", id=wp_id, subject="Fix the roof"))
    assert [(a["id"], a["fileName"], a["_links"]["container"]["href"]) for a in listed] == [
        (first["id"], "roof.png", wp_href(wp_id))]

    second = pyopenproject_upload(pyopenproject, tmp_path / "gutter.png", "The gutter")
    updated = pyopenproject.returned("work_package", "update", Model(
        "WorkPackage", id=wp_id, lockVersion=found["lockVersion"],
        _links={"attachments": [{"href": second["_links"]["self"]["href"]}]}))
    assert (updated["id"], updated["lockVersion"]) == (wp_id, found["lockVersion"] + 1)
    assert containers(stored.catalog) == {first["id"]: ("WorkPackage", wp_id),
                                          second["id"]: ("WorkPackage", wp_id)}
    # the lockVersion it had before that update is stale now: refused, nothing changes
    before = stored.snapshot()
    stale = pyopenproject.call("work_package", "update", Model(
        "WorkPackage", id=wp_id, lockVersion=found["lockVersion"], subject="Stale"))
    assert error_body(stale) == hal_error(
        "UpdateConflict", "Could not update the resource because of conflicting modifications.")
    assert stored.snapshot() == before
    assert work_packages(stored.catalog)[0][1] == "Fix the roof"

    listed = pyopenproject.returned("work_package", "find_attachments",
                                    Model("WorkPackage", id=wp_id, subject="Fix the roof"))
    assert [(a["id"], a["fileName"]) for a in listed] == [
        (first["id"], "roof.png"), (second["id"], "gutter.png")]
    for attachment, content in zip(listed, (roof, gutter)):
        pyopenproject.returned("attachment", "download_by_context",
                               Model("Attachment", **attachment), str(tmp_path / "downloads"))
        assert (tmp_path / "downloads" / attachment["fileName"]).read_bytes() == content

    # pyopenproject's bug: add_attachment posts the attachment's JSON to the upload endpoint;
    # OpenProject answers 415 to anything but multipart there, and so does affix
    refused = pyopenproject.call("work_package", "add_attachment",
                                 Model("WorkPackage", id=wp_id), Model("Attachment", **listed[0]))
    assert error_body(refused) == hal_error(
        "TypeNotSupported",
        "Expected CONTENT-TYPE to be multipart/form-data but got application/json.")
    assert stored.snapshot() == before

    selected = pyopenproject.returned(
        "work_package", "find_all", filters(("id", "=", [str(wp_id)])), '[["id", "asc"]]')
    assert [(w["id"], w["subject"]) for w in selected] == [(wp_id, "Fix the roof")]
    # no filters: OpenProject's default, the open ones
    assert [w["id"] for w in pyopenproject.returned("work_package", "find_all")] == [wp_id]
    assert pyopenproject.returned("work_package", "find_all",
                                  filters(("status", "c", []))) == []

    assert pyopenproject.returned("work_package", "delete", Model("WorkPackage", id=wp_id)) \
        is None
    gone = pyopenproject.call("work_package", "find", Model("WorkPackage", id=wp_id))
    assert error_body(gone) == hal_error("NotFound", "The specified work package does not exist.")
    assert work_packages(stored.catalog) == []
    assert stored.rows() == []
    assert stored.files() == {}


def stored_user_id(stored, login) -> int:
    catalog = stored.catalog
    with catalog.database.connection_context():
        return catalog.User.get(catalog.User.login == login).id


# --- openproject-cli ------------------------------------------------------------------------

@pytest.fixture
def cli(server, api_key, tmp_path):
    return OpenProjectCli(tmp_path / "home", server.url(""), api_key)


@pytest.mark.one_database("what a real client sends and reads, the same on both")
@pytest.mark.long
def test_openproject_cli_attachment_flow(server, cli, project_id, tmp_path):
    """Create a work package, upload into it, list, download, delete the attachment, then the
    work package with another attachment: every row and blob goes."""
    stored = server.stored
    plan = random_bytes(200_000, seed=14)
    (tmp_path / "plan.bin").write_bytes(plan)
    user_id = stored_user_id(stored, CLIENT_LOGIN)

    created = cli.json("wp", "create", "--project", PROJECT, "--type", "Task",
                       "--subject", "Fix the roof")
    wp_id = created["id"]
    assert {key: created[key] for key in ("subject", "type", "project", "projectId",
                                          "author")} == {
        "subject": "Fix the roof", "type": "Task", "project": "Demo", "projectId": project_id,
        "author": CLIENT_NAME}
    assert work_packages(stored.catalog) == [(wp_id, "Fix the roof", project_id, user_id)]

    renamed = cli.json("wp", "update", str(wp_id), "--subject", "Fix the whole roof")
    assert (renamed["subject"], renamed["lockVersion"]) == (
        "Fix the whole roof", created["lockVersion"] + 1)
    assert cli.json("wp", "get", str(wp_id))["lockVersion"] == renamed["lockVersion"]

    uploaded = cli.json("attachment", "upload", "--work-package", str(wp_id),
                        str(tmp_path / "plan.bin"), "--description", "The plan")
    attachment_id = uploaded["id"]
    assert uploaded == {
        "id": attachment_id, "fileName": "plan.bin", "fileSize": len(plan),
        "contentType": "application/octet-stream", "description": "The plan",
        "author": CLIENT_NAME, "createdAt": uploaded["createdAt"],
        "downloadUrl": f"{attachment_href(attachment_id)}/download"}
    assert containers(stored.catalog) == {attachment_id: ("WorkPackage", wp_id)}
    assert cli.json("attachment", "list", "--work-package", str(wp_id)) == [uploaded]

    listed = cli.json("wp", "list", "--project", PROJECT, "--subject", "whole roof")
    assert [(w["id"], w["status"], w["type"]) for w in listed] == [(wp_id, "New", "Task")]
    assert cli.json("wp", "list", "--project", PROJECT, "--subject", "chimney") == []
    # the status and the type by name: it looks them up in /api/v3/statuses and /api/v3/types
    assert [w["id"] for w in cli.json("wp", "list", "--status", "New", "--type", "Task",
                                      "--open")] == [wp_id]
    assert cli.json("wp", "list", "--status", "Closed") == []

    output = tmp_path / "downloaded.bin"
    downloaded = cli.json("attachment", "download", str(attachment_id), "--output", str(output))
    assert downloaded == {"downloaded": attachment_id, "path": str(output), "bytes": len(plan),
                          "sha256": hashlib.sha256(plan).hexdigest()}
    assert output.read_bytes() == plan

    assert cli.json("attachment", "delete", str(attachment_id)) == {"deleted": attachment_id}
    assert stored.rows() == []
    assert stored.files() == {}
    assert cli.json("attachment", "list", "--work-package", str(wp_id)) == []

    again = cli.json("attachment", "upload", "--work-package", str(wp_id),
                     str(tmp_path / "plan.bin"))
    [(row_id, file_name, size, digest, _)] = stored.rows()
    assert (row_id, file_name, size, digest) == (again["id"], "plan.bin", len(plan), md5(plan))
    before = stored.snapshot()
    # a member who may see and change it but not delete it: refused, nothing goes
    onlooker = OpenProjectCli(tmp_path / "onlooker", server.url(""), member_key(
        server, "olga", ["view_work_packages", "edit_work_packages"]))
    refused = onlooker.run("wp", "delete", str(wp_id))
    assert (refused.returncode, refused.stdout) == (5, "")
    assert refused.stderr.endswith(
        "error: You are not authorized to access this resource. Missing permission: "
        "delete_work_packages.\n"), refused.stderr
    assert stored.snapshot() == before
    assert [w[0] for w in work_packages(stored.catalog)] == [wp_id]
    assert cli.json("wp", "delete", str(wp_id)) == {"deleted": wp_id}
    assert work_packages(stored.catalog) == []
    assert stored.rows() == []
    assert stored.files() == {}
    missing = cli.run("wp", "get", str(wp_id))
    # openproject-cli's exit status for a 404, with the server's message
    assert (missing.returncode, missing.stdout) == (4, "")
    assert missing.stderr.endswith("error: The specified work package does not exist.\n")
