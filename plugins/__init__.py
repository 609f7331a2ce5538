"""affix's plugin registry (pluggy, project name ``affix``).

A third-party package needs nothing of ours: it builds its marker with
``pluggy.HookimplMarker("affix")`` (or imports :data:`hookimpl` from here) and declares an entry
point in the group ``affix``.
"""
import pluggy

PROJECT_NAME = "affix"
ENTRY_POINT_GROUP = "affix"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
