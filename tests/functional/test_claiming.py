"""Work packages that own attachments: creating them, claiming attachments at creation and by
PATCH, every refusal, the attachments of a container, who sees and deletes a claimed attachment,
racing claims, and the upload allowlist — through falcon.testing, with what is stored asserted
after each request."""
import dataclasses
import json

import falcon.testing
import pytest

from affix.app import create_app
from affix.app.testing import multipart
from support.bodies import UnreadBody, upload_body
from support.client import get, upload, uploaded
from support.content import png_bytes
from support.defaults import FROZEN_NOW, SMALL_LIMIT
from support.errors import (
    CANNOT_BE_CHANGED, DOES_NOT_EXIST, MAY_NOT_ADD_ATTACHMENTS, MAY_NOT_ADD_WORK_PACKAGES,
    MAY_NOT_EDIT_WORK_PACKAGES, NO_SUCH_ATTACHMENT, assert_error,
)
from support.races import RACE_ROUNDS, race
from support.state import containers, work_packages
from support.work_packages import (
    CREATE_PATHS, PROJECT_HREF, SUBJECT, create, created, document, link, patch,
)

NO_SUCH_WORK_PACKAGE = "The specified work package does not exist."
NO_SUCH_PROJECT = "The specified project does not exist."
# an id no database integer column can hold
HUGE_ID = "9" * 30


# --- helpers ---------------------------------------------------------------------------------

def user_id(catalog, login) -> int:
    with catalog.database.connection_context():
        return catalog.User.get(catalog.User.login == login).id


def state(catalog, stored):
    """Everything a refused request must leave as it was."""
    return work_packages(catalog), containers(catalog), stored.snapshot()


@pytest.fixture
def team(people):
    """Beyond conftest's ada (admin), bob (edit only) and eve (view only), all in project 1."""
    return {
        "walt": people.add("walt", name="Walt Writer", permissions=[
            "view_work_packages", "add_work_packages", "edit_work_packages"]),
        "adam": people.add("adam", name="Adam Adder", permissions=[
            "view_work_packages", "add_work_packages"]),
        "atta": people.add("atta", name="Atta Attacher", permissions=[
            "view_work_packages", "add_work_package_attachments"]),
        "nora": people.add("nora", name="Nora Nobody"),
    }


# --- creating work packages ------------------------------------------------------------------

@pytest.mark.parametrize("path", CREATE_PATHS)
def test_create_without_attachments_answers_the_exact_hal(client, people, team, catalog, path):
    response = create(client, people, "walt", document(), path)

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/hal+json"
    walt = team["walt"].id
    assert response.json == {
        "_type": "WorkPackage", "id": 1, "lockVersion": 0, "subject": SUBJECT,
        "createdAt": "2014-05-21T08:51:20Z", "updatedAt": "2014-05-21T08:51:20Z",
        "_links": {
            "self": {"href": "/api/v3/work_packages/1", "title": SUBJECT},
            "project": {"href": "/api/v3/projects/1", "title": "Demo"},
            "author": {"href": f"/api/v3/users/{walt}", "title": "Walt Writer"},
            # the defaults of a work package that names none
            "type": {"href": "/api/v3/types/1", "title": "Task"},
            "status": {"href": "/api/v3/statuses/1", "title": "New"},
            "priority": {"href": "/api/v3/priorities/2", "title": "Normal"},
            "attachments": {"href": "/api/v3/work_packages/1/attachments"},
            "addAttachment": {"href": "/api/v3/work_packages/1/attachments", "method": "post"},
            "update": {"href": "/api/v3/work_packages/1/form", "method": "post"},
            "updateImmediately": {"href": "/api/v3/work_packages/1", "method": "patch"},
        },
        "_embedded": {"attachments": {
            "_type": "Collection", "total": 0, "count": 0, "_embedded": {"elements": []},
            "_links": {"self": {"href": "/api/v3/work_packages/1/attachments"}},
        }},
    }
    assert work_packages(catalog) == [(1, SUBJECT, 1, walt)]
    assert get(client, people, "walt", "/api/v3/work_packages/1").json == response.json


