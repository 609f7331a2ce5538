"""How many SQL statements a request runs: a fixed number, however many attachments a work
package has. Each rendered attachment comes from one resolved view (its row with its author,
its container with the container's project, and the permissions of the user in that project
asked once), never from a query per attachment.

The numbers are exact, the API key's lookup included: a change that adds a statement to one of
these requests shows here."""
import pytest

from support.client import get, uploaded
from support.statements import statements_run
from support.work_packages import created

# the API key's user; the attachment with its author; its container with the container's
# project; the user's permissions in that project
CLAIMED_ATTACHMENT = 4
# the API key's user; the attachment with its author
CONTAINERLESS_ATTACHMENT = 2
# the API key's user; the work package with its project and attributes; the user's permissions
# in its project; its attachments with their authors
WORK_PACKAGE = 4
# the API key's user; the work package with its project; the user's permissions in its
# project; its attachments with their authors
ATTACHMENT_LIST = 4


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


def test_a_claimed_attachment_seen_through_a_project_permission(client, people):
    work_package_id = work_package_with(client, people, 1)
    attachment_id = get(client, people, "eve", f"/api/v3/work_packages/{work_package_id}/"
                        "attachments").json["_embedded"]["elements"][0]["id"]
    response, statements = counted(client, people, "eve",
                                   f"/api/v3/attachments/{attachment_id}")
    assert response.json["_links"]["container"]["href"] == (
        f"/api/v3/work_packages/{work_package_id}")
    assert len(statements) == CLAIMED_ATTACHMENT, statements


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
