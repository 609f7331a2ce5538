"""Attachments as the service sees them: committing an upload, finding, deleting."""
from app.errors import not_found

NOT_FOUND_MESSAGE = "The specified attachment does not exist."


class AttachmentService:
    def __init__(self, catalog, blob_store, sniffer, clock):
        self.catalog = catalog
        self.blob_store = blob_store
        self.sniffer = sniffer
        self.clock = clock

    def commit(self, upload, author):
        """Make a received upload permanent: its blob and its row, both or neither.

        The blob is made durable first (outside any database lock); the row follows in one
        transaction. If the row cannot be written the blob is deleted again, so a failure leaves
        nothing; only a crash between the two can leave an unreferenced blob.
        """
        sniffed = self.sniffer.sniff(upload.head)
        storage_key = None
        try:
            storage_key = upload.staged_blob.commit()
            with self.catalog.database.atomic():
                return self.catalog.Attachment.create(
                    file_name=upload.file_name,
                    file_size=upload.size,
                    content_type=sniffed.content_type,
                    charset=sniffed.charset,
                    md5=upload.md5,
                    description=upload.description,
                    author=author,
                    status="uploaded",
                    storage_key=storage_key,
                    created_at=self.clock(),
                )
        except BaseException:
            if storage_key is None:
                upload.staged_blob.discard()
            else:
                self.blob_store.delete(storage_key)
            raise

    def find_visible(self, user, attachment_id):
        """The attachment if ``user`` may see it; 404 otherwise, so that nobody can learn that
        someone else's attachment exists."""
        Attachment = self.catalog.Attachment
        record = (
            Attachment.select(Attachment, self.catalog.User)
            .join(self.catalog.User)
            .where(Attachment.id == attachment_id)
            .first()
        )
        if record is None or not self._may_see(user, record):
            raise not_found(NOT_FOUND_MESSAGE)
        return record

    @staticmethod
    def _may_see(user, record) -> bool:
        # a containerless attachment belongs to its author alone
        return record.container_type is None and record.author_id == user.id

    def delete(self, record):
        """Remove the row, then the blob: a failure in between leaves an unreferenced blob,
        never a row whose bytes are gone."""
        with self.catalog.database.atomic():
            record.delete_instance()
        self.blob_store.delete(record.storage_key)