@pytest.mark.parametrize("path", CREATE_PATHS)
def test_create_claims_the_listed_attachments(client, people, team, catalog, stored, path):
    first = uploaded(client, people, "walt", name="plan.txt", content=b"roof plan")
    second = uploaded(client, people, "walt", name="tiles.png", content=png_bytes())
    before = stored.snapshot()

    response = create(client, people, "walt", document(attachments=[link(first), link(second)]),
                      path)

    assert response.status_code == 201
    embedded = response.json["_embedded"]["attachments"]
    assert (embedded["total"], embedded["count"]) == (2, 2)
    elements = embedded["_embedded"]["elements"]
    assert elements == [get(client, people, "walt", f"/api/v3/attachments/{attachment_id}").json
                        for attachment_id in (first, second)]
    assert [element["_links"]["container"] for element in elements] == [
        {"href": "/api/v3/work_packages/1", "title": SUBJECT}] * 2
    assert work_packages(catalog) == [(1, SUBJECT, 1, team["walt"].id)]
    assert containers(catalog) == {first: ("WorkPackage", 1), second: ("WorkPackage", 1)}
    # claiming changes the owner, never the bytes
    assert stored.snapshot() == before


def test_adding_work_packages_permits_claiming_at_creation_only(client, people, team, catalog):
    """OpenProject's add-on-new permission: whoever creates a work package may attach to it
    then, while adding to an existing one takes edit_work_packages or
    add_work_package_attachments (so there is no addAttachment link)."""
    attachment = uploaded(client, people, "adam")

    response = create(client, people, "adam", document(attachments=[link(attachment)]))

    assert response.status_code == 201
    assert "addAttachment" not in response.json["_links"]
    assert response.json["_embedded"]["attachments"]["total"] == 1
    assert containers(catalog) == {attachment: ("WorkPackage", 1)}


def test_patch_claims_and_never_releases_an_attachment_left_out(
        client, people, team, catalog, stored):
    first = uploaded(client, people, "walt")
    work_package = created(client, people, "walt", attachment_ids=[first])
    second = uploaded(client, people, "walt")
    before = stored.snapshot()

    response = patch(client, people, "walt", work_package,
                     document(project=None, subject=None, attachments=[link(second)]))

    assert response.status_code == 200
    assert response.json["subject"] == SUBJECT
    assert [element["id"] for element in
            response.json["_embedded"]["attachments"]["_embedded"]["elements"]] == [first, second]
    assert containers(catalog) == {first: ("WorkPackage", 1), second: ("WorkPackage", 1)}
    assert stored.snapshot() == before


def test_patch_resending_the_claimed_list_is_accepted(client, people, team, catalog, stored):
    attachments = [uploaded(client, people, "walt") for _ in range(2)]
    work_package = created(client, people, "walt", attachment_ids=attachments)
    before = stored.snapshot()

    response = patch(client, people, "walt", work_package, document(
        subject="Fix the roof today", project=None, attachments=[link(i) for i in attachments]))

    assert response.status_code == 200
    assert response.json["subject"] == "Fix the roof today"
    assert response.json["_links"]["self"] == {
        "href": "/api/v3/work_packages/1", "title": "Fix the roof today"}
    assert response.json["_embedded"]["attachments"]["total"] == 2
    assert work_packages(catalog) == [(1, "Fix the roof today", 1, team["walt"].id)]
    assert containers(catalog) == {i: ("WorkPackage", 1) for i in attachments}
    assert stored.snapshot() == before


# --- refused claims --------------------------------------------------------------------------

@dataclasses.dataclass
class Scene:
    """What exists before a refused claim: attachment ids, and the work package to PATCH."""

    own: int        # walt's, unclaimed
    claimed: int    # walt's, claimed for walt's work package 1
    others: int     # bob's, unclaimed
    admins: int     # ada's, claimed for ada's work package 2
    target: int     # walt's work package without attachments, for PATCH


@pytest.fixture
def scene(client, people, team):
    own = uploaded(client, people, "walt")
    claimed = uploaded(client, people, "walt")
    others = uploaded(client, people, "bob")
    admins = uploaded(client, people, "ada")
    created(client, people, "walt", subject="Walt's", attachment_ids=[claimed])
    created(client, people, "ada", subject="Ada's", attachment_ids=[admins])
    return Scene(own, claimed, others, admins, created(client, people, "walt", subject="Target"))


def _href(text):
    return lambda scene: [{"href": text.format(own=scene.own)}]


