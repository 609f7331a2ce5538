"""The hooks a plugin can implement. Each docstring is the plugin author's reference: the docs'
hook reference is these docstrings, rendered by Sphinx's autodoc.

A plugin builds its marker from affix's project name and implements any of these by name::

    from pluggy import HookimplMarker   # or: from affix import hookimpl

    hookimpl = HookimplMarker("affix")

Every hook is called through pluggy (``pm.hook.<name>(...)``), so everything pluggy offers
works on each of them: ``tryfirst`` and ``trylast``, wrappers (``wrapper=True``) and old-style
hook wrappers. Implementations run last registered first, unless ``tryfirst``/``trylast`` say
otherwise. Every hook's arguments are optional: declare only those you use.
"""
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from affix.plugins import hookspec
from affix.plugins.containers import ContainerType
from affix.plugins.uploads import UploadCandidate

if TYPE_CHECKING:  # pragma: no cover - names for the annotations only
    import falcon

    from affix.storage.models import Attachment, Catalog, User

# How affix treats an implementation that raises, declared on the spec (see ``failure_policy``):
# LOGGED_AND_RAISED fails the call (an upload that could not be checked is never stored), with
# the plugin's name in the log; LOGGED_AND_IGNORED logs it and goes on with the other
# implementations (an event handler that fails undoes nothing).
LOGGED_AND_RAISED = "logged and raised"
LOGGED_AND_IGNORED = "logged and ignored"
FAILURE_POLICY = "affix_failure_policy"

Spec = TypeVar("Spec", bound=Callable[..., object])


def failure_policy(policy: str) -> Callable[[Spec], Spec]:
    def declare(spec: Spec) -> Spec:
        setattr(spec, FAILURE_POLICY, policy)
        return spec
    return declare


@hookspec
def affix_authenticate(request: "falcon.Request") -> str | None:
    """Name the user of ``request`` from the host's own identity; return a login or None.

    :param request: the Falcon request (``request.env``, ``request.cookies``,
        ``request.get_header(...)``).

    For affix embedded in a larger WSGI site, or behind an authenticating proxy: read a session
    cookie, a header the proxy sets, or the WSGI environ. Of the answers, in pluggy's order, the
    first non-blank string names the user; any other answer (None, "", anything but a string)
    leaves the next plugin its say. The login is matched in affix's user table, or
    created on first sight (a locked user is refused). When nobody is named, affix checks its
    own API keys, and answers 401 without one. Only name a user you have verified.

    Example::

        @hookimpl
        def affix_authenticate(request):
            session = host_sessions.get(request.cookies.get("session"))
            return session.login if session else None
    """


@hookspec
def affix_upload_permissions() -> Iterable[str]:
    """Return permission names that authorise uploading an attachment without a container.

    A user may upload when a role of theirs, in at least one project, holds any permission that
    any plugin returns here (admins always may). Every plugin's list is added to the others'.

    Example::

        @hookimpl
        def affix_upload_permissions():
            return ["edit_meetings"]
    """


@hookspec
def affix_permissions() -> Iterable[str]:
    """Return the permission names your plugin introduces.

    ``affix role add`` accepts only known permission names, and answers a misspelt one with
    the close matches. The names a plugin's container types and upload permissions use are
    known without being listed here; list any others your plugin checks.

    Example::

        @hookimpl
        def affix_permissions():
            return ["view_meetings", "edit_meetings"]
    """


