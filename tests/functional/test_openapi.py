"""The OpenAPI document describes exactly the routes the app answers."""
import re

import falcon.inspect
import falcon.testing

from affix.app.http.openapi import openapi_document
from affix.plugins.containers import ContainerTypes


def route_templates(app):
    """The app's URI templates with every field written as {id}, as the document writes them."""
    return {re.sub(r"\{[^}]+\}", "{id}", route.path)
            for route in falcon.inspect.inspect_routes(app)}


def test_every_route_is_documented_and_every_documented_path_is_a_route(app, client):
    response = client.simulate_get("/api/v3/spec.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == route_templates(app)


def test_methods_match_the_resources(app, client):
    document = client.simulate_get("/api/v3/spec.json").json
    for route in falcon.inspect.inspect_routes(app):
        path = re.sub(r"\{[^}]+\}", "{id}", route.path)
        served = {method.method.lower() for method in route.methods
                  if not method.internal}
        assert set(document["paths"][path]) == served, path


def test_every_schema_reference_resolves(client):
    document = client.simulate_get("/api/v3/spec.json").json
    references = set(re.findall(r'"#/components/schemas/(\w+)"', str(document).replace("'", '"')))
    assert references and references <= set(document["components"]["schemas"])


def test_the_document_carries_the_mount_prefix(app):
    response = falcon.testing.TestClient(app).simulate_get(
        "/api/v3/spec.json", extras={"SCRIPT_NAME": "/files"}
    )
    assert response.json["servers"] == [{"url": "/files"}]


def test_a_plugin_container_type_is_documented_with_its_routes():
    class Folders:
        name, segment = "Folder", "folders"

    # without the built-in plugin's work packages, only the plugin's type is there
    document = openapi_document("", ContainerTypes([Folders]))
    assert set(document["paths"]["/api/v3/folders/{id}/attachments"]) == {"get", "head", "post"}
    assert "/api/v3/work_packages" not in document["paths"]