# name: (the value of _links.attachments, built from the scene; the message)
REFUSED_CLAIMS = {
    "another user's attachment": (lambda s: [link(s.others)], DOES_NOT_EXIST),
    "another user's claimed attachment": (lambda s: [link(s.admins)], DOES_NOT_EXIST),
    "an attachment that never existed": (lambda s: [link(999)], DOES_NOT_EXIST),
    "own attachment claimed for another work package": (
        lambda s: [link(s.claimed)], CANNOT_BE_CHANGED),
    "a claimable one before a refused one": (
        lambda s: [link(s.own), link(s.others)], DOES_NOT_EXIST),
    # malformed hrefs, each naming walt's claimable attachment as closely as it can
    "a user href": (_href("/api/v3/users/{own}"), DOES_NOT_EXIST),
    "a download href": (_href("/api/v3/attachments/{own}/download"), DOES_NOT_EXIST),
    "an id that is no number": (_href("/api/v3/attachments/one"), DOES_NOT_EXIST),
    "an empty href": (_href(""), DOES_NOT_EXIST),
    "an id beyond any integer column": (_href("/api/v3/attachments/" + HUGE_ID),
                                        DOES_NOT_EXIST),
    "an id followed by a newline": (_href("/api/v3/attachments/{own}\n"), DOES_NOT_EXIST),
    "an id in non-ASCII digits": (
        lambda s: [{"href": "/api/v3/attachments/" + "".join(
            chr(0x0660 + int(digit)) for digit in str(s.own))}], DOES_NOT_EXIST),
    "a link without href": (lambda s: [{"title": "notes.txt"}], DOES_NOT_EXIST),
    "a null href": (lambda s: [{"href": None}], DOES_NOT_EXIST),
    "a bare string for a link": (
        lambda s: [f"/api/v3/attachments/{s.own}"], DOES_NOT_EXIST),
    "one link instead of a list": (
        lambda s: link(s.own), "Attachments must be a list of links."),
}
CLAIMING_REQUESTS = ["POST /api/v3/work_packages", "POST /api/v3/projects/1/work_packages",
                     "PATCH /api/v3/work_packages/{target}"]


def claim_by(request, client, people, scene, attachments):
    """walt's request that claims ``attachments`` while creating or changing a work package."""
    method, path = request.split(" ")
    if method == "POST":
        return create(client, people, "walt", document("New", attachments), path)
    return patch(client, people, "walt", scene.target,
                 document("Changed", attachments, project=None))


@pytest.mark.parametrize("request_line", CLAIMING_REQUESTS)
@pytest.mark.parametrize("attachments, message", REFUSED_CLAIMS.values(),
                         ids=REFUSED_CLAIMS.keys())
def test_a_refused_claim_changes_nothing(
        client, people, catalog, stored, scene, request_line, attachments, message):
    before = state(catalog, stored)

    response = claim_by(request_line, client, people, scene, attachments(scene))

    assert_error(response, 422, "PropertyConstraintViolation", message, "attachments")
    # no work package created, the target's subject unchanged, no attachment claimed or lost
    assert state(catalog, stored) == before
    target = get(client, people, "walt", f"/api/v3/work_packages/{scene.target}").json
    assert (target["subject"], target["_embedded"]["attachments"]["total"]) == ("Target", 0)


# --- refused work-package requests -----------------------------------------------------------

@pytest.mark.parametrize("path", CREATE_PATHS)
@pytest.mark.parametrize("login", ["bob", "eve", "atta", "nora"])
def test_create_without_add_work_packages_is_403(
        client, people, team, catalog, stored, path, login):
    attachment = uploaded(client, people, "walt")
    before = state(catalog, stored)

    response = create(client, people, login, document(attachments=[link(attachment)]), path)

    if login == "nora" and path != CREATE_PATHS[0]:
        # a project nora is no member of is one she may not see: as OpenProject, 404
        assert_error(response, 404, "NotFound", NO_SUCH_PROJECT)
    elif login == "nora":
        # ... and named in _links.project, one that does not exist
        assert_error(response, 422, "PropertyConstraintViolation", "Project does not exist.",
                     "project")
    else:
        assert_error(response, 403, "MissingPermission", MAY_NOT_ADD_WORK_PACKAGES)
    assert state(catalog, stored) == before


@pytest.fixture
def other_project(people):
    """A project walt is no member of: olga's."""
    people.add("olga", permissions=["view_work_packages", "add_work_packages"],
               project="other")
    return "other"


