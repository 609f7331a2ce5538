"""The one place where affix's parts are made and wired: :func:`compose` serves the app
(:func:`affix.create_app`), every ``affix`` command and the tests.

Each part is built the first time it is asked for, from the settings and the parts it needs:
a command that only reads the database never builds a blob store, a plugin manager or the
attachment service. A part handed in is used as it is, in place of the one that would be built,
by every part that needs it: a test hands in a fake blob store, a clock, a scanner.
"""
import functools

from affix.app.settings import Settings, load_settings
from affix.storage.models import utc_now


def builtin_plugins(settings: Settings, scanner) -> list:
    """(name, plugin) of each policy affix brings that the settings ask for; registered after
    the installed plugins, so that pluggy asks them first. Affix's own hooks (work packages and
    their permissions, ``builtin``) are the one built-in plugin the settings do not decide:
    :func:`~affix.plugins.manager.create_plugin_manager` registers it first, whoever makes the
    manager (a plugin author's tests too)."""
    from affix.app.accounts.auth import TrustRemoteUser
    from affix.app.uploads.allowlist import Allowlist, AllowlistPolicy
    from affix.plugins.clamav import ClamavPlugin

    plugins: list[tuple[str, object]] = []
    if settings.allowlist:
        plugins.append(("allowlist", AllowlistPolicy(Allowlist(settings.allowlist))))
    if settings.trust_remote_user:
        plugins.append(("remote-user", TrustRemoteUser()))
    if settings.scan.mode == "stream":
        plugins.append(("clamav", ClamavPlugin(scanner, settings.scan.accept_unscanned)))
    return plugins


