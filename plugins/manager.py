"""Building the plugin manager, and calling hooks the way affix needs them called."""
import importlib.metadata
import logging

import pluggy

from plugins import ENTRY_POINT_GROUP, PROJECT_NAME, builtin, hookspecs
from plugins.containers import ContainerTypes

log = logging.getLogger(__name__)
BUILTIN = "builtin"


class PluginError(Exception):
    """A plugin that cannot be used; the message names it and its distribution."""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which distribution brought each plugin."""

    def __init__(self):
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        # plugin name -> (distribution name, version); the built-in plugin has none
        self.origins = {}

    def register_checked(self, plugin, name, origin=None):
        """Register ``plugin`` and check that every hook it implements exists."""
        self.origins[name] = origin
        try:
            self.register(plugin, name=name)
            self.check_pending()
        except pluggy.PluginValidationError as error:
            # pluggy's message spans lines; start-up errors are one line
            detail = " ".join(str(error).split())
            raise PluginError(f"{describe(name, origin)} cannot be used: {detail}") from None

    def load_entry_points(self):
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

    def listing(self):
        """(name, distribution, version, hook names) for every registered plugin."""
        rows = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                # a blocked name stays listed with no plugin behind it
                continue
            origin = self.origins.get(name) or ("affix", "built-in")
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or ())
            rows.append((name, *origin, hooks))
        return rows


def describe(name, origin) -> str:
    if origin is None:
        return f"plugin {name!r}"
    return f"plugin {name!r} (from {origin[0]} {origin[1]})"


def create_plugin_manager(load_entry_points: bool = True, disabled=()) -> PluginManager:
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


def _flatten(results) -> frozenset:
    return frozenset(name for names in results for name in names or ())


def upload_permissions(manager) -> frozenset:
    """Every permission name that some plugin says authorises a containerless upload."""
    return _flatten(manager.hook.affix_upload_permissions())


def container_types(manager, catalog) -> ContainerTypes:
    return ContainerTypes(
        [kind for kinds in manager.hook.affix_container_types(catalog=catalog)
         for kind in kinds or ()]
    )


def known_permissions(manager, kinds) -> frozenset:
    """Every permission name the installation knows: declared, or used by an upload permission
    or a container type."""
    declared = _flatten(manager.hook.affix_permissions())
    used = frozenset().union(*(kind.view | kind.add | kind.delete for kind in kinds))
    return declared | upload_permissions(manager) | used


def host_login(manager, request):
    """The first login a plugin names for ``request``, or None.

    Plugins are asked in pluggy's order until one gives a non-blank string: an answer that names
    nobody (None, "", anything else) leaves the next plugin its say, which pluggy's
    ``firstresult`` would not (it stops at the first answer that is not None)."""
    for implementation in reversed(manager.hook.affix_authenticate.get_hookimpls()):
        login = _call(implementation, request=request)
        if isinstance(login, str) and login.strip():
            return login
    return None


def upload_rejection(manager, upload, user):
    """The first message by which a policy rejects ``upload``, or None when all accept.

    An exception from a policy propagates (the upload fails and is not stored), logged here with
    the plugin's name so that an operator knows whom to blame."""
    for implementation in manager.hook.affix_validate_upload.get_hookimpls():
        try:
            message = _call(implementation, upload=upload, user=user)
        except Exception:
            log.exception("upload policy of plugin %r failed", implementation.plugin_name)
            raise
        if message:
            return str(message)
    return None


def _call(implementation, **arguments):
    return implementation.function(*(arguments[name] for name in implementation.argnames))


class Events:
    """Tells plugins what happened. Each implementation runs on its own: one that raises is
    logged and neither stops the others nor touches the request."""

    def __init__(self, manager):
        self.manager = manager

    def _notify(self, hook_name, **arguments):
        for implementation in getattr(self.manager.hook, hook_name).get_hookimpls():
            try:
                _call(implementation, **arguments)
            except Exception:
                log.exception("plugin %r failed in %s", implementation.plugin_name, hook_name)

    def created(self, attachment, user):
        self._notify("affix_attachment_created", attachment=attachment, user=user)

    def claimed(self, attachment, container, user):
        self._notify("affix_attachment_claimed", attachment=attachment, container=container,
                     user=user)

    def deleted(self, attachment, user):
        self._notify("affix_attachment_deleted", attachment=attachment, user=user)