@hookspec
def affix_container_types(catalog: "Catalog") -> Iterable[ContainerType[Any]]:
    """Return the container types that attachments can be claimed for.

    :param catalog: the app's database catalogue: ``catalog.database`` (the peewee database to
        bind your models to), ``catalog.Project``, ``catalog.get(model, id)`` and
        ``catalog.schema_change()``.

    Each :class:`affix.ContainerType` (or any object with its attributes) gets, with no code
    of affix's changed: ``GET /api/v3/<segment>/{id}/attachments``, the container's
    attachments as a HAL Collection; ``POST`` there with ``multipart/form-data``, an upload
    straight into it; ``POST`` there with ``application/json``
    ``{"_links": {"attachments": [{"href": "/api/v3/attachments/7"}]}}``, claiming uploads for
    it with the same rules as for work packages (only the author, only once, exactly one of two
    racing claims wins); and its attachments' ``_links.container``, visibility and deletion by
    the type's permissions in the container's project. Work packages are registered by affix's
    built-in plugin through this same hook; their attachments endpoint takes only uploads, as
    OpenProject's does (anything else is 415), since a work package claims what its creation
    or change names.

    Every worker of every node calls this hook as it starts. A plugin that keeps its
    containers in tables of its own creates or changes them here, inside
    ``catalog.schema_change()``, a transaction in which schema changes take turns (on
    PostgreSQL it holds the lock of affix's own migrations; on SQLite it is a write
    transaction): on PostgreSQL two ``CREATE TABLE IF NOT EXISTS`` at once make one of them
    fail, and the worker with it.

    Example::

        from affix import ContainerType

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


@failure_policy(LOGGED_AND_RAISED)
@hookspec
def affix_validate_upload(upload: UploadCandidate, user: "User") -> str | None:
    """Accept or reject an upload after it is fully received and before it is stored.

    :param upload: the :class:`affix.UploadCandidate`: file name, description, size, md5, the
        content type libmagic found in the bytes, the first 8 KiB of the file (``head``), and
        the name of the container type it is uploaded into (None without a container).
    :param user: the uploader (``id``, ``login``, ``admin``).

    Called after the whole file is received and before anything is stored. Return None to
    accept, or a message to reject: the client gets 422 PropertyConstraintViolation with that
    message, and nothing is stored. Every policy is asked and every policy must accept: of
    several messages, the first in pluggy's order is the one given; an empty answer accepts.
    ``AFFIX_ALLOWLIST`` is a built-in policy on this hook. A policy that raises fails the
    upload with a 500, logged with the plugin's name: an upload a policy could not check is
    never stored.

    Example::

        @hookimpl
        def affix_validate_upload(upload):
            if upload.file_name.lower().endswith(".exe"):
                return "Executables are not accepted."
    """


@failure_policy(LOGGED_AND_RAISED)
@hookspec
def affix_inspect_upload(user: "User", container_type: str | None) -> object | None:
    """Return an inspector that sees every byte of the upload's file as it arrives, or None.

    :param user: the uploader (``id``, ``login``, ``admin``).
    :param container_type: the name of the container type the file is uploaded into (None
        without a container).

    Called once per upload, before its body is read, for every way bytes enter affix. The
    inspector's ``feed(chunk)`` is given each chunk of the file part, in order (chunks of any
    size; none for an empty file); once the whole body is received, its
    ``verdict(upload)`` is asked with the :class:`affix.UploadCandidate`, before anything is
    stored, and answers None to accept, a message to refuse (422 PropertyConstraintViolation
    with that message, nothing stored), or :data:`affix.SCANNED` to accept as a malware scanner
    that read every byte and found nothing (the attachment starts ``scanned``). Every
    inspector must accept. An optional ``close()`` is called however the upload ends, refused
    or cut short too. The file is never read again for an inspector: keep only what you need
    (a hash, a count), and memory stays constant. An inspector, or this hook, that raises
    fails the upload with 503 ServiceUnavailable, logged, and nothing is stored: an upload
    that could not be inspected is never kept. The ClamAV scanner shipped with affix
    (``AFFIX_SCAN_MODE=stream``) is an inspector.

    Two examples follow: the SHA-256 of every upload, refusing known bad files; and a quota
    per user, ``used_bytes`` being the plugin's own bookkeeping.

    The first, as a file the tests run (``docs/examples/plugins/sha256_plugin.py``):

    .. literalinclude:: /examples/plugins/sha256_plugin.py

    Example::

        class Quota:
            def __init__(self, user):
                self.user = user

            def feed(self, chunk):
                pass

            def verdict(self, upload):
                if used_bytes(self.user) + upload.size > QUOTA_BYTES:
                    return "Your storage quota is used up."

        @hookimpl
        def affix_inspect_upload(user):
            return Quota(user)
    """


@failure_policy(LOGGED_AND_IGNORED)
@hookspec
def affix_attachment_created(attachment: "Attachment", user: "User") -> None:
    """Called after an upload is stored (row and bytes committed).

    :param attachment: the stored row (``id``, ``file_name``, ``file_size``, ``content_type``,
        ``md5``, ``container_type``, ``container_id``).
    :param user: the uploader.

    For integrations: webhooks, search indexing, audit logs. An implementation that raises is
    logged and changes nothing: the upload stays stored, the client gets its answer, and the
    other plugins are still told.

    Example::

        @hookimpl
        def affix_attachment_created(attachment, user):
            audit.info("%s uploaded %s", user.login, attachment.file_name)
    """


@failure_policy(LOGGED_AND_IGNORED)
@hookspec
def affix_attachment_claimed(attachment: "Attachment", container: object,
                             user: "User") -> None:
    """Called after ``user`` claimed ``attachment`` for ``container`` and the claim committed.

    :param attachment: the claimed row, with its container set.
    :param container: the container, as its type's ``find`` returned it.
    :param user: who claimed it.

    An implementation that raises is logged and changes nothing.

    Example::

        @hookimpl
        def affix_attachment_claimed(attachment, container):
            index.add(attachment.id, container.id)
    """


@failure_policy(LOGGED_AND_IGNORED)
@hookspec
def affix_attachment_deleted(attachment: "Attachment", user: "User | None") -> None:
    """Called after an attachment is deleted (row and bytes gone).

    :param attachment: the row as it was.
    :param user: who deleted it; None for ``affix quarantine delete``.

    An implementation that raises is logged and changes nothing.

    Example::

        @hookimpl
        def affix_attachment_deleted(attachment):
            index.remove(attachment.id)
    """


@failure_policy(LOGGED_AND_IGNORED)
@hookspec
def affix_attachment_scanned(attachment: "Attachment") -> None:
    """Called after a virus scan found nothing in ``attachment`` and its status became
    ``scanned`` (committed): by ``affix scan``, or at once for an upload scanned while it
    streamed.

    :param attachment: the row, its ``status`` ``scanned``.

    An implementation that raises is logged and changes nothing.

    Example::

        @hookimpl
        def affix_attachment_scanned(attachment):
            index.add(attachment.id)
    """


@failure_policy(LOGGED_AND_IGNORED)
@hookspec
def affix_attachment_quarantined(attachment: "Attachment", finding: str) -> None:
    """Called after ``affix scan`` found malware in a stored attachment and put it in
    quarantine (committed): its bytes are never served again, and only admins can list and
    delete it.

    :param attachment: the row, its ``status`` ``quarantined``.
    :param finding: the name of the signature the scanner found.

    An implementation that raises is logged and changes nothing.

    Example::

        @hookimpl
        def affix_attachment_quarantined(attachment, finding):
            alert("attachment %s is quarantined: %s", attachment.id, finding)
    """
