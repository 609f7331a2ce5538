"""The listing commands an operator expects (issue #25): ``affix user list``, ``project list``,
``role list``, ``member list PROJECT``, tab-separated with a count last, like ``apikey list``; and
``affix member remove LOGIN PROJECT`` (in ``member add``'s order), which refuses in one line and
changes nothing when there is nothing to remove; and the listings of
docs/guides/checking-and-listing.md, run as written."""
import pytest

from affix.app import open_catalog
from affix.app.settings import Settings
from support.cli import assert_refused, run_ok, transcript
from support.processes import REPO_ROOT

# the page's transcript, which it includes
LISTINGS = REPO_ROOT / "docs" / "examples" / "cli" / "listings.console"


@pytest.fixture
def cli_catalog(environ):
    catalog = open_catalog(Settings.from_environ(environ))
    yield catalog
    catalog.database.close()


def memberships(catalog):
    with catalog.database.connection_context():
        return sorted((m.user.login, m.project.identifier, m.role.name)
                      for m in catalog.Membership.select())


def install(catalog, users, projects, roles, members):
    """Written straight to the database (``test_cli.py`` tests the commands that add them):
    ``users`` (login, name, flags for the User), ``projects`` (identifier, name), ``roles``
    (name, its permissions), ``members`` (login, project, role), each in order."""
    with catalog.database.connection_context(), catalog.write_transaction():
        made_users = {login: catalog.User.create(login=login, name=name, **flags)
                      for login, name, flags in users}
        made_projects = {identifier: catalog.Project.create(identifier=identifier, name=name)
                         for identifier, name in projects}
        made_roles = {}
        for name, permissions in roles:
            made_roles[name] = catalog.Role.create(name=name)
            for permission in permissions:
                catalog.RolePermission.create(role=made_roles[name], permission=permission)
        for login, project, role in members:
            catalog.Membership.create(user=made_users[login], project=made_projects[project],
                                      role=made_roles[role])


@pytest.fixture
def team(cli_catalog):
    """Two projects, two roles; ada holds both roles in apollo, bob one, and carol one in
    gemini."""
    install(cli_catalog,
            users=[("ada", "Ada Lovelace", {"admin": True}), ("bob", "bob", {"locked": True}),
                   ("carol", "carol", {})],
            projects=[("apollo", "Apollo 11"), ("gemini", "gemini")],
            roles=[("reviewer", ["view_work_packages"]),
                   ("developer", ["view_work_packages", "add_work_packages"])],
            members=[("ada", "apollo", "reviewer"), ("ada", "apollo", "developer"),
                     ("bob", "apollo", "reviewer"), ("carol", "gemini", "developer")])


def test_the_listings_show_every_row_tab_separated_with_a_count(environ, team):
    # a deleted user's placeholder is nobody an operator can name: it is not listed
    run_ok(environ, "user", "add", "dora")
    run_ok(environ, "user", "delete", "dora")
    assert run_ok(environ, "user", "list") == (
        "1\tada\tAda Lovelace\tadmin\n"
        "2\tbob\tbob\tlocked\n"
        "3\tcarol\tcarol\t-\n"
        "3 users\n")
    assert run_ok(environ, "project", "list") == (
        "1\tapollo\tApollo 11\n"
        "2\tgemini\tgemini\n"
        "2 projects\n")
    assert run_ok(environ, "role", "list") == (
        "1\treviewer\tview_work_packages\n"
        "2\tdeveloper\tadd_work_packages, view_work_packages\n"
        "2 roles\n")
    assert run_ok(environ, "member", "list", "apollo") == (
        "1\tada\tdeveloper, reviewer\n"
        "2\tbob\treviewer\n"
        "2 members of 'apollo'\n")


def test_the_guide_s_listings_are_what_the_commands_print(environ, cli_catalog):
    # the page's install: its admin, ada and a locked bob, apollo, two roles
    install(cli_catalog,
            users=[("admin", "Admin", {"admin": True}), ("ada", "Ada Lovelace", {}),
                   ("bob", "bob", {"locked": True})],
            projects=[("apollo", "Apollo 11")],
            roles=[("developer", ["view_work_packages", "add_work_packages"]),
                   ("reviewer", ["view_work_packages"])],
            members=[("ada", "apollo", "developer"), ("ada", "apollo", "reviewer"),
                     ("bob", "apollo", "reviewer")])
    steps = transcript(LISTINGS)

    assert [argv for argv, _ in steps] == [
        ["user", "list"], ["project", "list"], ["role", "list"], ["member", "list", "apollo"]]
    assert [(argv, run_ok(environ, *argv)) for argv, _ in steps] == steps


def test_the_listings_of_a_fresh_install_are_a_count_of_nothing(environ):
    assert run_ok(environ, "user", "list") == "0 users\n"
    assert run_ok(environ, "project", "list") == "0 projects\n"
    assert run_ok(environ, "role", "list") == "0 roles\n"


def test_member_remove_takes_every_role_of_the_user_in_that_project_only(
        environ, team, cli_catalog):
    assert run_ok(environ, "member", "remove", "ada", "apollo") == (
        "removed 'ada' from 'apollo' (roles: developer, reviewer)\n")
    assert memberships(cli_catalog) == [("bob", "apollo", "reviewer"),
                                        ("carol", "gemini", "developer")]
    assert run_ok(environ, "member", "list", "apollo") == "2\tbob\treviewer\n1 member of 'apollo'\n"


def test_member_commands_naming_what_is_not_there_refuse_and_change_nothing(
        environ, team, cli_catalog, capsys):
    before = memberships(cli_catalog)
    for argv, message in (
            (["remove", "carol", "apollo"], "'carol' is no member of 'apollo'"),
            (["remove", "ada", "nowhere"], "no project 'nowhere'"),
            (["remove", "nobody", "apollo"], "no user with the login 'nobody'"),
            (["list", "nowhere"], "no project 'nowhere'")):
        assert_refused(capsys, environ, ["member", *argv], message)
        assert memberships(cli_catalog) == before


def test_member_remove_takes_its_arguments_in_the_order_member_add_does(environ, cli_catalog):
    """As getting started adds a member, and then as a newcomer undoes it."""
    run_ok(environ, "project", "add", "demo")
    run_ok(environ, "role", "add", "member", "view_work_packages")
    run_ok(environ, "user", "add", "bob")
    run_ok(environ, "member", "add", "bob", "demo", "member")

    assert run_ok(environ, "member", "remove", "bob", "demo") == (
        "removed 'bob' from 'demo' (roles: member)\n")
    assert memberships(cli_catalog) == []
