"""affix's HTTP face. :func:`create_app` builds a WSGI app from explicit collaborators."""
# first: streaming-form-data (imported by app/uploads/multipart.py) must find its unused
# imports deferred
import affix.app.uploads.deferred_imports  # noqa: F401
import falcon.media

from affix.app.uploads.allowlist import Allowlist, AllowlistPolicy
from affix.app.attachments.service import AttachmentService
from affix.app.accounts.auth import Authenticator, TrustRemoteUser
from affix.app.uploads.content_types import ContentSniffer
from affix.app.http.cors import CrossOrigin
from affix.app.uploads.direct import DirectUploads
from affix.app.http.errors import HAL_JSON, install_error_handlers
from affix.app.http.ids import IdConverter
from affix.app.attachments.lifecycle import Lifecycle
from affix.app.metrics import create_metrics, serve_metrics_apart
from affix.app.http.openapi import OpenApiResource
from affix.app.accounts.permissions import Permissions
from affix.app.http.request_facts import RequestFactsMiddleware
from affix.app.http.request_json import JsonBodyLimit
from affix.app.attachments.resources import (
    AttachmentContentResource, AttachmentResource, AttachmentsResource,
    ContainerAttachmentsResource,
)
from affix.app.uploads.direct_resources import (
    CompleteUploadResource, ContainerPrepareUploadResource, PrepareUploadResource,
)
from affix.app.work_packages.forms import (
    ProjectWorkPackageCreateFormResource, WorkPackageCreateFormResource,
    WorkPackageUpdateFormResource,
)
from affix.app.http.health import HealthResource, ReadinessResource
from affix.app.http.configuration import ConfigurationResource
from affix.app.accounts.project_resources import ProjectResource, ProjectsResource
from affix.app.http.root import RootResource
from affix.app.accounts.user_resources import UserResource
from affix.app.work_packages.attributes import (
    AttributeResource, AttributesResource, ProjectTypesResource, attribute_kinds,
)
from affix.app.work_packages.resources import (
    ProjectWorkPackagesResource, WorkPackageResource, WorkPackagesResource,
)
from affix.app.uploads.tus_resources import TUS_PATH, TusCreationResource, TusUploadResource
from affix.app.http.routing import App, PathNormaliser, ShadowedIds
from affix.app.settings import Settings, metrics_port
from affix.app.uploads.finishing import StoredUploads
from affix.app.uploads.tus import TusUploads
from affix.app.webhooks.delivery import WebhookEvents
from affix.app.work_packages.service import WorkPackages
from affix.plugins.builtin import WORK_PACKAGE
from affix.plugins.clamav import ClamavPlugin, ClamdScanner
from affix.plugins.manager import (
    container_types, create_plugin_manager, host_login, upload_permissions,
)
from affix.storage.resumable import ResumableUploads
from affix.storage.stores import open_blob_store, open_partial_store, open_upload_staging
from affix.storage.database import open_database, release_connections
from affix.storage.migrations import migrate
from affix.storage.models import Catalog, utc_now
from affix.storage.outbox import Outbox

INSTANCE_NAME = "affix"


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


def open_catalog(settings: Settings) -> Catalog:
    """The settings' database with its schema brought up to date: an embedded affix needs no
    set-up, and checking a database that is up to date costs one query."""
    catalog = connect_catalog(settings)
    migrate(catalog.database)
    return catalog


