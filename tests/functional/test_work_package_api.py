"""The work-package API around attachments as OpenProject clients use it: configuration,
projects by identifier, collections with paging, filters and order, types, statuses and
priorities, forms, lockVersion, deletion with attachments, slashes, and 415 on a work package's
upload endpoint."""
import datetime
import errno
import io
import json
import os

import falcon.testing
import pytest

from affix.app.work_packages.service import CONFLICT_MESSAGE
from affix.storage.models import utc_now
from affix.storage.orphans import remove_orphans
from affix.storage.stores import open_blob_store
from support.client import get, upload, uploaded
from support.defaults import SMALL_LIMIT
from support.errors import (
    MAY_NOT_ADD_WORK_PACKAGES, MAY_NOT_DELETE_WORK_PACKAGES, MAY_NOT_EDIT_WORK_PACKAGES,
    MAY_NOT_VIEW_WORK_PACKAGES, assert_error,
)
from support.work_packages import create, document, link

NO_SUCH_PROJECT = "The specified project does not exist."


def made(client, people, subject, login="ada", **links):
    body = document(subject)
    body["_links"].update({name: {"href": href} for name, href in links.items()})
    response = create(client, people, login, body)
    assert response.status_code == 201, response.json
    return response.json


@pytest.fixture
def nora(people):
    """A user of no project."""
    return people.add("nora", name="Nora Nobody")


@pytest.fixture
def walt(people):
    """Who may see and change work packages, not delete them."""
    return people.add("walt", name="Walt Writer",
                      permissions=["view_work_packages", "edit_work_packages"])


def test_configuration_names_the_size_limit(client, people):
    response = get(client, people, "eve", "/api/v3/configuration")
    assert response.status_code == 200
    assert response.json == {
        "_type": "Configuration", "maximumAttachmentFileSize": SMALL_LIMIT,
        "hostName": "falconframework.org", "perPageOptions": [20, 100],
        "activeFeatureFlags": [], "_links": {"self": {"href": "/api/v3/configuration"}}}


def test_projects_are_listed_for_members_and_found_by_identifier(client, people, nora):
    listed = get(client, people, "eve", "/api/v3/projects").json
    assert (listed["_type"], listed["total"], listed["count"], listed["pageSize"],
            listed["offset"]) == ("Collection", 1, 1, 20, 1)
    assert listed["_embedded"]["elements"] == [
        get(client, people, "eve", "/api/v3/projects/1").json]
    assert get(client, people, "eve", "/api/v3/projects/demo").json == get(
        client, people, "eve", "/api/v3/projects/1").json
    assert get(client, people, "nora", "/api/v3/projects").json["total"] == 0
    assert_error(get(client, people, "nora", "/api/v3/projects/demo"), 404, "NotFound",
                 NO_SUCH_PROJECT)


def test_a_member_refused_in_a_project_is_told_the_permission_missing(client, people, stored):
    # Bob may edit work packages in demo, but neither see nor add them; Eve may only see them
    for path in ("/api/v3/projects/1/work_packages", "/api/v3/projects/demo/types"):
        assert_error(get(client, people, "bob", path), 403, "MissingPermission",
                     MAY_NOT_VIEW_WORK_PACKAGES)
    assert_error(client.simulate_post("/api/v3/work_packages/form", json={"subject": "Roof"},
                                      headers=people.auth("eve")),
                 403, "MissingPermission", MAY_NOT_ADD_WORK_PACKAGES)
    assert stored.snapshot() == ([], {})


