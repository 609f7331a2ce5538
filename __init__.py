"""affix: an attachment service for OpenProject's API v3.

This checkout is the package ``affix``: ``pip install`` puts ``app``, ``plugins`` and
``storage`` inside it (``affix.app`` ...), so that affix never shadows a host's own top-level
packages of those names, nor is shadowed by them. The names below are the public face, for
hosts that embed affix and for plugin authors; the modules behind them may move.
"""
from affix.app import create_app
from affix.app.composition import compose
from affix.app.http.serving import HalWorker
from affix.app.settings import Settings, SettingsError
from affix.plugins import hookimpl
from affix.plugins.containers import ContainerType
from affix.plugins.manager import PluginError, create_plugin_manager
from affix.plugins.uploads import SCANNED, UploadCandidate

__all__ = [
    "ContainerType", "HalWorker", "PluginError", "SCANNED", "Settings", "SettingsError",
    "UploadCandidate",
    "compose", "create_app", "create_plugin_manager", "hookimpl",
]
