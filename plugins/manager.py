"""Building the plugin manager, and what affix asks of the plugins through it."""
import functools
import importlib.metadata
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from affix.plugins import ENTRY_POINT_GROUP, PROJECT_NAME, builtin, hookspecs
from affix.plugins.containers import ContainerType, ContainerTypes
from affix.plugins.uploads import UploadCandidate

if TYPE_CHECKING:  # pragma: no cover - names for the annotations only
    import falcon

    from affix.storage.models import Attachment, Catalog, User

log = logging.getLogger(__name__)
BUILTIN = "builtin"


class PluginError(Exception):
    """A plugin that cannot be used; the message names it and its distribution."""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which distribution brought each plugin, and making each
    implementation fail as its hook's spec declares."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        # plugin name -> (distribution name, version); the built-in plugin has none
        self.origins: dict[str, tuple[str, str] | None] = {}

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """pluggy's ``register``, and each of the plugin's implementations made to fail as its
        hook's spec declares (:data:`~affix.plugins.hookspecs.FAILURE_POLICY`)."""
        name = super().register(plugin, name)
        for caller in self.get_hookcallers(plugin) or ():
            policy = getattr(caller.spec and caller.spec.function, hookspecs.FAILURE_POLICY, None)
            for implementation in caller.get_hookimpls():
                if (policy is not None and implementation.plugin is plugin
                        and not (implementation.wrapper or implementation.hookwrapper)):
                    # pluggy declares it final; affix wraps the implementation it registered
                    implementation.function = _failing_as(  # type: ignore[misc]
                        policy, implementation, caller.name)
        return name

    def register_checked(self, plugin: object, name: str,
                         origin: tuple[str, str] | None = None) -> None:
        """Register ``plugin`` and check that every hook it implements exists."""
        self.origins[name] = origin
        try:
            self.register(plugin, name=name)
            self.check_pending()
        except pluggy.PluginValidationError as error:
            # pluggy's message spans lines; start-up errors are one line
            detail = " ".join(str(error).split())
            raise PluginError(f"{describe(name, origin)} cannot be used: {detail}") from None

    def load_entry_points(self) -> None:
        """Every plugin that an installed distribution declares in the ``affix`` group, except
        the blocked ones."""
        for distribution in importlib.metadata.distributions():
            for entry_point in distribution.entry_points:
                if entry_point.group != ENTRY_POINT_GROUP or self.is_blocked(entry_point.name):
                    continue
                if self.has_plugin(entry_point.name):
                    # the same distribution seen twice on sys.path: the first one wins
                    continue
                origin = (distribution.metadata["Name"], distribution.version)
                try:
                    plugin = entry_point.load()
                except Exception as error:
                    raise PluginError(
                        f"{describe(entry_point.name, origin)} failed to import: "
                        f"{type(error).__name__}: {error}"
                    ) from error
                self.register_checked(plugin, entry_point.name, origin)

    def listing(self) -> list[tuple[str, str, str, list[str]]]:
        """(name, distribution, version, hook names) for every registered plugin."""
        rows: list[tuple[str, str, str, list[str]]] = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                # a blocked name stays listed with no plugin behind it
                continue
            origin = self.origins.get(name) or ("affix", "built-in")
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or ())
            rows.append((name, *origin, hooks))
        return rows


def _failing_as(policy: str, implementation: pluggy.HookImpl,
                hook_name: str) -> Callable[..., object]:
    """``implementation``'s function, its failures logged with the plugin's name and then
    raised again or ignored, as ``policy`` says."""
    function = implementation.function
    message = f"plugin {implementation.plugin_name!r} failed in {hook_name}"

    @functools.wraps(function)
    def guarded(*arguments: object) -> object:
        try:
            return function(*arguments)
        except Exception:
            log.exception(message)
            if policy == hookspecs.LOGGED_AND_RAISED:
                raise
            return None
    return guarded


def describe(name: str, origin: tuple[str, str] | None) -> str:
    if origin is None:
        return f"plugin {name!r}"
    return f"plugin {name!r} (from {origin[0]} {origin[1]})"


def create_plugin_manager(load_entry_points: bool = True,
                          disabled: Iterable[str] = ()) -> PluginManager:
    """A plugin manager with affix's hooks, its built-in plugin and, unless told otherwise, every
    installed plugin; the plugins named in ``disabled`` are blocked."""
    manager = PluginManager()
    for name in disabled:
        manager.set_blocked(name)
    if not manager.is_blocked(BUILTIN):
        manager.register_checked(builtin, BUILTIN)
    if load_entry_points:
        manager.load_entry_points()
    return manager


def _flatten(results: Iterable[Iterable[str] | None]) -> frozenset[str]:
    return frozenset(name for names in results for name in names or ())


def upload_permissions(manager: pluggy.PluginManager) -> frozenset[str]:
    """Every permission name that some plugin says authorises a containerless upload."""
    return _flatten(manager.hook.affix_upload_permissions())


def container_types(manager: pluggy.PluginManager, catalog: "Catalog") -> ContainerTypes:
    return ContainerTypes(
        [kind for kinds in manager.hook.affix_container_types(catalog=catalog)
         for kind in kinds or ()]
    )


def known_permissions(manager: pluggy.PluginManager,
                      kinds: Iterable[ContainerType[Any]]) -> frozenset[str]:
    """Every permission name the installation knows: declared, or used by an upload permission
    or a container type."""
    declared = _flatten(manager.hook.affix_permissions())
    used = frozenset().union(*(kind.view | kind.add | kind.delete for kind in kinds))
    return declared | upload_permissions(manager) | used


def host_login(manager: pluggy.PluginManager, request: "falcon.Request") -> str | None:
    """The login plugins name for ``request``: the first non-blank string they answer, in
    pluggy's order; an answer that names nobody leaves the next plugin its say."""
    for login in manager.hook.affix_authenticate(request=request):
        if isinstance(login, str) and login.strip():
            return login
    return None


def upload_rejection(manager: pluggy.PluginManager, upload: UploadCandidate,
                     user: "User") -> str | None:
    """The first message, in pluggy's order, by which a policy rejects ``upload``; None when
    all accept. Every policy is asked: an empty answer is an acceptance, and must not keep the
    policies after it from being asked, as pluggy's ``firstresult`` would."""
    for message in manager.hook.affix_validate_upload(upload=upload, user=user):
        if message:
            return str(message)
    return None


class Events:
    """Tells plugins what happened, through the event hooks (whose implementations fail on
    their own: see :data:`~affix.plugins.hookspecs.LOGGED_AND_IGNORED`)."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.hook = manager.hook

    @staticmethod
    def _notify(caller: pluggy.HookCaller, **arguments: object) -> None:
        try:
            caller(**arguments)
        except Exception:
            # only a wrapper's own failure gets here: the request succeeded all the same
            log.exception("a wrapper of %s failed", caller.name)

    def created(self, attachment: "Attachment", user: "User") -> None:
        self._notify(self.hook.affix_attachment_created, attachment=attachment, user=user)

    def claimed(self, attachment: "Attachment", container: object, user: "User") -> None:
        self._notify(self.hook.affix_attachment_claimed, attachment=attachment,
                     container=container, user=user)

    def deleted(self, attachment: "Attachment", user: "User | None") -> None:
        self._notify(self.hook.affix_attachment_deleted, attachment=attachment, user=user)

    def scanned(self, attachment: "Attachment") -> None:
        self._notify(self.hook.affix_attachment_scanned, attachment=attachment)

    def quarantined(self, attachment: "Attachment", finding: str) -> None:
        self._notify(self.hook.affix_attachment_quarantined, attachment=attachment,
                     finding=finding)
