"""Building the plugin manager: the built-in plugin plus everything installed."""
import pluggy

from plugins import ENTRY_POINT_GROUP, PROJECT_NAME, builtin, hookspecs


def create_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with affix's hooks, its built-in plugin and, unless told otherwise, every
    plugin that an installed distribution declares in the ``affix`` entry-point group."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(builtin, name="builtin")
    if load_entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    manager.check_pending()
    return manager


def upload_permissions(manager: pluggy.PluginManager) -> frozenset:
    """Every permission name that some plugin says authorises a containerless upload."""
    return frozenset(
        name for names in manager.hook.affix_upload_permissions() for name in names
    )