def create_app(settings: Settings | None = None, *, plugin_manager=None, clock=utc_now,
               metrics_folder=None):
    """The affix WSGI app. Reads the environment only when no ``settings`` are given; every
    collaborator is made here and handed to the resources that need it.

    With ``settings.metrics_bind``, requests that come in on that listener are answered with
    the metrics; ``metrics_folder`` is prometheus_client's multiprocess folder when this app is
    one of several worker processes (``affix serve`` passes it), None to count in this process.

    A ``plugin_manager`` passed in belongs to this app from then on: the built-in policies the
    settings ask for (the allowlist, trusting ``REMOTE_USER``) are registered on it.
    """
    settings = Settings.from_environ() if settings is None else settings
    if plugin_manager is None:
        plugin_manager = create_plugin_manager(disabled=settings.disabled_plugins)
    if settings.allowlist:
        plugin_manager.register(AllowlistPolicy(Allowlist(settings.allowlist)), name="allowlist")
    if settings.trust_remote_user:
        plugin_manager.register(TrustRemoteUser(), name="remote-user")
    if settings.scan.mode == "stream":
        plugin_manager.register(ClamavPlugin(
            # scan_options requires AFFIX_CLAMD in every mode but off
            ClamdScanner(settings.scan.clamd, settings.scan.timeout),  # type: ignore[arg-type]
            settings.scan.accept_unscanned), name="clamav")
    catalog = open_catalog(settings)
    kinds = container_types(plugin_manager, catalog)
    # plugins may have used the database making their tables: nothing of it may cross a fork
    release_connections(catalog.database)
    blob_store = open_blob_store(settings.storage_url, settings.s3)
    metrics = metrics_app = None
    if settings.metrics_bind:
        metrics, metrics_app = create_metrics(catalog, settings, clock, metrics_folder)
    service = AttachmentService(
        catalog, blob_store, settings.max_attachment_size, ContentSniffer(), clock,
        Permissions(catalog, upload_permissions(plugin_manager)), kinds, plugin_manager,
        Lifecycle(settings.scan.enabled), WebhookEvents(Outbox(catalog), clock),
        metrics.inspected if metrics is not None else None,
    )
    stored_uploads = StoredUploads(service, blob_store)
    direct_uploads = DirectUploads(
        service, stored_uploads, open_upload_staging(blob_store, settings.direct_upload_expiry),
        settings.direct_upload_limit, Allowlist(settings.allowlist),
    )
    tus = TusUploads(service, stored_uploads, ResumableUploads(catalog),
                     open_partial_store(blob_store), settings.tus_limit, settings.tus_expiry)

    app = App(
        media_type=HAL_JSON,
        middleware=[
            # first: every other middleware, and the router, see the normalised path
            PathNormaliser(),
            # next: it gathers what the log and the metrics say of every request, preflights too
            RequestFactsMiddleware(metrics),
            # a preflight is answered before anything asks for a body, a database or a key
            CrossOrigin(settings.cors_origins),
            JsonBodyLimit(settings.max_json_size),
            DatabaseSession(catalog.database),
            Authenticator(catalog, lambda req: host_login(plugin_manager, req), clock),
            ShadowedIds(),
        ],
    )
    json_handler = falcon.media.JSONHandler()
    app.req_options.media_handlers[HAL_JSON] = json_handler
    app.resp_options.media_handlers[HAL_JSON] = json_handler
    install_error_handlers(app)
    app.router_options.converters["id"] = IdConverter

    app.add_route("/health", HealthResource())
    app.add_route("/health/ready", ReadinessResource(catalog.database, blob_store))
    app.add_route("/api/v3", RootResource(INSTANCE_NAME, WORK_PACKAGE in kinds))
    app.add_route("/api/v3/configuration", ConfigurationResource(settings.max_attachment_size))
    app.add_route("/api/v3/spec.json", OpenApiResource(kinds, tus.enabled))
    app.add_route("/api/v3/attachments", AttachmentsResource(service))
    app.add_route("/api/v3/attachments/{attachment_id:id}", AttachmentResource(service))
    app.add_route("/api/v3/attachments/prepare", PrepareUploadResource(direct_uploads))
    app.add_route("/api/v3/attachments/{attachment_id:id}/uploaded",
                  CompleteUploadResource(direct_uploads))
    if tus.enabled:
        # AFFIX_TUS_MAX_SIZE=0: no route, so every tus path answers 404
        app.add_route(TUS_PATH, TusCreationResource(tus))
        app.add_route(TUS_PATH + "/{token}", TusUploadResource(tus))
    content = AttachmentContentResource(service)
    app.add_route("/api/v3/attachments/{attachment_id:id}/download", content)
    app.add_route("/api/v3/attachments/{attachment_id:id}/content", content)
    app.add_route("/api/v3/users/{user_id:id}", UserResource(catalog))
    app.add_route("/api/v3/projects", ProjectsResource(catalog))
    # a project's id or its identifier
    app.add_route("/api/v3/projects/{project_id}", ProjectResource(catalog))
    if WORK_PACKAGE in kinds:
        # work packages are affix's own API only while the built-in plugin provides the type
        work_packages = WorkPackages(service, direct_uploads.available)
        app.add_route("/api/v3/projects/{project_id}/work_packages",
                      ProjectWorkPackagesResource(work_packages))
        app.add_route("/api/v3/work_packages", WorkPackagesResource(work_packages))
        app.add_route("/api/v3/work_packages/form", WorkPackageCreateFormResource(work_packages))
        app.add_route("/api/v3/projects/{project_id}/work_packages/form",
                      ProjectWorkPackageCreateFormResource(work_packages))
        app.add_route("/api/v3/work_packages/{container_id:id}/form",
                      WorkPackageUpdateFormResource(work_packages))
        # the same field name as the container routes below, which share this path level
        app.add_route("/api/v3/work_packages/{container_id:id}",
                      WorkPackageResource(work_packages))
        for segment, attributes in attribute_kinds(catalog, service.permissions):
            app.add_route(f"/api/v3/{segment}", AttributesResource(attributes))
            app.add_route(f"/api/v3/{segment}/{{attribute_id:id}}",
                          AttributeResource(attributes))
            if segment == "types":
                app.add_route("/api/v3/projects/{project_id}/types",
                              ProjectTypesResource(attributes))
    for kind in kinds:
        app.add_route(
            f"/api/v3/{kind.segment}/{{container_id:id}}/attachments",
            # work packages are claimed for by creating or changing them, as in OpenProject
            ContainerAttachmentsResource(service, kind,
                                         claims_by_json=kind.name != WORK_PACKAGE),
        )
        app.add_route(
            f"/api/v3/{kind.segment}/{{container_id:id}}/attachments/prepare",
            ContainerPrepareUploadResource(direct_uploads, kind),
        )
    if metrics_app is not None:
        return serve_metrics_apart(app, metrics_app, metrics_port(settings.metrics_bind))
    return app
