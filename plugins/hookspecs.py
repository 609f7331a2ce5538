"""The hooks a plugin can implement. Each docstring is the plugin author's reference."""
from plugins import hookspec


@hookspec
def affix_upload_permissions():
    """Return permission names that authorise uploading an attachment without a container.

    A user may upload when a role of theirs, in at least one project, holds any permission that
    any plugin returns here (admins always may). Every plugin's list is added to the others'.

    Example::

        from pluggy import HookimplMarker

        hookimpl = HookimplMarker("affix")

        @hookimpl
        def affix_upload_permissions():
            return ["edit_meetings"]
    """
