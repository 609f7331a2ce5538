"""``/api/v3/attachments``, the resources below it, and the attachments of a container."""
import falcon

from affix.app.http import representers
from affix.app.http.conditional import entity_tag, last_modified, not_modified, range_applies
from affix.app.uploads.content_types import presentation
from affix.app.http.downloads import send_blob
from affix.app.errors import not_found
from affix.app.http.request_facts import record_stored
from affix.app.http.request_json import attachment_ids, json_document, links_of, media_type_of
from affix.app.uploads.multipart import RequestBody


def grants_of(req, service):
    """What the request's user may do, each project asked once in this request."""
    return service.permissions.grants(req.context.user)


def container_link(req, kind, container) -> dict | None:
    """The link to ``container`` of ``kind``; None for no container."""
    if container is None:
        return None
    return {
        "href": representers.container_path(req.root_path, kind, container.id),
        "title": kind.title_of(container),
    }


def visible_container(kind, grants, container_id):
    """The container of ``kind`` with ``container_id`` if ``grants.user`` may see it; 404
    otherwise."""
    container = kind.find(container_id)
    if container is None or not grants.allowed(kind.view, kind.project_of(container)):
        raise not_found()
    return container


def render_attachment(req, view) -> dict:
    """``view``: an :class:`~affix.app.attachments.service.AttachmentView`, which has all
    it takes."""
    return representers.attachment(
        req.root_path, view.record,
        container_link=container_link(req, view.kind, view.container) or {"href": None},
        may_delete=view.may_delete, download_url=view.download_url,
    )


class AttachmentsResource:
    """Containerless uploads."""

    def __init__(self, service):
        self.service = service

    def on_post(self, req, resp):
        record = self.service.upload(req.context.user, RequestBody.of(req))
        record_stored(req, record)
        resp.media = render_attachment(req, self.service.view(grants_of(req, self.service),
                                                              record))


class AttachmentResource:
    def __init__(self, service):
        self.service = service

    def on_get(self, req, resp, attachment_id):
        view = self.service.find_visible(grants_of(req, self.service), attachment_id)
        resp.media = render_attachment(req, view)

    def on_delete(self, req, resp, attachment_id):
        view = self.service.find_visible(grants_of(req, self.service), attachment_id)
        self.service.delete(req.context.user, view)
        resp.status = falcon.HTTP_204


class AttachmentContentResource:
    """The bytes, at both ``/download`` (the spec's link) and ``/content`` (OpenProject's); a
    redirect to a pre-signed URL where the blob store serves them itself."""

    def __init__(self, service):
        self.service = service

    def on_get(self, req, resp, attachment_id):
        view = self.service.find_downloadable(grants_of(req, self.service), attachment_id)
        record, url = view.record, view.download_url
        if url is not None:
            # signed afresh on every request: a URL handed out earlier may have expired, so
            # nobody keeps this answer; the store answers conditional requests on the URL
            resp.status = falcon.HTTP_302
            resp.location = url
            resp.cache_control = ["private", "no-store"]
            return
        etag, modified = entity_tag(record.md5), last_modified(record.created_at)
        resp.etag, resp.last_modified = etag, modified
        # an attachment is its uploader's or a project's: never for a shared cache
        resp.cache_control = ["private"]
        if not_modified(req, etag, modified):
            resp.status = falcon.HTTP_304
            return
        send_blob(
            req, resp, lambda: self.service.open_content(record),
            record.file_size, presentation(record.content_type, record.charset),
            record.file_name, honour_range=range_applies(req, etag, modified),
        )


class ContainerAttachmentsResource:
    """``/api/v3/<segment>/{id}/attachments``: list a container's attachments, upload into it,
    or (``claims_by_json``) claim uploads for it with a JSON body naming ``_links.attachments``.

    Work packages are claimed for as OpenProject claims them (creating or changing one), so
    their attachments endpoint answers anything but multipart as OpenProject does, 415: a
    client whose upload is broken learns so. A plugin's container type has no other way."""

    def __init__(self, service, kind, claims_by_json):
        self.service = service
        self.kind = kind
        self.claims_by_json = claims_by_json

    def _collection(self, req, grants, container):
        views = self.service.views(grants, self.service.of_container(self.kind, container),
                                   self.kind, container)
        return representers.collection(req.root_path + req.path,
                                       [render_attachment(req, view) for view in views])

    def on_get(self, req, resp, container_id):
        grants = grants_of(req, self.service)
        container = visible_container(self.kind, grants, container_id)
        resp.media = self._collection(req, grants, container)

    def on_post(self, req, resp, container_id):
        user, grants = req.context.user, grants_of(req, self.service)
        container = visible_container(self.kind, grants, container_id)
        if self.claims_by_json and media_type_of(req) == "application/json":
            self.service.require_may_add(user, self.kind, container)
            claims = attachment_ids(links_of(json_document(req))) or []
            self.service.claim_for(user, claims, self.kind, lambda: container, container)
            resp.media = self._collection(req, grants, container)
            return
        record = self.service.upload(user, RequestBody.of(req), self.kind, container)
        record_stored(req, record)
        resp.media = render_attachment(
            req, self.service.view(grants, record, self.kind, container))
