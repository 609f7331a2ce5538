"""Attachments as the service sees them: uploading, finding, serving, claiming, deleting."""
import dataclasses
import logging

from affix.app.uploads.content_types import store_download_url
from affix.app.errors import missing_permission, not_found, property_violation
from affix.app.uploads.inspection import Inspection
from affix.app.attachments.lifecycle import UNCLAIMABLE
from affix.app.uploads.multipart import receive_upload
from affix.plugins.manager import Events, upload_rejection
from affix.plugins.uploads import UploadCandidate
from affix.storage.models import PREPARED, is_valid_id

log = logging.getLogger(__name__)

NOT_FOUND_MESSAGE = "The specified attachment does not exist."
DOES_NOT_EXIST = "Attachments does not exist."
CANNOT_BE_CHANGED = "Attachments cannot be changed."
# attachments one request may claim: the work of a claim is done under the write lock, which
# every upload waits for
MAX_CLAIMS = 1000


@dataclasses.dataclass(frozen=True)
class AttachmentView:
    """An attachment as one user sees it, resolved once: its row (with its author), its
    container and the container's type (the container None when it has none, or when the
    container or its type's plugin is gone), whether the user may see it and delete it, and
    where the store serves its bytes itself (None: affix serves them). Rendering one asks
    nothing more of the database."""

    record: object
    kind: object
    container: object
    may_see: bool
    may_delete: bool
    download_url: str | None


