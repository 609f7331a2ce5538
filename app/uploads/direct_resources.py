"""The routes of direct uploads: ``POST /api/v3/attachments/prepare``, the same below each
container (``/api/v3/<segment>/{id}/attachments/prepare``), ``GET
/api/v3/attachment_upload/{id}`` while it is pending, and ``GET
/api/v3/attachments/{id}/uploaded``."""
import falcon

from affix.app.http import representers
from affix.app.http.request_facts import record_finished
from affix.app.attachments.resources import (
    container_link, grants_of, render_attachment, visible_container,
)
from affix.app.uploads.multipart import RequestBody


def _render_upload(req, resp, prepared, kind=None, container=None):
    """``container`` of ``kind``: where the upload goes, None without a container."""
    resp.media = representers.attachment_upload(
        req.root_path, prepared.record, container_link=container_link(req, kind, container),
        form_url=prepared.form_url, form_fields=prepared.form_fields, plan=prepared.plan,
    )


class PrepareUploadResource:
    """A direct upload without a container, to be claimed later like any upload."""

    def __init__(self, direct_uploads):
        self.direct_uploads = direct_uploads

    def on_post(self, req, resp):
        prepared = self.direct_uploads.prepare(req.context.user, RequestBody.of(req))
        resp.status = falcon.HTTP_201
        _render_upload(req, resp, prepared)


class ContainerPrepareUploadResource:
    """A direct upload into a container, with the permission an upload into it needs."""

    def __init__(self, direct_uploads, kind):
        self.direct_uploads = direct_uploads
        self.kind = kind

    def on_post(self, req, resp, container_id):
        user = req.context.user
        container = visible_container(self.kind, grants_of(req, self.direct_uploads.service),
                                      container_id)
        prepared = self.direct_uploads.prepare(user, RequestBody.of(req), self.kind, container)
        resp.status = falcon.HTTP_201
        _render_upload(req, resp, prepared, self.kind, container)


class PendingUploadResource:
    """``_links.self`` of an AttachmentUpload: the upload as prepare answered it, to its
    author, until it is complete (then it is at ``/api/v3/attachments/{id}``)."""

    def __init__(self, direct_uploads):
        self.direct_uploads = direct_uploads

    def on_get(self, req, resp, attachment_id):
        kind, container, prepared = self.direct_uploads.pending(req.context.user, attachment_id)
        _render_upload(req, resp, prepared, kind, container)


class CompleteUploadResource:
    def __init__(self, direct_uploads):
        self.direct_uploads = direct_uploads

    def on_get(self, req, resp, attachment_id):
        view, finished = self.direct_uploads.complete(
            grants_of(req, self.direct_uploads.service), attachment_id)
        record_finished(req, finished)
        resp.media = render_attachment(req, view)
