"""How many SQL statements a request runs: a fixed number, however many attachments a work
package has. Each rendered attachment comes from one resolved view (its row with its author,
its container with the container's project, and the permissions of the user in that project
asked once), never from a query per attachment.

The numbers are exact, the API key's lookup included: a change that adds a statement to one of
these requests shows here."""
import pytest

from support.cli import run_ok
from support.client import get, uploaded
from support.statements import statements_run
from support.work_packages import create, created, document

# the API key's user; the attachment with its author; its container with the container's
# project; the user's permissions in that project
CLAIMED_ATTACHMENT = 4
# the API key's user; the attachment with its author
CONTAINERLESS_ATTACHMENT = 2
# what the attachment's GET runs: the bytes come from the blob store
CLAIMED_DOWNLOAD = CLAIMED_ATTACHMENT
# the API key's user; the work package with its project and attributes; the user's permissions
# in its project; its attachments with their authors
WORK_PACKAGE = 4
# the API key's user; the work package with its project; the user's permissions in its
# project; its attachments with their authors
ATTACHMENT_LIST = 4
# the API key's user; whether they may view work packages anywhere; the page's COUNT and its
# rows; the user's permissions in all the page's projects
WORK_PACKAGE_LIST = 5
# the API key's user; the project; whether the user is a member; the user's permissions in
# it; the page's COUNT and its rows
PROJECT_WORK_PACKAGE_LIST = 6


def counted(client, people, login, path):
    """(response, statements) of ``login``'s GET of ``path``, the statements it ran counted.

    A first GET goes before the counted one: it records the key's first use, a write that
    later requests within minutes are spared."""
    get(client, people, login, "/api/v3")
    with statements_run() as statements:
        response = get(client, people, login, path)
    assert response.status_code == 200, response.json
    return response, statements


def work_package_with(client, people, attachments) -> int:
    """A work package of project demo, made by Ada, with ``attachments`` attachments."""
    attachment_ids = [uploaded(client, people, "ada", name=f"file-{number}.txt")
                      for number in range(attachments)]
    return created(client, people, "ada", attachment_ids=attachment_ids)


def test_an_attachment_without_a_container(client, people):
    attachment_id = uploaded(client, people, "bob")
    response, statements = counted(client, people, "bob", f"/api/v3/attachments/{attachment_id}")
    assert response.json["_links"]["container"] == {"href": None}
    assert len(statements) == CONTAINERLESS_ATTACHMENT, statements


def claimed_attachment(client, people):
    """(work package id, attachment id) of Ada's one attachment of a new work package."""
    attachment_id = uploaded(client, people, "ada")
    return created(client, people, "ada", attachment_ids=[attachment_id]), attachment_id


def test_a_claimed_attachment_seen_through_a_project_permission(client, people):
    work_package_id, attachment_id = claimed_attachment(client, people)
    response, statements = counted(client, people, "eve",
                                   f"/api/v3/attachments/{attachment_id}")
    assert response.json["_links"]["container"]["href"] == (
        f"/api/v3/work_packages/{work_package_id}")
    assert len(statements) == CLAIMED_ATTACHMENT, statements


def test_the_download_of_a_claimed_attachment(client, people):
    _, attachment_id = claimed_attachment(client, people)
    response, statements = counted(client, people, "eve",
                                   f"/api/v3/attachments/{attachment_id}/content")
    assert response.content == b"hello"
    assert len(statements) == CLAIMED_DOWNLOAD, statements


@pytest.mark.parametrize("attachments", [5, 20])
def test_a_work_package_with_its_attachments(client, people, attachments):
    work_package_id = work_package_with(client, people, attachments)
    response, statements = counted(client, people, "eve",
                                   f"/api/v3/work_packages/{work_package_id}")
    assert response.json["_embedded"]["attachments"]["total"] == attachments
    assert len(statements) == WORK_PACKAGE, statements


@pytest.mark.parametrize("attachments", [5, 20])
def test_the_attachment_list_of_a_work_package(client, people, attachments):
    work_package_id = work_package_with(client, people, attachments)
    response, statements = counted(client, people, "eve",
                                   f"/api/v3/work_packages/{work_package_id}/attachments")
    assert response.json["total"] == attachments
    assert len(statements) == ATTACHMENT_LIST, statements


@pytest.mark.parametrize("projects", [1, 4])
def test_a_list_of_work_packages_in_several_projects(client, people, environ, projects):
    """Eve sees one work package in each of ``projects`` projects, all on one page."""
    for number in range(1, projects):
        run_ok(environ, "project", "add", f"project-{number}")
        run_ok(environ, "member", "add", "eve", f"project-{number}", "role-of-eve")
    for identifier in ["demo", *(f"project-{number}" for number in range(1, projects))]:
        response = create(client, people, "ada",
                          document(project=f"/api/v3/projects/{identifier}"))
        assert response.status_code == 201, response.json
    response, statements = counted(client, people, "eve", "/api/v3/work_packages")
    assert response.json["total"] == projects
    assert len(statements) == WORK_PACKAGE_LIST, statements


def test_the_work_packages_of_a_project(client, people):
    work_package_with(client, people, 0)
    response, statements = counted(client, people, "eve", "/api/v3/projects/demo/work_packages")
    assert response.json["total"] == 1
    assert len(statements) == PROJECT_WORK_PACKAGE_LIST, statements
