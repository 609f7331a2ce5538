"""affix's HTTP face. :func:`create_app` builds a WSGI app from explicit collaborators."""
# first: streaming-form-data (imported by app/uploads/multipart.py) must find its unused
# imports deferred
import affix.app.uploads.deferred_imports  # noqa: F401
import os

import falcon.media

from affix.app.accounts import routes as account_routes
from affix.app.attachments import routes as attachment_routes
from affix.app.http import routes as http_routes
from affix.app.uploads import routes as upload_routes
from affix.app.work_packages import routes as work_package_routes
from affix.app.accounts.auth import Authenticator
from affix.app.composition import Services, compose
from affix.app.http.cors import CrossOrigin
from affix.app.http.errors import HAL_JSON, install_error_handlers
from affix.app.http.ids import IdConverter
from affix.app.metrics import serve_metrics_apart
from affix.app.http.request_facts import RequestFactsMiddleware
from affix.app.http.request_json import JsonBodyLimit
from affix.app.http.routing import App, PathNormaliser, ShadowedIds
from affix.app.settings import Settings, metrics_port
from affix.plugins.manager import host_login
from affix.storage.database import open_database, release_connections
from affix.storage.migrations import migrate, schema_version
from affix.storage.models import Catalog, utc_now


class DatabaseSession:
    """Falcon middleware: one database connection per request, closed however it ends."""

    def __init__(self, database):
        self.database = database

    def process_resource(self, req, resp, resource, params):
        if getattr(resource, "uses_database", True):
            self.database.connect(reuse_if_open=True)

    def process_response(self, req, resp, resource, req_succeeded):
        if not self.database.is_closed():
            self.database.close()


def connect_catalog(settings: Settings) -> Catalog:
    """The settings' database, its schema as it is."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Catalog(open_database(settings.database_url))


def database_exists(settings: Settings) -> bool:
    """Whether the settings' database is there, looked at without making it: an SQLite file,
    or a PostgreSQL database that holds affix's tables."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        return path == ":memory:" or os.path.isfile(path)
    database = open_database(url)
    try:
        with database.connection_context():
            return schema_version(database) > 0
    finally:
        release_connections(database)


def open_catalog(settings: Settings) -> Catalog:
    """The settings' database with its schema brought up to date: an embedded affix needs no
    set-up, and checking a database that is up to date costs one query."""
    catalog = connect_catalog(settings)
    migrate(catalog.database)
    return catalog


def create_app(settings: Settings | None = None, *, services: Services | None = None,
               clock=utc_now, metrics_folder=None, plugin_manager=None, **parts):
    """The affix WSGI app, made of ``services`` (:func:`~affix.compose`'s),
    or of the parts :func:`~affix.compose` makes of ``settings`` and the
    collaborators given here (``clock=``, ``plugin_manager=``, ``catalog=``, ``blob_store=``,
    ``scanner=``...). Reads the environment only when neither ``settings`` nor ``services`` are
    given.

    With ``settings.metrics_bind``, requests that come in on that listener are answered with
    the metrics; ``metrics_folder`` is prometheus_client's multiprocess folder when this app is
    one of several worker processes (``affix serve`` passes it), None to count in this process.

    A ``plugin_manager`` passed in belongs to this app from then on: the built-in policies the
    settings ask for (the allowlist, trusting ``REMOTE_USER``) are registered on it.
    """
    if services is None:
        services = compose(settings, clock=clock, metrics_folder=metrics_folder,
                           plugin_manager=plugin_manager, **parts)
    settings, catalog, clock = services.settings, services.catalog, services.clock
    plugin_manager = services.plugin_manager
    app = App(
        media_type=HAL_JSON,
        middleware=[
            # first: every other middleware, and the router, see the normalised path
            PathNormaliser(),
            # next: it gathers what the log and the metrics say of every request, preflights too
            RequestFactsMiddleware(services.metrics),
            # a preflight is answered before anything asks for a body, a database or a key
            CrossOrigin(settings.cors_origins),
            JsonBodyLimit(settings.max_json_size),
            DatabaseSession(catalog.database),
            Authenticator(catalog=catalog,
                          host_identity=lambda req: host_login(plugin_manager, req), clock=clock),
            ShadowedIds(),
        ],
    )
    json_handler = falcon.media.JSONHandler()
    app.req_options.media_handlers[HAL_JSON] = json_handler
    app.resp_options.media_handlers[HAL_JSON] = json_handler
    install_error_handlers(app)
    app.router_options.converters["id"] = IdConverter
    for feature in (http_routes, attachment_routes, upload_routes, account_routes,
                    work_package_routes):
        feature.add_routes(app, services)
    if services.metrics_app is not None:
        return serve_metrics_apart(app, services.metrics_app,
                                   metrics_port(settings.metrics_bind))
    return app
