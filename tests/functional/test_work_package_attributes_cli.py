"""``affix type|status|priority add|list``, and ``affix project add`` refusing an identifier the
API could not tell from an id."""
import falcon.testing
import pytest

from affix.app import create_app, open_catalog
from affix.app.settings import Settings
from affix.app.testing import People
from affix.plugins.manager import create_plugin_manager
from support.cli import affix


@pytest.fixture
def catalog_of(environ):
    catalog = open_catalog(Settings.from_environ(environ))
    yield catalog
    catalog.database.close()


def test_a_new_default_type_replaces_the_old_default(environ, catalog_of):
    assert affix(environ, "type", "add", "Risk", "--milestone", "--default") == (
        0, "created type 'Risk' (id 8)\n")
    assert affix(environ, "type", "list") == (0, (
        "1 Task\n2 Milestone (milestone)\n3 Phase\n4 Feature\n5 Epic\n6 User story\n7 Bug\n"
        "8 Risk (default, milestone)\n"))
    with catalog_of.database.connection_context():
        assert [t.name for t in catalog_of.Type.select().where(catalog_of.Type.is_default)] == [
            "Risk"]


def test_statuses_and_priorities(environ):
    assert affix(environ, "status", "add", "Parked", "--closed") == (
        0, "created status 'Parked' (id 15)\n")
    assert affix(environ, "status", "list")[1].splitlines()[-3:] == [
        "13 On hold", "14 Rejected (closed)", "15 Parked (closed)"]
    assert affix(environ, "priority", "add", "Whenever", "--inactive") == (
        0, "created priority 'Whenever' (id 5)\n")
    assert affix(environ, "priority", "list") == (
        0, "1 Low\n2 Normal (default)\n3 High\n4 Immediate\n5 Whenever (inactive)\n")


def test_a_taken_name_is_refused_and_changes_nothing(environ, catalog_of, capsys):
    assert affix(environ, "type", "add", "Task", "--default") == (1, "")
    assert capsys.readouterr().err == "affix: error: a type 'Task' already exists\n"
    with catalog_of.database.connection_context():
        assert [(t.name, t.is_default) for t in catalog_of.Type.select().where(
            catalog_of.Type.is_default)] == [("Task", True)]
        assert catalog_of.Type.select().count() == 7


def test_an_inactive_priority_is_given_to_no_work_package(environ, tmp_path, databases):
    assert affix(environ, "priority", "add", "Whenever", "--inactive")[0] == 0
    settings = databases.settings(tmp_path / "data")
    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=create_plugin_manager(load_entry_points=False)))
    catalog = open_catalog(settings)
    people = People(catalog)
    people.add("ada", admin=True)
    with catalog.database.connection_context():
        catalog.Project.create(identifier="demo", name="Demo")
    response = client.simulate_post("/api/v3/projects/demo/work_packages", json={
        "subject": "Roof", "_links": {"priority": {"href": "/api/v3/priorities/5"}}},
        headers=people.auth("ada"))
    assert response.status_code == 422
    assert response.json["message"] == "Priority is not set to one of the allowed values."
    with catalog.database.connection_context():
        assert catalog.WorkPackage.select().count() == 0
    catalog.database.close()


def test_an_all_digit_project_identifier_is_refused(environ, catalog_of, capsys):
    assert affix(environ, "project", "add", "42") == (1, "")
    assert capsys.readouterr().err == (
        "affix: error: a project identifier cannot be all digits: '42'\n")
    with catalog_of.database.connection_context():
        assert catalog_of.Project.select().count() == 0
