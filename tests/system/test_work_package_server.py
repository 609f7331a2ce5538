"""The work-package flow of an OpenProject client against a real gunicorn: the size limit from
the configuration, a project by identifier, a form, creation, an upload into the work package,
the list filtered by attachments, a change on its lockVersion, deletion with the bytes; and
paths with repeated and trailing slashes, as clients send them on the wire."""
import http.client
import json

import pytest
import requests

from affix.app.testing import upload_form
from support.cli import affix
from support.net import HOST, REQUEST_TIMEOUT

# a real affix serve (the server fixture of support.servers)
pytestmark = pytest.mark.system


@pytest.fixture
def served(server, databases, tmp_path):
    """The server, with the project "demo" (made by the CLI, as an operator makes it)."""
    assert affix(databases.environ(tmp_path / "data"), "project", "add", "demo")[0] == 0
    return server


def call(server, method, path, headers=(), **kwargs):
    return requests.request(method, server.url(path), headers={**server.auth, **dict(headers)},
                            timeout=REQUEST_TIMEOUT, **kwargs)


def raw(server, method, path, body=b"", content_type="application/json"):
    """A request sent with its path exactly as given (an HTTP library might tidy it)."""
    connection = http.client.HTTPConnection(HOST, server.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, body=body,
                           headers={**server.auth, "Content-Type": content_type})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_an_openproject_clients_attachment_flow(served):
    server = served
    limit = call(server, "GET", "/api/v3/configuration").json()["maximumAttachmentFileSize"]
    assert limit == 64 * 1024 * 1024
    project = call(server, "GET", "/api/v3/projects/demo").json()
    document = {"subject": "Roof", "_links": {"project": project["_links"]["self"]}}
    form = call(server, "POST", "/api/v3/work_packages/form", json=document).json()
    assert form["_embedded"]["validationErrors"] == {}
    commit = form["_links"]["commit"]
    created = call(server, commit["method"].upper(), commit["href"],
                   json=form["_embedded"]["payload"])
    assert created.status_code == 201
    work_package = created.json()
    body, content_type = upload_form("plan.txt", b"roof plan")
    added = call(server, "POST", work_package["_links"]["addAttachment"]["href"], data=body,
                 headers={"Content-Type": content_type})
    assert added.status_code == 200
    listed = call(server, "GET", "/api/v3/projects/demo/work_packages", params={
        "filters": json.dumps([{"attachments": {"operator": "*", "values": []}}])}).json()
    assert [element["id"] for element in listed["_embedded"]["elements"]] == [
        work_package["id"]]

    changed = call(server, "PATCH", work_package["_links"]["updateImmediately"]["href"],
                   json={"subject": "New roof", "lockVersion": work_package["lockVersion"]})
    assert (changed.status_code, changed.json()["lockVersion"]) == (200, 1)
    stale = call(server, "PATCH", work_package["_links"]["updateImmediately"]["href"],
                 json={"subject": "Old roof", "lockVersion": work_package["lockVersion"]})
    assert (stale.status_code, stale.json()["errorIdentifier"]) == (
        409, "urn:openproject-org:api:v3:errors:UpdateConflict")

    deleted = call(server, "DELETE", work_package["_links"]["delete"]["href"])
    assert deleted.status_code == 204
    assert server.stored.snapshot() == ([], {})
    assert call(server, "GET", f"/api/v3/attachments/{added.json()['id']}").status_code == 404


def test_repeated_and_trailing_slashes_on_the_wire(served):
    server = served
    status, created = raw(server, "POST", "/api/v3/projects/demo/work_packages/",
                          json.dumps({"subject": "Roof"}).encode())
    assert status == 201
    status, found = raw(server, "GET", f"/api/v3//work_packages//{created['id']}/")
    assert (status, found["id"], found["subject"]) == (200, created["id"], "Roof")
    status, listed = raw(server, "GET", "//api/v3/work_packages/?pageSize=1")
    assert (status, listed["total"]) == (200, 1)
