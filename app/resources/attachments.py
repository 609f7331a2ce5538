"""``/api/v3/attachments``, the resources below it, and the attachments of a container."""
import falcon

from app import representers
from app.content_types import presentation
from app.downloads import send_blob, store_download_url
from app.errors import missing_permission, not_found
from app.links import attachment_ids, json_document, links_of
from app.upload import receive_upload


def render_attachment(req, service, record) -> dict:
    kind, container = service.container_of(record)
    if kind is None:
        container_link = {"href": None}
    else:
        container_link = {
            "href": representers.container_path(req.root_path, kind, container.id),
            "title": kind.title_of(container),
        }
    return representers.attachment(
        req.root_path, record, container_link=container_link,
        may_delete=service.may_delete(req.context.user, record),
        download_url=store_download_url(service.blob_store, record),
    )


class AttachmentsResource:
    """Containerless uploads."""

    def __init__(self, service, max_attachment_size):
        self.service = service
        self.max_attachment_size = max_attachment_size

    def on_post(self, req, resp):
        user = req.context.user
        # before a single byte of the body is read: a refused client costs us nothing
        if not self.service.permissions.may_upload(user):
            raise missing_permission()
        upload = receive_upload(req, self.service.blob_store, self.max_attachment_size)
        record = self.service.commit(upload, user)
        resp.media = render_attachment(req, self.service, record)


class AttachmentResource:
    def __init__(self, service):
        self.service = service

    def on_get(self, req, resp, attachment_id):
        record = self.service.find_visible(req.context.user, attachment_id)
        resp.media = render_attachment(req, self.service, record)

    def on_delete(self, req, resp, attachment_id):
        record = self.service.find_visible(req.context.user, attachment_id)
        self.service.delete(req.context.user, record)
        resp.status = falcon.HTTP_204


class AttachmentContentResource:
    """The bytes, at both ``/download`` (the spec's link) and ``/content`` (OpenProject's); a
    redirect to a pre-signed URL where the blob store serves them itself."""

    def __init__(self, service):
        self.service = service

    def on_get(self, req, resp, attachment_id):
        record = self.service.find_visible(req.context.user, attachment_id)
        url = store_download_url(self.service.blob_store, record)
        if url is not None:
            # signed afresh on every request: a URL handed out earlier may have expired
            resp.status = falcon.HTTP_302
            resp.location = url
            return
        send_blob(
            req, resp, lambda: self.service.blob_store.open(record.storage_key),
            record.file_size, presentation(record.content_type, record.charset),
            record.file_name,
        )


class ContainerAttachmentsResource:
    """``/api/v3/<segment>/{id}/attachments``: list a container's attachments, upload into it,
    or (with a JSON body naming ``_links.attachments``) claim uploads for it."""

    def __init__(self, service, kind, max_attachment_size):
        self.service = service
        self.kind = kind
        self.max_attachment_size = max_attachment_size

    def _visible_container(self, user, container_id):
        container = self.kind.find(container_id)
        if container is None or not self.service.permissions.allowed(
                user, self.kind.view, self.kind.project_of(container)):
            raise not_found()
        return container

    def _collection(self, req, container):
        elements = [
            render_attachment(req, self.service, record)
            for record in self.service.of_container(self.kind, container)
        ]
        return representers.collection(req.root_path + req.path, elements)

    def on_get(self, req, resp, container_id):
        container = self._visible_container(req.context.user, container_id)
        resp.media = self._collection(req, container)

    def on_post(self, req, resp, container_id):
        user = req.context.user
        container = self._visible_container(user, container_id)
        if not self.service.permissions.allowed(
                user, self.kind.add, self.kind.project_of(container)):
            raise missing_permission()
        if req.content_type and req.content_type.split(";")[0].strip() == "application/json":
            claims = attachment_ids(links_of(json_document(req))) or []
            self.service.claim_for(user, claims, self.kind, lambda: container)
            resp.media = self._collection(req, container)
            return
        upload = receive_upload(req, self.service.blob_store, self.max_attachment_size)
        record = self.service.commit(upload, user, self.kind, container)
        resp.media = render_attachment(req, self.service, record)
