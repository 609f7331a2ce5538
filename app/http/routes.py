"""The routes of the API itself: health, its root, its configuration, its description."""
from swagger_ui_bundle import swagger_ui_path

from affix.app.http.configuration import ConfigurationResource
from affix.app.http.explorer import EXPLORER_ROUTE, ExplorerSink
from affix.app.http.health import HealthResource, ReadinessResource
from affix.app.http.openapi import OpenApiResource
from affix.app.http.root import RootResource
from affix.plugins.builtin import WORK_PACKAGE

INSTANCE_NAME = "affix"


def add_routes(app, services):
    kinds = services.container_types
    app.add_route("/health", HealthResource())
    app.add_route("/health/ready",
                  ReadinessResource(services.catalog.database, services.blob_store))
    app.add_route("/api/v3", RootResource(INSTANCE_NAME, WORK_PACKAGE in kinds))
    app.add_route("/api/v3/configuration",
                  ConfigurationResource(services.settings.max_attachment_size))
    app.add_route("/api/v3/spec.json", OpenApiResource(kinds, services.tus.enabled))
    app.add_sink(ExplorerSink(swagger_ui_path), EXPLORER_ROUTE)
