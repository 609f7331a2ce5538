"""Finishing an upload whose bytes a client put in the blob store already, in one or many
requests (a direct upload to S3, a resumable tus upload): its row waits in status
``prepared`` while the bytes are read back once, and only then becomes an attachment.

Reading the stored bytes is the one place they pass through affix's checks: each chunk once,
in order, shown to the upload's inspectors as on every way bytes enter affix, for the md5 and
the head the content type is sniffed from; then the upload policies and the inspectors'
verdict; then the row becomes an attachment and the plugins hear of it. A refusal deletes the
row and the object; a passing failure keeps them for the client's retry.
"""
import dataclasses
import hashlib
import logging

from affix.app.errors import Locked, is_refusal, not_found, property_violation
from affix.app.uploads.multipart import SNIFF_SIZE
from affix.storage.models import PREPARED

log = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1024 * 1024


class StoredContent:
    """What an upload's checks need of its bytes: their size, md5 and first few KiB."""

    def __init__(self):
        self._md5 = hashlib.md5()
        self.size = 0
        self.head = b""

    def update(self, chunk: bytes):
        self.size += len(chunk)
        if len(self.head) < SNIFF_SIZE:
            self.head += chunk[: SNIFF_SIZE - len(self.head)]
        self._md5.update(chunk)

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()


def read_stored_bytes(chunks, inspect) -> StoredContent:
    """Read the bytes of an upload that a client stored: each chunk once and in order, each
    shown to ``inspect`` (the upload's inspectors)."""
    content = StoredContent()
    for chunk in chunks:
        content.update(chunk)
        inspect(chunk)
    return content


def stored_chunks(blob_store, storage_key):
    """The bytes of the committed blob ``storage_key``, read once, in chunks."""
    with blob_store.open(storage_key) as stream:
        while chunk := stream.read(READ_CHUNK_SIZE):
            yield chunk


def size_mismatch(actual, declared):
    return property_violation(
        "fileSize", f"The uploaded file has {actual} bytes, not the {declared} bytes declared.")


@dataclasses.dataclass(frozen=True)
class Finished:
    """An upload a request finished: the attachment it became, and the seconds from the upload's
    beginning (a tus upload's creation, a direct upload's preparation) until then, which is
    how long its client took to upload it, pauses included."""
    attachment: object
    seconds: float

    @classmethod
    def since(cls, attachment, began, now):
        return cls(attachment, (now - began).total_seconds())


class StoredUploads:
    """Makes prepared attachment rows whose bytes are in ``blob_store`` attachments, through
    the attachment ``service``'s checks."""

    def __init__(self, *, service, blob_store):
        self.service = service
        self._catalog = service.catalog
        self._blob_store = blob_store

    def finish(self, record, storage_key):
        """Finish the prepared ``record`` whose bytes are at ``storage_key`` (a key no client
        can write to) like any upload; the record, an attachment now. A refusal
        (:func:`~affix.app.errors.is_refusal`) deletes the row and the object; a passing
        failure keeps both for the caller to finish again."""
        author = record.author
        inspection = None
        try:
            kind = (None if record.container_type is None
                    else self.service.container_types.named(record.container_type))
            inspection = self.service.begin_inspection(author, kind)
            content = read_stored_bytes(stored_chunks(self._blob_store, storage_key),
                                        inspection.feed)
            if content.size != record.file_size:
                raise size_mismatch(content.size, record.file_size)
            sniffed, acceptance = self.service.vet(
                author, kind, record.file_name, record.description, content, inspection)
            status = self.service.lifecycle.initial_status(acceptance.scanned)
            Attachment = self._catalog.Attachment
            with self._catalog.write_transaction():
                updated = (
                    Attachment.update(status=status, md5=content.md5,
                                      content_type=sniffed.content_type,
                                      charset=sniffed.charset, storage_key=storage_key)
                    .where((Attachment.id == record.id) & (Attachment.status == PREPARED))
                    .execute()
                )
                if updated:
                    record.status, record.md5, record.storage_key = (
                        status, content.md5, storage_key)
                    record.content_type, record.charset = sniffed.content_type, sniffed.charset
                    self.service.record_created(record, author, acceptance)
            if not updated:
                if Attachment.select().where(Attachment.id == record.id).exists():
                    # another request (a client's retry) finished it meanwhile: asked again,
                    # the upload answers with that attachment
                    raise Locked("Another request finished this upload meanwhile. Ask again "
                                 "for its attachment.")
                # cleaned up, or deleted by its author, since it was read
                raise not_found()
        except BaseException as error:
            if is_refusal(error):
                self.abandon(record, storage_key)
            raise
        finally:
            if inspection is not None:
                inspection.close()
        self.service.announce_created(record, author, acceptance)
        return record

    def abandon(self, record, object_key):
        """Delete a failed upload's row (while still prepared) and its object, unless a row
        names that object: a resumable upload's tries share one, which another try may have
        made an attachment's meanwhile. Best effort: the error that says why the upload failed
        is on its way and must not be replaced; what is left, ``affix cleanup`` removes once
        the upload has expired."""
        Attachment = self._catalog.Attachment
        try:
            with self._catalog.write_transaction():
                (Attachment.delete()
                 .where((Attachment.id == record.id) & (Attachment.status == PREPARED))
                 .execute())
                named = Attachment.select().where(Attachment.storage_key == object_key).exists()
            if not named:
                self._blob_store.delete(object_key)
        except Exception:
            log.exception("could not remove the failed upload %s", record.id)

    def discard(self, object_key):
        """Delete the object a failed try made while its upload stays for a retry (a direct
        upload's copy). Best effort, as :meth:`abandon`: what is left, ``affix gc`` removes."""
        try:
            self._blob_store.delete(object_key)
        except Exception:
            log.exception("could not remove the object of a failed try at %s", object_key)