@pytest.mark.parametrize("path", ["/api/v3/work_packages", "/api/v3/work_packages/form"])
def test_a_project_one_may_not_see_is_named_as_one_that_does_not_exist(
        client, people, team, catalog, stored, other_project, path):
    attachment = uploaded(client, people, "walt")
    before = state(catalog, stored)

    answers = [client.simulate_post(path, json=document(
        project=f"/api/v3/projects/{key}", attachments=[link(attachment)]),
        headers=people.auth("walt")) for key in (other_project, "2", "missing", "99")]

    # the other project by identifier and by id, then two that do not exist: one answer
    assert [answer.status_code for answer in answers] == [answers[0].status_code] * 4
    assert all(answer.json == answers[0].json for answer in answers)
    if path.endswith("/form"):
        assert answers[0].status_code == 200
        assert answers[0].json["_embedded"]["validationErrors"]["project"]["message"] == (
            "Project does not exist.")
    else:
        assert_error(answers[0], 422, "PropertyConstraintViolation",
                     "Project does not exist.", "project")
    assert state(catalog, stored) == before


def test_create_in_a_project_that_does_not_exist_is_404(client, people, team, catalog):
    response = create(client, people, "walt", document(project=None),
                      "/api/v3/projects/99/work_packages")
    assert_error(response, 404, "NotFound", NO_SUCH_PROJECT)
    assert work_packages(catalog) == []


INVALID_DOCUMENTS = {
    "no subject": (document(subject=None), "subject", "Subject can't be blank."),
    "empty subject": (document(subject=""), "subject", "Subject can't be blank."),
    "blank subject": (document(subject=" \t "), "subject", "Subject can't be blank."),
    "subject not text": (document(subject=42), "subject", "Subject can't be blank."),
    "subject over 255 characters": (
        document(subject="s" * 256), "subject",
        "Subject is too long (maximum is 255 characters)."),
    "no project link": (document(project=None), "project", "Project can't be blank."),
    "a project link that is no project": (
        document(project="/api/v3/users/1"), "project", "Project can't be blank."),
    "a project that does not exist": (
        document(project="/api/v3/projects/99"), "project", "Project does not exist."),
    "a project id beyond any integer column": (
        document(project="/api/v3/projects/" + HUGE_ID), "project", "Project does not exist."),
}


@pytest.mark.parametrize("body, attribute, message", INVALID_DOCUMENTS.values(),
                         ids=INVALID_DOCUMENTS.keys())
def test_create_with_an_invalid_document_is_422(
        client, people, team, catalog, stored, body, attribute, message):
    attachment = uploaded(client, people, "walt")
    before = state(catalog, stored)

    response = create(client, people, "walt", {**body, "_links": {
        **body["_links"], "attachments": [link(attachment)]}})

    assert_error(response, 422, "PropertyConstraintViolation", message, attribute)
    assert state(catalog, stored) == before


@pytest.mark.parametrize("subject, message", [
    ("roof\x00", "Text may not contain the NUL character (U+0000)."),
    ("roof\ud800", "The request could not be parsed as JSON."),
])
def test_a_subject_no_database_can_store_is_400(
        client, people, team, catalog, stored, subject, message):
    attachment = uploaded(client, people, "walt")
    before = state(catalog, stored)
    # JSON escapes carry both; the document is sent as JSON text, escaped
    response = client.simulate_post(
        CREATE_PATHS[0], body=json.dumps(document(subject, [link(attachment)])),
        headers={**people.auth("walt"), "Content-Type": "application/json"})
    assert_error(response, 400, "InvalidRequestBody", message)
    assert state(catalog, stored) == before


def test_a_subject_of_exactly_255_characters_is_accepted(client, people, team, catalog):
    assert create(client, people, "walt", document("s" * 255)).status_code == 201
    assert [row[1] for row in work_packages(catalog)] == ["s" * 255]


@pytest.mark.parametrize("subject, message", [
    ("", "Subject can't be blank."),
    ("   ", "Subject can't be blank."),
    (None, "Subject can't be blank."),
    ("s" * 256, "Subject is too long (maximum is 255 characters)."),
])
def test_patch_with_an_invalid_subject_is_422(
        client, people, team, catalog, stored, subject, message):
    work_package = created(client, people, "walt")
    attachment = uploaded(client, people, "walt")
    before = state(catalog, stored)

    response = patch(client, people, "walt", work_package,
                     {"subject": subject, "_links": {"attachments": [link(attachment)]}})

    assert_error(response, 422, "PropertyConstraintViolation", message, "subject")
    assert state(catalog, stored) == before