class Services:
    """affix's parts for ``settings``, each built on first use (see :func:`compose`). A part
    may be replaced, by assignment, until the first part that uses it is built."""

    def __init__(self, settings: Settings, *, clock, metrics_folder, plugin_manager, parts):
        self.settings = settings
        self.clock = clock
        # prometheus_client's multiprocess folder when the app is one of several workers
        self.metrics_folder = metrics_folder
        self._given_plugin_manager = plugin_manager
        unknown = sorted(name for name in parts if not isinstance(
            getattr(type(self), name, None), functools.cached_property))
        if unknown:
            raise TypeError(f"compose() knows no part {', '.join(unknown)}")
        # in the instance's dict, a part given takes the place of the cached property
        self.__dict__.update(parts)

    # --- the database, the stores ------------------------------------------------------

    @functools.cached_property
    def catalog(self):
        from affix.app import open_catalog
        return open_catalog(self.settings)

    @functools.cached_property
    def blob_store(self):
        from affix.storage.stores import open_blob_store
        return open_blob_store(self.settings.storage_url, self.settings.s3)

    @functools.cached_property
    def partials(self):
        """Where resumable uploads keep their bytes until they are complete."""
        from affix.storage.stores import open_partial_store
        return open_partial_store(self.blob_store)

    @functools.cached_property
    def staging(self):
        """Where direct uploads are sent, None for a store that takes none."""
        from affix.storage.stores import open_upload_staging
        return open_upload_staging(self.blob_store, self.settings.direct_upload_expiry)

    @functools.cached_property
    def part_staging(self):
        """Where direct uploads in parts are sent, None for a store that takes none."""
        from affix.storage.stores import open_part_staging
        return open_part_staging(self.blob_store, self.settings.direct_part_url_expiry)

    @functools.cached_property
    def resumable_uploads(self):
        """The table of resumable uploads under way."""
        from affix.storage.resumable import ResumableUploads
        return ResumableUploads(self.catalog)

    @functools.cached_property
    def outbox(self):
        from affix.storage.outbox import Outbox
        return Outbox(self.catalog)

    # --- plugins, and what they tell ----------------------------------------------------

    @functools.cached_property
    def scanner(self):
        from affix.plugins.clamav import ClamdScanner
        return ClamdScanner(self.settings.scan.clamd, self.settings.scan.timeout)

    @functools.cached_property
    def plugin_manager(self):
        """The manager handed in, or one with every installed plugin except the disabled ones;
        the built-in policies the settings ask for registered on it: it belongs to this
        composition from then on."""
        from affix.plugins.manager import create_plugin_manager
        manager = self._given_plugin_manager
        if manager is None:
            manager = create_plugin_manager(disabled=self.settings.disabled_plugins)
        scanner = self.scanner if self.settings.scan.mode == "stream" else None
        for name, plugin in builtin_plugins(self.settings, scanner):
            manager.register(plugin, name=name)
        return manager

    @functools.cached_property
    def container_types(self):
        from affix.plugins.manager import container_types
        from affix.storage.database import release_connections
        kinds = container_types(self.plugin_manager, self.catalog)
        # plugins may have used the database making their tables: nothing of it may cross a
        # fork
        release_connections(self.catalog.database)
        return kinds

    @functools.cached_property
    def events(self):
        """What plugins hear of attachments."""
        from affix.plugins.manager import Events
        return Events(self.plugin_manager)

    @functools.cached_property
    def webhooks(self):
        """The events written to the webhooks' outbox."""
        from affix.app.webhooks.delivery import WebhookEvents
        return WebhookEvents(outbox=self.outbox, clock=self.clock)

    @functools.cached_property
    def _metrics(self):
        """(metrics, the WSGI app that serves them), both None without a metrics listener."""
        if not self.settings.metrics_bind:
            return None, None
        from affix.app.metrics import create_metrics
        return create_metrics(self.catalog, self.outbox, self.settings, self.clock,
                              self.metrics_folder)

    @property
    def metrics(self):
        return self._metrics[0]

    @property
    def metrics_app(self):
        return self._metrics[1]

    # --- the services -------------------------------------------------------------------

    @functools.cached_property
    def sniffer(self):
        from affix.app.uploads.content_types import ContentSniffer
        return ContentSniffer()

    @functools.cached_property
    def permissions(self):
        from affix.app.accounts.permissions import Permissions
        from affix.plugins.manager import upload_permissions
        return Permissions(catalog=self.catalog,
                           upload_permissions=upload_permissions(self.plugin_manager))

    @functools.cached_property
    def lifecycle(self):
        from affix.app.attachments.lifecycle import Lifecycle
        return Lifecycle(self.settings.scan.enabled)

    @functools.cached_property
    def attachments(self):
        from affix.app.attachments.service import AttachmentService
        metrics = self.metrics
        return AttachmentService(
            catalog=self.catalog, blob_store=self.blob_store,
            max_attachment_size=self.settings.max_attachment_size, sniffer=self.sniffer,
            clock=self.clock, permissions=self.permissions,
            container_types=self.container_types, plugin_manager=self.plugin_manager,
            lifecycle=self.lifecycle, webhooks=self.webhooks,
            count_inspection=metrics.inspected if metrics is not None else None,
        )

    @functools.cached_property
    def stored_uploads(self):
        from affix.app.uploads.finishing import StoredUploads
        return StoredUploads(service=self.attachments, blob_store=self.blob_store)

    @functools.cached_property
    def direct_uploads(self):
        from affix.app.uploads.allowlist import Allowlist
        from affix.app.uploads.direct import DirectUploads
        return DirectUploads(
            service=self.attachments, stored=self.stored_uploads, staging=self.staging,
            parts=self.part_staging, size_limit=self.settings.direct_upload_limit,
            allowlist=Allowlist(self.settings.allowlist))

    @functools.cached_property
    def tus(self):
        from affix.app.uploads.tus import TusUploads
        return TusUploads(
            service=self.attachments, stored=self.stored_uploads, table=self.resumable_uploads,
            partials=self.partials, max_size=self.settings.tus_limit,
            expiry=self.settings.tus_expiry)

    @functools.cached_property
    def work_packages(self):
        """Work packages, None unless the built-in plugin provides their type."""
        from affix.app.work_packages.service import WorkPackages
        from affix.plugins.builtin import WORK_PACKAGE
        if WORK_PACKAGE not in self.container_types:
            return None
        return WorkPackages(service=self.attachments,
                            direct_uploads_available=self.direct_uploads.available)


def compose(settings: Settings | None = None, *, clock=utc_now, metrics_folder=None,
            plugin_manager=None, **parts) -> Services:
    """affix's parts for ``settings`` (when None, what ``load_settings()`` finds: the
    environment and affix.toml).
    ``parts`` are parts handed in by name (``catalog=``, ``blob_store=``, ``scanner=``,
    ``sniffer=``, ``partials=``, ``resumable_uploads=``...: any of :class:`Services`'), used in
    place of the ones that would be built. A ``plugin_manager`` handed in gets the built-in
    policies the settings ask for registered on it."""
    settings = load_settings() if settings is None else settings
    return Services(settings, clock=clock, metrics_folder=metrics_folder,
                    plugin_manager=plugin_manager, parts=parts)
