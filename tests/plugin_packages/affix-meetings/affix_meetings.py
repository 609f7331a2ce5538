"""affix-meetings: whoever may edit meetings may upload attachments to affix.

It imports nothing of affix's own: the marker is built from affix's project name, and affix
finds this module through the ``meetings`` entry point in the ``affix`` group.
"""
import pluggy

hookimpl = pluggy.HookimplMarker("affix")


@hookimpl
def affix_upload_permissions():
    """Editing meetings authorises uploads: the files that go into a meeting's agenda."""
    return ["edit_meetings"]