class AttachmentService:
    """Owns what attachments need: the catalogue, the blob store and its size limit, the
    permissions and the plugins. Resources make one call into it per request."""

    def __init__(self, *, catalog, blob_store, max_attachment_size, sniffer, clock, permissions,
                 container_types, plugin_manager, lifecycle, webhooks, count_inspection=None):
        self.catalog = catalog
        self._blob_store = blob_store
        self._max_attachment_size = max_attachment_size
        self._sniffer = sniffer
        self.clock = clock
        self.permissions = permissions
        self.container_types = container_types
        self._plugin_manager = plugin_manager
        self._events = Events(plugin_manager)
        # public: a direct upload's completion writes its events in its own transaction
        self.webhooks = webhooks
        self.lifecycle = lifecycle
        # told how each inspected upload ended (the metrics' count), or None
        self._count_inspection = count_inspection

    def require_may_add(self, user, kind, container):
        """403 unless ``user`` may add attachments to ``container`` of ``kind``."""
        if not self.permissions.allowed(user, kind.add, kind.project_of(container)):
            raise missing_permission(kind.add)

    def require_may_upload(self, user, kind=None, container=None):
        """403 unless ``user`` may upload into ``container`` of ``kind``, or without a
        container when ``kind`` is None."""
        if kind is None:
            if not self.permissions.may_upload(user):
                raise missing_permission(self.permissions.upload_permissions)
        else:
            self.require_may_add(user, kind, container)

    def upload(self, user, body, kind=None, container=None):
        """Receive an upload from ``body`` (a
        :class:`~affix.app.uploads.multipart.RequestBody`) and make it permanent, into
        ``container`` of ``kind`` or without a container; its row.

        The permission is checked before a single byte of the body is read: a refused client
        costs nothing.
        """
        self.require_may_upload(user, kind, container)
        inspection = self.begin_inspection(user, kind)
        try:
            received = receive_upload(body, self._blob_store, self._max_attachment_size,
                                      inspection.feed)
            return self._make_permanent(received, user, kind, container, inspection)
        finally:
            inspection.close()

    def begin_inspection(self, user, kind):
        """The inspectors of an upload by ``user`` into a container of ``kind`` (or None),
        before its first byte arrives: every way bytes enter affix drives one."""
        return Inspection.begin(self._plugin_manager, user, kind.name if kind else None,
                                self._count_inspection)

    def vet(self, author, kind, file_name, description, content, inspection):
        """What every upload goes through once its bytes are all there, however they came:
        the content type sniffed from them, every upload policy (the allowlist among them)
        asked, and the verdict of the ``inspection`` that saw them arrive; 422 when one
        refuses, 503 when an inspector fails. ``content`` has the ``size``, ``md5`` and
        ``head`` of the bytes. Returns what was sniffed and what the inspectors decided."""
        sniffed = self._sniffer.sniff(content.head)
        candidate = UploadCandidate(
            file_name=file_name, description=description, size=content.size,
            md5=content.md5, content_type=sniffed.content_type, head=content.head,
            container_type=kind.name if kind else None,
        )
        rejection = upload_rejection(self._plugin_manager, candidate, author)
        if rejection is not None:
            raise property_violation("file", rejection)
        return sniffed, inspection.verdict(candidate)

    def record_created(self, record, author, acceptance):
        """The webhook events of a new attachment, and of its scan when a scanner read it as
        it arrived: called in the transaction that makes it an attachment."""
        self.webhooks.created(record, author)
        if acceptance.scanned:
            self.webhooks.scanned(record)

    def announce_created(self, record, author, acceptance):
        """Tell the plugins that ``record`` is a new attachment, as every upload does, and
        that it was scanned when a scanner read it as it arrived."""
        self._events.created(record, author)
        if acceptance.scanned:
            self._events.scanned(record)

    def _make_permanent(self, upload, author, kind, container, inspection):
        """Make a received upload permanent: its blob and its row, both or neither.

        The blob is made durable first (outside any database lock); the row follows in one
        transaction. If the row cannot be written the blob is deleted again, so a failure leaves
        nothing; only a crash between the two can leave an unreferenced blob.
        """
        storage_key = None
        try:
            sniffed, acceptance = self.vet(author, kind, upload.file_name, upload.description,
                                           upload, inspection)
            storage_key = upload.staged_blob.commit()
            with self.catalog.write_transaction():
                record = self.catalog.add_attachment(
                    file_name=upload.file_name,
                    file_size=upload.size,
                    content_type=sniffed.content_type,
                    charset=sniffed.charset,
                    md5=upload.md5,
                    description=upload.description,
                    author=author,
                    container_type=kind.name if kind else None,
                    container_id=container.id if container else None,
                    status=self.lifecycle.initial_status(acceptance.scanned),
                    storage_key=storage_key,
                    created_at=self.clock(),
                )
                self.record_created(record, author, acceptance)
        except BaseException:
            if storage_key is None:
                upload.staged_blob.discard()
            else:
                self.delete_blob(storage_key)
            raise
        self.announce_created(record, author, acceptance)
        return record

    def _download_url(self, user, record):
        """Where the blob store serves ``record``'s bytes itself to ``user``, or None (see
        :func:`~affix.app.uploads.content_types.store_download_url`); never for bytes ``user``
        may not download (a prepared direct upload's, whose staged bytes nobody has checked,
        among them)."""
        if not self.lifecycle.may_serve_elsewhere(user, record):
            return None
        return store_download_url(self._blob_store, record)

    def find_downloadable(self, grants, attachment_id) -> AttachmentView:
        """The attachment if ``grants.user`` may see it and download its bytes in its
        status."""
        view = self.find_visible(grants, attachment_id)
        self.lifecycle.require_downloadable(grants.user, view.record)
        return view

    def open_content(self, record):
        """``record``'s bytes, as a binary file object; 404 when a deletion took them since
        the row was read."""
        try:
            return self._blob_store.open(record.storage_key)
        except FileNotFoundError:
            raise not_found(NOT_FOUND_MESSAGE) from None

    def container_of(self, record):
        """(container type, container) of a claimed attachment; (None, None) otherwise."""
        if record.container_type is None:
            return None, None
        kind = self.container_types.named(record.container_type)
        return kind, kind.find(record.container_id)

    def views(self, grants, records, kind=None, container=None) -> list[AttachmentView]:
        """``records`` as ``grants.user`` sees them, in a number of statements that does not grow
        with them: each container is found once (``container`` of ``kind``, read already, is
        not found again) and the user's permissions in all their projects are read at once.
        A plugin's container type costs what its ``find`` and ``project_of`` cost, per
        container."""
        containers = {} if container is None else {
            (kind.name, container.id): (kind, container, kind.project_of(container))}
        for record in records:
            key = (record.container_type, record.container_id)
            if record.container_type is not None and key not in containers:
                containers[key] = self._resolve_container(record)
        grants.learn([project for _, _, project in containers.values()])
        return [self._view(grants, record,
                           containers.get((record.container_type, record.container_id)))
                for record in records]

    def view(self, grants, record, kind=None, container=None) -> AttachmentView:
        """One attachment as :meth:`views` resolves them."""
        return self.views(grants, [record], kind, container)[0]

    def _resolve_container(self, record):
        """(container type, container, its project) of a claimed attachment; the container
        None when it or its type's plugin is gone."""
        if record.container_type not in self.container_types:
            # its container type's plugin is gone: nobody can tell who may see it
            return None, None, None
        kind, container = self.container_of(record)
        if container is None:
            return kind, None, None
        return kind, container, kind.project_of(container)

    def _view(self, grants, record, resolved) -> AttachmentView:
        user = grants.user
        kind = container = None
        if record.container_type is None:
            # a containerless attachment belongs to its author alone
            may_view = may_delete = record.author_id == user.id
        else:
            kind, container, project = resolved
            may_view = container is not None and grants.allowed(kind.view, project)
            may_delete = container is not None and grants.allowed(kind.delete, project)
        return AttachmentView(
            record=record, kind=kind, container=container,
            may_see=self.lifecycle.may_see(user, record, may_view),
            may_delete=self.lifecycle.may_delete(user, record, may_delete),
            download_url=self._download_url(user, record),
        )

    def find_visible(self, grants, attachment_id) -> AttachmentView:
        """The attachment if ``grants.user`` may see it; 404 otherwise, so that nobody can
        learn that someone else's attachment exists."""
        Attachment = self.catalog.Attachment
        record = self.catalog.by_id(
            Attachment.select(Attachment, self.catalog.User).join(self.catalog.User),
            Attachment, attachment_id,
        )
        view = None if record is None else self.view(grants, record)
        if view is None or not view.may_see:
            raise not_found(NOT_FOUND_MESSAGE)
        return view

    def of_container(self, kind, container):
        Attachment = self.catalog.Attachment
        return list(
            Attachment.select(Attachment, self.catalog.User)
            .join(self.catalog.User)
            .where((Attachment.container_type == kind.name)
                   & (Attachment.container_id == container.id)
                   & (Attachment.status != PREPARED))
            .order_by(Attachment.id)
        )

    def delete(self, user, view):
        """Remove the row of ``view`` (as ``user`` sees it), then the blob: a failure in
        between leaves an unreferenced blob, never a row whose bytes are gone."""
        if not view.may_delete:
            # refused only where the container decides: its kind says what would allow it
            raise missing_permission(view.kind.delete,
                                     "You are not allowed to delete this attachment.")
        Attachment = self.catalog.Attachment
        record = view.record
        with self.catalog.write_transaction():
            # the row as it was read: an upload finished since (a completion, a tus retry)
            # is an attachment now, with events of its own and maybe other bytes
            current = record
            # each read of a changed row deleted only as it was read: on PostgreSQL, nothing
            # holds the row between the read and the delete
            while current is not None and not self._delete_as_read(current):
                current = Attachment.get_or_none(Attachment.id == record.id)
            if current is not None and current.status != PREPARED:
                # nobody heard of an upload that was only prepared
                self.webhooks.deleted(current, user)
        if current is None:
            # another request deleted it since it was read: that one answers 204
            raise not_found(NOT_FOUND_MESSAGE)
        record = current
        self.delete_blob(record.storage_key)
        if record.status != PREPARED:
            # plugins never heard of an upload that was only prepared
            self._events.deleted(record, user)

    def _delete_as_read(self, record) -> bool:
        """Delete ``record``'s row if it is still as read (its status and bytes); whether it
        was."""
        Attachment = self.catalog.Attachment
        return bool(Attachment.delete().where(
            (Attachment.id == record.id) & (Attachment.status == record.status)
            & (Attachment.storage_key == record.storage_key)).execute())

    def delete_with_container(self, user, kind, container, delete_container):
        """Delete ``container`` of ``kind`` (``delete_container()``, which raises when the row is
        gone already) and its attachments: every row in one transaction, then the bytes. A
        failure before the commit leaves everything; a blob the store fails to delete, or a
        crash before it, is an orphan that ``affix gc`` removes. The caller has checked the
        permission."""
        Attachment = self.catalog.Attachment
        belongs = ((Attachment.container_type == kind.name)
                   & (Attachment.container_id == container.id))
        with self.catalog.write_transaction():
            records = list(Attachment.select(Attachment, self.catalog.User)
                           .join(self.catalog.User).where(belongs).order_by(Attachment.id))
            Attachment.delete().where(belongs).execute()
            delete_container()
        for record in records:
            self.delete_blob(record.storage_key)
            self._events.deleted(record, user)

    def delete_blob(self, storage_key):
        """Delete a blob whose row is gone or was never written. If the store fails, the
        blob is an orphan that ``affix gc`` removes later; the error that matters to the
        client (the deletion done, or why the upload failed) is not replaced by this one."""
        try:
            self._blob_store.delete(storage_key)
        except Exception:
            log.exception("could not delete blob %s; affix gc will", storage_key)

    def claim_for(self, user, attachment_ids, kind, change_container, container=None):
        """Create or change a container and claim attachments for it, in one transaction.

        ``change_container()`` runs inside the transaction and returns the container;
        ``container`` is the container when it exists already. The caller has checked that
        ``user`` may add attachments to it. The list is checked against the database before the
        write lock is taken, so that only what may be claimed is claimed under it. A failed
        claim raises and so undoes the container's change. Plugins hear of the claims once
        they are committed; webhooks in the transaction itself.
        """
        claimable = self._claimable(user, attachment_ids, kind, container)
        with self.catalog.write_transaction():
            container = change_container()
            claimed = self._claim(user, claimable, kind, container)
        for record in claimed:
            self._events.claimed(record, container, user)
        return container

    def check_claims(self, user, attachment_ids, kind, container=None):
        """422 for an attachment of ``attachment_ids`` that ``user`` may not claim for
        ``container`` (a new one: None), as a claim would answer; nothing is written."""
        self._claimable(user, attachment_ids, kind, container)

    def _claimable(self, user, attachment_ids, kind, container):
        """The ids of ``attachment_ids`` that are still to be claimed (each once, in order);
        422 for one that ``user`` may not claim."""
        if len(attachment_ids) > MAX_CLAIMS:
            raise property_violation(
                "attachments", f"Attachments can list at most {MAX_CLAIMS} attachments.")
        listed = list(dict.fromkeys(attachment_ids))
        if not all(is_valid_id(attachment_id) for attachment_id in listed):
            raise property_violation("attachments", DOES_NOT_EXIST)
        Attachment = self.catalog.Attachment
        rows = {row.id: row for row in Attachment.select().where(Attachment.id.in_(listed))}
        claimable = []
        for attachment_id in listed:
            row = rows.get(attachment_id)
            if row is None or row.author_id != user.id:
                # another user's attachment is reported like a missing one: it must not leak
                raise property_violation("attachments", DOES_NOT_EXIST)
            if row.container_type is None:
                self.lifecycle.require_claimable(row)
                claimable.append(attachment_id)
            elif container is None or (row.container_type, row.container_id) != (
                    kind.name, container.id):
                raise property_violation("attachments", CANNOT_BE_CHANGED)
            # else: clients send the whole list back; what the container has is no claim
        return claimable

    def _claim(self, user, attachment_ids, kind, container):
        """Claim the author's containerless attachments for ``container``; returns the rows
        newly claimed.

        Each claim is one conditional UPDATE, so of two claims racing for the same attachment
        exactly one changes a row, on any database.
        """
        Attachment = self.catalog.Attachment
        claimed = []
        for attachment_id in attachment_ids:
            updated = (
                Attachment.update(container_type=kind.name, container_id=container.id)
                .where((Attachment.id == attachment_id)
                       & (Attachment.author == user)
                       & (Attachment.container_type.is_null())
                       & Attachment.status.not_in(UNCLAIMABLE))
                .execute()
            )
            record = self.catalog.get(Attachment, attachment_id)
            if updated:
                claimed.append(record)
                self.webhooks.claimed(record, user)
            elif record is None:
                # deleted since it was checked
                raise property_violation("attachments", DOES_NOT_EXIST)
            elif record.container_type is None:
                # quarantined since it was checked
                self.lifecycle.require_claimable(record)
            elif (record.container_type, record.container_id) != (kind.name, container.id):
                # claimed elsewhere since it was checked
                raise property_violation("attachments", CANNOT_BE_CHANGED)
        return claimed