# (who patches, whose attachment they list): adam may upload, so he lists his own
@pytest.mark.parametrize("login, uploader", [("eve", "walt"), ("adam", "adam"), ("atta", "walt")])
def test_patch_without_edit_work_packages_is_403(
        client, people, team, catalog, stored, login, uploader):
    work_package = created(client, people, "walt")
    attachment = uploaded(client, people, uploader)
    before = state(catalog, stored)

    response = patch(client, people, login, work_package,
                     document("Changed", [link(attachment)], project=None))

    assert_error(response, 403, "MissingPermission", MAY_NOT_EDIT_WORK_PACKAGES)
    assert state(catalog, stored) == before


@pytest.mark.parametrize("login", ["bob", "nora"])
@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_a_work_package_the_user_cannot_view_is_404(
        client, people, team, catalog, stored, login, method):
    """bob may edit but not view in project 1; nora has no role there."""
    work_package = created(client, people, "walt")
    before = state(catalog, stored)

    response = client.simulate_request(
        method, f"/api/v3/work_packages/{work_package}",
        json=document("Changed", project=None), headers=people.auth(login))

    assert_error(response, 404, "NotFound", NO_SUCH_WORK_PACKAGE)
    assert state(catalog, stored) == before


@pytest.mark.parametrize("work_package_id", ["99", HUGE_ID])
@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_a_work_package_that_does_not_exist_is_404(
        client, people, team, catalog, method, work_package_id):
    response = client.simulate_request(
        method, f"/api/v3/work_packages/{work_package_id}",
        json=document("Changed", project=None), headers=people.auth("ada"))
    assert_error(response, 404, "NotFound", NO_SUCH_WORK_PACKAGE)
    assert work_packages(catalog) == []


def test_permissions_are_per_project(client, people, team, catalog, stored):
    """walt's roles are in project 1: a work package of project 2 is out of his reach."""
    with catalog.database.connection_context():
        catalog.Project.create(identifier="other", name="Other")
    other = create(client, people, "ada", document("Elsewhere", project="/api/v3/projects/2"))
    assert other.status_code == 201
    attachment = uploaded(client, people, "walt")
    before = state(catalog, stored)

    refused = [
        create(client, people, "walt", document(project="/api/v3/projects/2")),
        create(client, people, "walt", document(), "/api/v3/projects/2/work_packages"),
        patch(client, people, "walt", other.json["id"],
              document("Changed", [link(attachment)], project=None)),
        get(client, people, "walt", f"/api/v3/work_packages/{other.json['id']}"),
        get(client, people, "walt", "/api/v3/projects/2"),
    ]

    # a project he may not see, named in _links.project, is one that does not exist
    assert [response.status_code for response in refused] == [422, 404, 404, 404, 404]
    assert state(catalog, stored) == before


# --- projects --------------------------------------------------------------------------------

