"""``/api/v3/attachments`` and the resources below it."""
import falcon

from app import representers
from app.content_types import presentation
from app.downloads import send_blob
from app.errors import missing_permission
from app.upload import receive_upload


def may_upload(user, catalog, upload_permissions) -> bool:
    return user.admin or catalog.user_holds_any(user, upload_permissions)


class AttachmentsResource:
    """Containerless uploads."""

    def __init__(self, service, upload_permissions, max_attachment_size):
        self.service = service
        self.upload_permissions = upload_permissions
        self.max_attachment_size = max_attachment_size

    def on_post(self, req, resp):
        user = req.context.user
        # before a single byte of the body is read: a refused client costs us nothing
        if not may_upload(user, self.service.catalog, self.upload_permissions):
            raise missing_permission()
        upload = receive_upload(req, self.service.blob_store, self.max_attachment_size)
        record = self.service.commit(upload, user)
        resp.media = representers.attachment(req.root_path, record)


class AttachmentResource:
    def __init__(self, service):
        self.service = service

    def on_get(self, req, resp, attachment_id):
        record = self.service.find_visible(req.context.user, attachment_id)
        resp.media = representers.attachment(req.root_path, record)

    def on_delete(self, req, resp, attachment_id):
        record = self.service.find_visible(req.context.user, attachment_id)
        self.service.delete(record)
        resp.status = falcon.HTTP_204


class AttachmentContentResource:
    """The bytes, served at both ``/download`` (the spec's link) and ``/content`` (OpenProject's)."""

    def __init__(self, service):
        self.service = service

    def on_get(self, req, resp, attachment_id):
        record = self.service.find_visible(req.context.user, attachment_id)
        send_blob(
            req, resp, self.service.blob_store.open(record.storage_key), record.file_size,
            presentation(record.content_type, record.charset), record.file_name,
        )