def test_types_statuses_and_priorities(client, people, catalog, nora):
    types = get(client, people, "eve", "/api/v3/types").json
    assert [t["name"] for t in types["_embedded"]["elements"]] == [
        "Task", "Milestone", "Phase", "Feature", "Epic", "User story", "Bug"]
    with catalog.database.connection_context():
        task = catalog.Type.get_by_id(1)
    assert get(client, people, "eve", "/api/v3/types/1").json == {
        "_type": "Type", "id": 1, "name": "Task", "color": None, "position": 1,
        "isDefault": True, "isMilestone": False,
        "createdAt": task.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updatedAt": task.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "_links": {"self": {"href": "/api/v3/types/1", "title": "Task"}}}
    assert get(client, people, "eve", "/api/v3/projects/demo/types").json["total"] == 7
    assert get(client, people, "eve", "/api/v3/statuses/12").json == {
        "_type": "Status", "id": 12, "name": "Closed", "position": 12, "isDefault": False,
        "isClosed": True, "color": None,
        "_links": {"self": {"href": "/api/v3/statuses/12", "title": "Closed"}}}
    assert [p["name"] for p in get(client, people, "eve", "/api/v3/priorities").json[
        "_embedded"]["elements"]] == ["Low", "Normal", "High", "Immediate"]
    assert_error(get(client, people, "eve", "/api/v3/types/99"), 404, "NotFound",
                 "The specified type does not exist.")
    for path in ("/api/v3/types", "/api/v3/statuses/1", "/api/v3/priorities"):
        assert_error(get(client, people, "nora", path), 403, "MissingPermission",
                     MAY_NOT_VIEW_WORK_PACKAGES)


def test_a_list_is_paged_in_the_database_with_openproject_links(client, people):
    for number in range(1, 4):
        made(client, people, f"Roof {number}")

    response = get(client, people, "eve", "/api/v3/work_packages?offset=2&pageSize=1")

    assert response.status_code == 200
    page = response.json
    query = ("filters=%5B%7B%22status%22%3A%7B%22operator%22%3A%22o%22%2C%22values%22%3A%5B%5D"
             "%7D%7D%5D")
    sort = "sortBy=%5B%5B%22id%22%2C%22asc%22%5D%5D"
    base = "/api/v3/work_packages?" + query
    assert (page["_type"], page["total"], page["count"], page["pageSize"], page["offset"]) == (
        "WorkPackageCollection", 3, 1, 1, 2)
    assert page["_links"] == {
        "self": {"href": f"{base}&offset=2&pageSize=1&{sort}"},
        "jumpTo": {"href": f"{base}&offset={{offset}}&pageSize=1&{sort}", "templated": True},
        "changeSize": {"href": f"{base}&offset=2&pageSize={{size}}&{sort}", "templated": True},
        "previousByOffset": {"href": f"{base}&offset=1&pageSize=1&{sort}"},
        "nextByOffset": {"href": f"{base}&offset=3&pageSize=1&{sort}"},
    }
    (element,) = page["_embedded"]["elements"]
    single = get(client, people, "eve", "/api/v3/work_packages/2").json
    del single["_embedded"]
    assert element == single
    # a page past the end, and a page of none
    assert get(client, people, "eve", "/api/v3/work_packages?offset=9").json["count"] == 0
    empty = get(client, people, "eve", "/api/v3/work_packages?pageSize=0").json
    assert (empty["total"], empty["count"]) == (3, 0)


def test_filters_and_order(client, people):
    made(client, people, "Roof", status="/api/v3/statuses/12")
    made(client, people, "Wall 100%", type="/api/v3/types/7")
    third = made(client, people, "Wall")["id"]
    uploaded(client, people, "ada", path=f"/api/v3/work_packages/{third}/attachments")

    def ids(**params):
        response = client.simulate_get("/api/v3/projects/demo/work_packages",
                                        params={k: json.dumps(v) for k, v in params.items()},
                                        headers=people.auth("eve"))
        assert response.status_code == 200, response.json
        return [element["id"] for element in response.json["_embedded"]["elements"]]

    assert ids() == [2, 3]  # open ones only, by default
    assert ids(filters=[]) == [1, 2, 3]
    assert ids(filters=[{"status": {"operator": "c", "values": None}}]) == [1]
    assert ids(filters=[{"subject": {"operator": "~", "values": ["wall 100%"]}}]) == [2]
    assert ids(filters=[{"subject": {"operator": "!~", "values": ["%"]}}]) == [1, 3]
    assert ids(filters=[{"type_id": {"operator": "=", "values": ["7"]}}]) == [2]
    assert ids(filters=[{"id": {"operator": "!", "values": ["2"]}}]) == [1, 3]
    assert ids(filters=[{"project": {"operator": "=", "values": ["demo"]}}]) == [1, 2, 3]
    assert ids(filters=[{"attachments": {"operator": "*", "values": []}}]) == [3]
    assert ids(filters=[], sortBy=[["subject", "desc"]]) == [2, 3, 1]


@pytest.mark.parametrize("params, message", [
    ({"filters": "nope"}, "Filters is not a JSON array of filters."),
    ({"filters": '[{"author": {"operator": "=", "values": ["1"]}}]'},
     "Filters author does not exist."),
    ({"filters": '[{"status": {"operator": "~", "values": ["1"]}}]'},
     "Status filter has an invalid operator."),
    ({"filters": '[{"id": {"operator": "=", "values": ["x"]}}]'},
     "ID filter has invalid values."),
    ({"sortBy": '[["author", "asc"]]'}, "Sort by author is not supported."),
    ({"sortBy": '[["id", "up"]]'}, "Sort direction up is not asc or desc."),
])
def test_a_bad_query_is_invalid_query(client, people, params, message):
    response = client.simulate_get("/api/v3/work_packages", params=params,
                                   headers=people.auth("eve"))
    assert_error(response, 400, "InvalidQuery", message)


def test_a_list_shows_only_what_the_user_may_see(client, people, nora):
    made(client, people, "Roof")
    assert_error(get(client, people, "nora", "/api/v3/work_packages"), 403,
                 "MissingPermission", MAY_NOT_VIEW_WORK_PACKAGES)
    assert_error(get(client, people, "nora", "/api/v3/projects/demo/work_packages"), 404,
                 "NotFound", NO_SUCH_PROJECT)


def changed(client, people, work_package_id, body, login="walt"):
    return client.simulate_patch(f"/api/v3/work_packages/{work_package_id}", json=body,
                                 headers=people.auth(login))


@pytest.mark.parametrize("version", [None, 1, "0"])
def test_a_change_on_a_stale_or_missing_lock_version_is_409_and_changes_nothing(
        client, people, catalog, stored, walt, version):
    work_package = made(client, people, "Roof")
    attachment = uploaded(client, people, "walt")
    body = {"subject": "Changed", "_links": {"attachments": [link(attachment)]}}
    if version is not None:
        body["lockVersion"] = version
    before = stored.snapshot()

    assert_error(changed(client, people, work_package["id"], body), 409, "UpdateConflict",
                 CONFLICT_MESSAGE)
    assert stored.snapshot() == before
    assert get(client, people, "ada", "/api/v3/work_packages/1").json == work_package
    with catalog.database.connection_context():
        assert catalog.Attachment.get_by_id(attachment).container_type is None


def test_a_change_on_the_current_lock_version_counts_it_up(client, people, walt):
    made(client, people, "Roof")
    response = changed(client, people, 1, {
        "subject": "Changed", "lockVersion": 0,
        "_links": {"priority": {"href": "/api/v3/priorities/4"}}})
    assert response.status_code == 200
    assert (response.json["subject"], response.json["lockVersion"],
            response.json["_links"]["priority"]) == (
        "Changed", 1, {"href": "/api/v3/priorities/4", "title": "Immediate"})
    # the version read before is stale now
    assert changed(client, people, 1, {"subject": "Again", "lockVersion": 0}).status_code == 409


def test_deleting_a_work_package_deletes_its_attachments_and_their_bytes(
        client, people, catalog, stored, walt):
    kept = uploaded(client, people, "ada", content=b"elsewhere")
    made(client, people, "Roof")
    uploaded(client, people, "ada", content=b"one", path="/api/v3/work_packages/1/attachments")
    uploaded(client, people, "ada", content=b"two", path="/api/v3/work_packages/1/attachments")
    rows, files = stored.snapshot()

    assert_error(client.simulate_delete("/api/v3/work_packages/1", headers=people.auth("walt")),
                 403, "MissingPermission", MAY_NOT_DELETE_WORK_PACKAGES)
    assert stored.snapshot() == (rows, files)

    response = client.simulate_delete("/api/v3/work_packages/1", headers=people.auth("ada"))

    assert response.status_code == 204
    assert stored.rows() == [row for row in rows if row[0] == kept]
    assert set(stored.files()) == {row[4] for row in rows if row[0] == kept}
    with catalog.database.connection_context():
        assert catalog.WorkPackage.select().count() == 0
    assert_error(get(client, people, "ada", "/api/v3/work_packages/1"), 404, "NotFound",
                 "The specified work package does not exist.")


@pytest.mark.on_cue("blob_store")
def test_bytes_a_failed_blob_deletion_leaves_are_what_gc_removes(
        client, people, catalog, stored, settings, services, caplog):
    made(client, people, "Roof")
    uploaded(client, people, "ada", content=b"one", path="/api/v3/work_packages/1/attachments")
    [(_, _, _, _, key)] = stored.rows()
    def failing_delete(storage_key):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    services.blob_store.replace("delete", failing_delete)
    response = client.simulate_delete("/api/v3/work_packages/1", headers=people.auth("ada"))
    services.blob_store.restore("delete")

    # the rows are gone, as asked; the bytes wait for gc
    assert response.status_code == 204
    assert stored.rows() == []
    assert list(stored.files()) == [key]
    assert f"could not delete blob {key}; affix gc will" in caplog.text
    with catalog.database.connection_context():
        assert remove_orphans(catalog, open_blob_store(settings.storage_url),
                              utc_now() + datetime.timedelta(minutes=1)) == [key]
    assert stored.files() == {}


def test_json_on_a_work_packages_upload_endpoint_is_415(client, people, catalog, stored):
    made(client, people, "Roof")
    attachment = uploaded(client, people, "ada")
    before = stored.snapshot()

    response = client.simulate_post(
        "/api/v3/work_packages/1/attachments", headers=people.auth("ada"),
        json={"_links": {"attachments": [link(attachment)]}})

    assert_error(response, 415, "TypeNotSupported",
                 "Expected CONTENT-TYPE to be multipart/form-data but got application/json.")
    assert stored.snapshot() == before
    with catalog.database.connection_context():
        assert catalog.Attachment.get_by_id(attachment).container_type is None


@pytest.mark.parametrize("path", ["/api/v3//work_packages//1", "/api/v3/work_packages/1/",
                                  "//api/v3/work_packages/1//"])
def test_repeated_and_trailing_slashes_route_as_in_openproject(client, people, path):
    made(client, people, "Roof")
    assert get(client, people, "eve", path).json == get(
        client, people, "eve", "/api/v3/work_packages/1").json


def test_slashes_are_normalised_below_the_mount_point_only(app, people):
    client = falcon.testing.TestClient(app)
    response = client.simulate_get("/api/v3/projects//demo/", headers=people.auth("eve"),
                                   extras={"SCRIPT_NAME": "/files"})
    assert response.status_code == 200
    assert response.json["_links"]["self"]["href"] == "/files/api/v3/projects/1"


def test_a_create_form_shows_errors_and_commits_only_when_valid(client, people, catalog):
    attachment = uploaded(client, people, "ada")
    body = document("", [link(attachment)], project="/api/v3/projects/demo")
    body["_links"]["type"] = {"href": "/api/v3/types/99"}

    invalid = client.simulate_post("/api/v3/work_packages/form", json=body,
                                   headers=people.auth("ada"))

    assert invalid.status_code == 200
    assert invalid.json["_type"] == "Form"
    assert invalid.json["_links"] == {
        "self": {"href": "/api/v3/work_packages/form", "method": "post"},
        "validate": {"href": "/api/v3/work_packages/form", "method": "post"}}
    errors = invalid.json["_embedded"]["validationErrors"]
    assert {name: error["message"] for name, error in errors.items()} == {
        "subject": "Subject can't be blank.",
        "type": "Type is not set to one of the allowed values."}

    valid = client.simulate_post("/api/v3/projects/demo/work_packages/form",
                                 json=document("Roof", [link(attachment)], project=None),
                                 headers=people.auth("ada"))
    assert valid.json["_links"]["commit"] == {"href": "/api/v3/projects/1/work_packages",
                                              "method": "post"}
    assert valid.json["_embedded"]["validationErrors"] == {}
    assert valid.json["_embedded"]["payload"] == {
        "subject": "Roof", "_links": {
            "project": {"href": "/api/v3/projects/1", "title": "Demo"},
            "type": {"href": "/api/v3/types/1", "title": "Task"},
            "status": {"href": "/api/v3/statuses/1", "title": "New"},
            "priority": {"href": "/api/v3/priorities/2", "title": "Normal"},
            "attachments": [{"href": f"/api/v3/attachments/{attachment}"}]}}
    # a form writes nothing
    with catalog.database.connection_context():
        assert catalog.WorkPackage.select().count() == 0
        assert catalog.Attachment.get_by_id(attachment).container_type is None


def test_an_update_form_needs_the_current_lock_version(client, people, walt):
    made(client, people, "Roof")
    stale = client.simulate_post("/api/v3/work_packages/1/form",
                                 json={"subject": "x", "lockVersion": 3},
                                 headers=people.auth("walt"))
    assert_error(stale, 409, "UpdateConflict", CONFLICT_MESSAGE)
    form = client.simulate_post("/api/v3/work_packages/1/form",
                                json={"subject": "x", "lockVersion": 0},
                                headers=people.auth("walt")).json
    assert form["_links"]["commit"] == {"href": "/api/v3/work_packages/1", "method": "patch"}
    assert form["_embedded"]["payload"]["lockVersion"] == 0
    assert_error(client.simulate_post("/api/v3/work_packages/1/form",
                                      json={"subject": "x", "lockVersion": 0},
                                      headers=people.auth("eve")),
                 403, "MissingPermission", MAY_NOT_EDIT_WORK_PACKAGES)


def test_upload_helper_is_multipart(client, people):
    # the upload helper still reaches the work package's endpoint as multipart
    made(client, people, "Roof")
    assert upload(client, people, "ada", path="/api/v3/work_packages/1/attachments"
                  ).status_code == 200


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_form_is_no_work_package_id_for_other_methods(client, people, method):
    response = client.simulate_request(method, "/api/v3/work_packages/form",
                                       headers=people.auth("ada"))
    assert_error(response, 404, "NotFound", "The requested resource could not be found.")


def test_a_json_media_type_in_any_case_is_json(client, people):
    response = client.simulate_post("/api/v3/work_packages", body=json.dumps(document("Roof")),
                                    headers={**people.auth("ada"),
                                             "Content-Type": "APPLICATION/JSON"})
    assert (response.status_code, response.json["subject"]) == (201, "Roof")


@pytest.mark.parametrize("path", ["/api/v3/work_packages", "/api/v3/work_packages/form"])
def test_a_json_body_without_a_length_is_400_saying_so(client, people, catalog, path):
    response = client.simulate_post(path, headers={
        **people.auth("ada"), "Content-Type": "application/json",
        "Transfer-Encoding": "chunked"},
        extras={"wsgi.input": io.BytesIO(json.dumps(document("Roof")).encode())})
    assert_error(response, 400, "InvalidRequestBody", "A JSON body needs a Content-Length "
                 "header; chunked transfer coding is for uploads.")
    with catalog.database.connection_context():
        assert list(catalog.WorkPackage.select()) == []


def test_who_may_add_but_not_see_work_packages_gets_the_one_they_created(client, people):
    people.add("adam", name="Adam Adder", permissions=["add_work_packages"])
    response = create(client, people, "adam", document("Roof"))
    assert (response.status_code, response.json["subject"], response.json["lockVersion"]) == (
        201, "Roof", 0)
    assert_error(get(client, people, "adam", "/api/v3/work_packages/1"), 404, "NotFound",
                 "The specified work package does not exist.")


def test_a_form_asked_for_without_a_body_is_the_empty_form(client, people):
    response = client.simulate_post("/api/v3/work_packages/form", headers={
        **people.auth("ada"), "Content-Type": "application/hal+json"})
    assert response.status_code == 200
    form = response.json
    assert form["_embedded"]["payload"] == {"subject": None, "_links": {
        "project": {"href": None},
        "type": {"href": "/api/v3/types/1", "title": "Task"},
        "status": {"href": "/api/v3/statuses/1", "title": "New"},
        "priority": {"href": "/api/v3/priorities/2", "title": "Normal"},
        "attachments": []}}
    assert {name: error["message"] for name, error in
            form["_embedded"]["validationErrors"].items()} == {
        "project": "Project can't be blank.", "subject": "Subject can't be blank."}
    assert "commit" not in form["_links"]
    # an update form without a body names no lockVersion
    made(client, people, "Roof")
    assert_error(client.simulate_post("/api/v3/work_packages/1/form",
                                      headers=people.auth("ada")),
                 409, "UpdateConflict", CONFLICT_MESSAGE)