@pytest.mark.parametrize("login", ["ada", "eve", "bob"])
def test_a_project_answers_its_members_and_admins(client, people, login):
    response = get(client, people, login, PROJECT_HREF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json == {
        "_type": "Project", "id": 1, "identifier": "demo", "name": "Demo",
        "_links": {
            "self": {"href": "/api/v3/projects/1", "title": "Demo"},
            "createWorkPackage": {"href": "/api/v3/projects/1/work_packages/form",
                                  "method": "post"},
            "createWorkPackageImmediately": {"href": "/api/v3/projects/1/work_packages",
                                             "method": "post"},
            "workPackages": {"href": "/api/v3/projects/1/work_packages"},
            "types": {"href": "/api/v3/projects/1/types"},
        },
    }


@pytest.mark.parametrize("login, path", [
    ("nora", "/api/v3/projects/1"),
    ("ada", "/api/v3/projects/99"),
    ("ada", f"/api/v3/projects/{HUGE_ID}"),
])
def test_a_project_is_hidden_from_non_members_and_absent_when_missing(
        client, people, team, login, path):
    assert_error(get(client, people, login, path), 404, "NotFound", NO_SUCH_PROJECT)


# --- a claimed attachment: who sees it, who deletes it ---------------------------------------

@pytest.fixture
def claimed(client, people, team):
    """walt's attachment 1 ("roof plan"), claimed for his work package 1."""
    attachment = uploaded(client, people, "walt", name="plan.txt", content=b"roof plan")
    created(client, people, "walt", attachment_ids=[attachment])
    return attachment


@pytest.mark.parametrize("login, may_delete", [
    ("walt", True), ("ada", True), ("eve", False), ("adam", False), ("atta", False),
])
def test_a_claimed_attachment_is_seen_by_who_may_view_work_packages(
        client, people, claimed, login, may_delete):
    response = get(client, people, login, f"/api/v3/attachments/{claimed}")

    assert response.status_code == 200
    links = response.json["_links"]
    assert links["container"] == {"href": "/api/v3/work_packages/1", "title": SUBJECT}
    assert links["author"]["title"] == "Walt Writer"
    assert ("delete" in links) is may_delete
    if may_delete:
        assert links["delete"] == {"href": f"/api/v3/attachments/{claimed}", "method": "delete"}
    download = get(client, people, login, f"/api/v3/attachments/{claimed}/download")
    assert (download.status_code, download.content) == (200, b"roof plan")


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v3/attachments/{id}"),
    ("GET", "/api/v3/attachments/{id}/download"),
    ("GET", "/api/v3/attachments/{id}/content"),
    ("DELETE", "/api/v3/attachments/{id}"),
])
@pytest.mark.parametrize("login", ["bob", "nora"])
def test_a_claimed_attachment_does_not_exist_for_who_may_not_view_work_packages(
        client, people, catalog, stored, claimed, login, method, path):
    before = state(catalog, stored)
    response = client.simulate_request(
        method, path.format(id=claimed), headers=people.auth(login))
    assert_error(response, 404, "NotFound", NO_SUCH_ATTACHMENT)
    assert state(catalog, stored) == before


@pytest.mark.parametrize("login", ["eve", "adam", "atta"])
def test_a_viewer_without_edit_work_packages_may_not_delete(
        client, people, catalog, stored, claimed, login):
    before = state(catalog, stored)
    response = client.simulate_delete(f"/api/v3/attachments/{claimed}",
                                      headers=people.auth(login))
    assert_error(response, 403, "MissingPermission",
                 "You are not allowed to delete this attachment. Missing permission: "
                 "edit_work_packages.")
    assert state(catalog, stored) == before


@pytest.mark.parametrize("login", ["walt", "ada"])
def test_edit_work_packages_deletes_a_claimed_attachment(
        client, people, team, catalog, stored, claimed, login):
    ((_, _, _, _, storage_key),) = stored.rows()
    assert list(stored.files()) == [storage_key]

    response = client.simulate_delete(f"/api/v3/attachments/{claimed}",
                                      headers=people.auth(login))

    assert (response.status_code, response.content) == (204, b"")
    assert stored.snapshot() == ([], {})
    assert work_packages(catalog) == [(1, SUBJECT, 1, team["walt"].id)]
    collection = get(client, people, "walt", "/api/v3/work_packages/1/attachments").json
    assert collection["total"] == 0


# --- the attachments of a work package -------------------------------------------------------

def container_path(work_package_id=1) -> str:
    return f"/api/v3/work_packages/{work_package_id}/attachments"


def test_the_attachments_of_a_work_package_are_a_hal_collection(client, people, claimed):
    # walt's unclaimed upload is nobody's attachment yet
    uploaded(client, people, "walt")
    second = upload(client, people, "walt", name="tiles.png", content=png_bytes(),
                    path=container_path())
    assert second.status_code == 200

    response = get(client, people, "eve", container_path())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json == {
        "_type": "Collection", "total": 2, "count": 2,
        "_embedded": {"elements": [
            get(client, people, "eve", f"/api/v3/attachments/{attachment_id}").json
            for attachment_id in (claimed, second.json["id"])
        ]},
        "_links": {"self": {"href": "/api/v3/work_packages/1/attachments"}},
    }
    work_package = get(client, people, "eve", "/api/v3/work_packages/1").json
    assert work_package["_embedded"]["attachments"] == response.json


