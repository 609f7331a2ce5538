"""The hooks a plugin can implement. Each docstring is the plugin author's reference.

A plugin builds its marker from affix's project name and implements any of these by name::

    from pluggy import HookimplMarker

    hookimpl = HookimplMarker("affix")

Every hook's arguments are optional: declare only those you use.
"""
from plugins import hookspec


@hookspec
def affix_authenticate(request):
    """Name the user of ``request`` from the host's own identity; return a login or None.

    For affix embedded in a larger WSGI site, or behind an authenticating proxy: read a session
    cookie, a header the proxy sets, or the WSGI environ (``request.env``, ``request.cookies``,
    ``request.get_header(...)``; ``request`` is a Falcon request). Plugins are asked in turn
    until one names a login; that user is matched in affix's user table by login, or created
    on first sight (a locked user is refused). Return None when you cannot tell: affix then
    checks its own API keys, and answers 401 without one. Only name a user you have verified.

    Example::

        @hookimpl
        def affix_authenticate(request):
            session = host_sessions.get(request.cookies.get("session"))
            return session.login if session else None
    """


@hookspec
def affix_upload_permissions():
    """Return permission names that authorise uploading an attachment without a container.

    A user may upload when a role of theirs, in at least one project, holds any permission that
    any plugin returns here (admins always may). Every plugin's list is added to the others'.

    Example::

        @hookimpl
        def affix_upload_permissions():
            return ["edit_meetings"]
    """


@hookspec
def affix_permissions():
    """Return the permission names your plugin introduces.

    ``affix role add`` accepts only known permission names, so that a misspelt one is refused
    with the close matches. The names a plugin's container types and upload permissions use are
    known without being listed here; list any others your plugin checks.

    Example::

        @hookimpl
        def affix_permissions():
            return ["view_meetings", "edit_meetings"]
    """


@hookspec
def affix_container_types(catalog):
    """Return container types (:class:`plugins.containers.ContainerType`, or any object with
    the same attributes) that attachments can be claimed for.

    Each type gets ``GET`` and ``POST /api/v3/<segment>/{id}/attachments``: the list of a
    container's attachments, an upload straight into it, and (with a JSON body naming
    ``_links.attachments``) claiming uploads for it. ``catalog`` is the app's database
    catalogue: a plugin that keeps its containers in tables of its own binds its models to
    ``catalog.database`` and creates them here, inside ``catalog.schema_change()`` (every
    worker of every node calls this hook as it starts, and the lock makes them take turns), and
    looks projects up in ``catalog.Project``.

    Example::

        from plugins.containers import ContainerType

        @hookimpl
        def affix_container_types(catalog):
            Meeting = meeting_model(catalog.database)
            with catalog.schema_change():
                catalog.database.create_tables([Meeting], safe=True)
            return [ContainerType(
                name="Meeting", segment="meetings",
                find=lambda meeting_id: Meeting.get_or_none(Meeting.id == meeting_id),
                project_of=lambda meeting: catalog.get(catalog.Project, meeting.project_id),
                title_of=lambda meeting: meeting.title,
                view=frozenset({"view_meetings"}), add=frozenset({"edit_meetings"}),
                delete=frozenset({"edit_meetings"}),
            )]
    """


@hookspec
def affix_validate_upload(upload, user):
    """Accept or reject an upload after it is fully received and before it is stored.

    ``upload`` is a :class:`plugins.uploads.UploadCandidate` (file name, size, md5, sniffed
    content type, first bytes, container type); ``user`` is the uploader (``login``, ``admin``).
    Return None to accept, or a message to reject: the client gets 422
    PropertyConstraintViolation with that message, and nothing is stored. Every policy must
    accept. A policy that raises fails the upload with a 500 (logged with the plugin's name):
    an upload a policy could not check is never stored.

    Example::

        @hookimpl
        def affix_validate_upload(upload):
            if upload.file_name.lower().endswith(".exe"):
                return "Executables are not accepted."
    """


@hookspec
def affix_attachment_created(attachment, user):
    """Called after an upload is stored (row and bytes committed).

    For integrations: webhooks, search indexing, audit logs. ``attachment`` is the stored row
    (``id``, ``file_name``, ``file_size``, ``content_type``, ``md5``, ``container_type``,
    ``container_id``). An exception is logged and changes nothing: the upload stays stored and
    the client gets its answer.

    Example::

        @hookimpl
        def affix_attachment_created(attachment, user):
            audit.info("%s uploaded %s", user.login, attachment.file_name)
    """


@hookspec
def affix_attachment_claimed(attachment, container, user):
    """Called after ``user`` claimed ``attachment`` for ``container`` and the claim committed.

    An exception is logged and changes nothing.

    Example::

        @hookimpl
        def affix_attachment_claimed(attachment, container):
            index.add(attachment.id, container.id)
    """


@hookspec
def affix_attachment_deleted(attachment, user):
    """Called after an attachment is deleted (row and bytes gone); ``attachment`` is the row as
    it was. An exception is logged and changes nothing.

    Example::

        @hookimpl
        def affix_attachment_deleted(attachment):
            index.remove(attachment.id)
    """