@pytest.mark.parametrize("login, path", [
    ("bob", container_path()), ("nora", container_path()), ("ada", container_path(99)),
    ("ada", container_path(HUGE_ID)),
])
def test_the_attachments_of_an_invisible_work_package_are_404(
        client, people, claimed, login, path):
    assert_error(get(client, people, login, path), 404, "NotFound",
                 "The requested resource could not be found.")


@pytest.mark.parametrize("login, name", [
    ("walt", "Walt Writer"), ("atta", "Atta Attacher"), ("ada", "Ada Admin")])
def test_upload_into_a_work_package(client, people, team, catalog, stored, login, name):
    created(client, people, "walt")
    png = png_bytes()

    response = upload(client, people, login, name="tiles.png", content=png,
                      path=container_path())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json["_links"]["container"] == {
        "href": "/api/v3/work_packages/1", "title": SUBJECT}
    assert response.json["_links"]["author"] == {
        "href": f"/api/v3/users/{user_id(catalog, login)}", "title": name}
    assert (response.json["fileName"], response.json["contentType"]) == ("tiles.png", "image/png")
    assert containers(catalog) == {1: ("WorkPackage", 1)}
    ((_, name, size, _, storage_key),) = stored.rows()
    assert (name, size) == ("tiles.png", len(png))
    assert stored.files() == {storage_key: png}
    assert get(client, people, login, container_path()).json["_embedded"]["elements"] == [
        response.json]


@pytest.mark.parametrize("login, path, status, identifier, message", [
    ("eve", container_path(), 403, "MissingPermission", MAY_NOT_ADD_ATTACHMENTS),
    ("adam", container_path(), 403, "MissingPermission", MAY_NOT_ADD_ATTACHMENTS),
    ("bob", container_path(), 404, "NotFound", "The requested resource could not be found."),
    ("nora", container_path(), 404, "NotFound", "The requested resource could not be found."),
    ("ada", container_path(99), 404, "NotFound", "The requested resource could not be found."),
])
def test_a_refused_upload_into_a_work_package_reads_no_body(
        client, people, team, catalog, stored, login, path, status, identifier, message):
    created(client, people, "walt")
    before = state(catalog, stored)
    body, content_type = upload_body(file=b"never read")
    unread = UnreadBody()

    response = client.simulate_post(
        path, extras={"wsgi.input": unread},
        headers={**people.auth(login), "Content-Type": content_type,
                 "Content-Length": str(len(body))},
    )

    assert_error(response, status, identifier, message)
    assert unread.reads == []
    assert state(catalog, stored) == before


BOUNDARY = "b0undary"
METADATA_PART = ("metadata", b'{"fileName": "a.txt"}', {})
FILE_PART = ("file", b"some bytes", {})
CLOSING = f"--{BOUNDARY}--\r\n".encode()
BAD_BODIES = {
    "not multipart at all": (
        b"this is not a multipart body", "The request body is not valid multipart/form-data."),
    "no closing boundary": (
        multipart([METADATA_PART, FILE_PART], BOUNDARY)[0][:-len(CLOSING)],
        "The request body ended before the closing boundary."),
    "missing file part": (
        multipart([METADATA_PART], BOUNDARY)[0], "The request is missing the 'file' part."),
    "duplicated file part": (
        multipart([METADATA_PART, FILE_PART, FILE_PART], BOUNDARY)[0],
        "The part 'file' appears more than once."),
    "metadata not JSON": (
        multipart([("metadata", b"{fileName", {}), FILE_PART], BOUNDARY)[0],
        "The request could not be parsed as JSON."),
}


@pytest.mark.parametrize("body, message", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_bad_body_into_a_work_package_is_refused_like_a_containerless_one(
        client, people, team, catalog, stored, body, message):
    created(client, people, "walt")
    before = state(catalog, stored)

    for path in (container_path(), "/api/v3/attachments"):
        response = client.simulate_post(path, body=body, headers={
            **people.auth("walt"), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        assert_error(response, 400, "InvalidRequestBody", message)

    assert state(catalog, stored) == before


# --- racing claims ---------------------------------------------------------------------------

@pytest.fixture(params=["one app", "two apps on one database"])
def rival(request, app, settings, plugin_manager):
    """A second client: on the same app, or on a second app (another node) made from the same
    settings."""
    if request.param == "one app":
        return falcon.testing.TestClient(app)
    return falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))


def one_winner(responses, success, attachment, catalog):
    """The winning response of a claim race, after checking the loser's answer and the claim."""
    assert sorted(response.status_code for response in responses) == [success, 422]
    winner, loser = sorted(responses, key=lambda response: response.status_code)
    assert_error(loser, 422, "PropertyConstraintViolation", CANNOT_BE_CHANGED, "attachments")
    assert containers(catalog)[attachment] == ("WorkPackage", winner.json["id"])
    return winner


def test_two_creations_racing_for_one_attachment_have_one_winner(
        client, rival, people, team, catalog):
    for round_number in range(RACE_ROUNDS):
        attachment = uploaded(client, people, "walt")
        responses = race(*(
            lambda racer=racer, subject=subject: create(
                racer, people, "walt", document(subject, [link(attachment)]))
            for racer, subject in ((client, f"first {round_number}"),
                                   (rival, f"second {round_number}"))
        ))
        winner = one_winner(responses, 201, attachment, catalog)
        assert work_packages(catalog)[-1] == (
            winner.json["id"], winner.json["subject"], 1, team["walt"].id)
        assert len(work_packages(catalog)) == round_number + 1


def test_two_patches_racing_for_one_attachment_have_one_winner(
        client, rival, people, team, catalog):
    first = created(client, people, "walt", "first")
    second = created(client, people, "walt", "second")
    for round_number in range(RACE_ROUNDS):
        attachment = uploaded(client, people, "walt")
        subjects = {row[0]: row[1] for row in work_packages(catalog)}
        responses = race(*(
            lambda racer=racer, target=target: patch(
                racer, people, "walt", target,
                document(f"round {round_number}", [link(attachment)], project=None))
            for racer, target in ((client, first), (rival, second))
        ))
        winner = one_winner(responses, 200, attachment, catalog)
        loser_id = second if winner.json["id"] == first else first
        # the loser's change was undone with its claim
        assert {row[0]: row[1] for row in work_packages(catalog)} == {
            winner.json["id"]: f"round {round_number}", loser_id: subjects[loser_id]}


# --- the allowlist ---------------------------------------------------------------------------

class TestAllowlist:
    """With AFFIX_ALLOWLIST="image/png *.pdf": the sniffed type or the name's extension must be
    listed, for containerless uploads and uploads into a work package alike."""

    @pytest.fixture
    def settings(self, tmp_path, databases):
        return databases.settings(tmp_path / "data", max_attachment_size=SMALL_LIMIT,
                                  allowlist=("image/png", "*.pdf"))

    @pytest.fixture(autouse=True)
    def work_package(self, client, people, team):
        return created(client, people, "walt")

    @pytest.mark.parametrize("name, content, content_type", [
        ("tiles.png", png_bytes(), "image/png"),
        ("tiles.txt", png_bytes(), "image/png"),
        ("x.pdf", b"hello", "text/plain"),
        ("REPORT.PDF", b"hello", "text/plain"),
    ])
    @pytest.mark.parametrize("path", ["/api/v3/attachments", container_path()])
    def test_a_listed_type_or_extension_is_stored(
            self, client, people, stored, path, name, content, content_type):
        response = upload(client, people, "walt", name=name, content=content, path=path)

        assert response.status_code == 200
        assert (response.json["fileName"], response.json["contentType"]) == (name, content_type)
        ((_, stored_name, _, _, storage_key),) = stored.rows()
        assert stored_name == name
        assert stored.files() == {storage_key: content}

    @pytest.mark.parametrize("name, content, content_type", [
        ("notes.txt", b"hello", "text/plain"),
        ("notes.pdf.txt", b"hello", "text/plain"),
        ("notespdf", b"hello", "text/plain"),
        ("paper.txt", b"%PDF-1.4\n%%EOF\n", "application/pdf"),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"),
    ])
    @pytest.mark.parametrize("path", ["/api/v3/attachments", container_path()])
    def test_anything_else_is_rejected_and_leaves_nothing(
            self, client, people, catalog, stored, path, name, content, content_type):
        response = upload(client, people, "walt", name=name, content=content, path=path)

        assert_error(
            response, 422, "PropertyConstraintViolation",
            f"The file was rejected by an automatic filter. '{content_type}' is not allowed "
            "for upload.", "file")
        # no row, no blob, and nothing left in staging
        assert stored.snapshot() == ([], {})
        assert containers(catalog) == {}
