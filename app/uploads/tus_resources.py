"""The routes of resumable uploads (tus 1.0): ``/api/v3/attachments/tus`` (OPTIONS to discover,
POST to create) and ``/api/v3/attachments/tus/{token}`` (HEAD, PATCH, DELETE, or a POST that
stands for one of them)."""
import re

import falcon

from affix.app.http import representers
from affix.app.http.errors import ApiError, property_violation
from affix.app.http.ids import id_of
from affix.app.attachments.resources import visible_container
from affix.app.uploads.tus import (
    CHECKSUM_ALGORITHMS, EXTENSIONS, OFFSET_OCTET_STREAM, TUS_VERSION, Declaration,
    parse_checksum, parse_upload_length, parse_upload_offset, request_body,
    unsupported_version,
)

TUS_PATH = f"{representers.API}/attachments/tus"
_CONTAINER_HREF = re.compile(rf"{representers.API}/([A-Za-z0-9_-]+)/([0-9]+)")


def _speaks_tus(req, resp, optional=False):
    """Every answer says which protocol it speaks, errors included; a request in another
    version of it, or in none unless the version is ``optional``, is refused (412) before
    anything else."""
    resp.set_header("Tus-Resumable", TUS_VERSION)
    version = req.get_header("Tus-Resumable")
    if version != TUS_VERSION and not (optional and version is None):
        raise unsupported_version()


def _is_upload_body(req) -> bool:
    return (req.content_type or "").split(";")[0].strip().lower() == OFFSET_OCTET_STREAM


def _answer_progress(req, resp, tus, upload):
    resp.set_header("Upload-Offset", str(upload.received))
    resp.set_header("Upload-Expires", falcon.dt_to_http(upload.expires_at))
    attachment_id = tus.attachment_of(upload)
    if attachment_id is not None:
        # where a generic tus client finds what its upload became
        href = representers.attachment_path(req.root_path, attachment_id)
        resp.set_header("Link", f'<{href}>; rel="attachment"')


class TusCreationResource:
    """Discovering tus (without a key: a client asks before it uploads) and creating uploads."""

    public_methods = ("OPTIONS",)
    # GET and the like: "tus" is just no attachment id
    shadows_an_id = True

    def __init__(self, tus):
        self.tus = tus

    def on_options(self, req, resp):
        resp.status = falcon.HTTP_204
        resp.set_header("Tus-Resumable", TUS_VERSION)
        resp.set_header("Tus-Version", TUS_VERSION)
        resp.set_header("Tus-Extension", ",".join(EXTENSIONS))
        resp.set_header("Tus-Max-Size", str(self.tus.max_size))
        resp.set_header("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS))

    def on_post(self, req, resp):
        _speaks_tus(req, resp)
        user = req.context.user
        length = parse_upload_length(req.get_header("Upload-Length"), self.tus.max_size)
        metadata = req.get_header("Upload-Metadata")
        declaration = Declaration(metadata)
        kind, container = self._container(req, user, declaration.container_href)
        body = request_body(req) if _is_upload_body(req) else None
        checksum = (None if body is None
                    else parse_checksum(req.get_header("Upload-Checksum")))
        upload = self.tus.create(user, length, metadata, declaration, kind, container,
                                 body=body, checksum=checksum)
        resp.status = falcon.HTTP_201
        resp.set_header("Location", f"{req.root_path}{TUS_PATH}/{upload.token}")
        _answer_progress(req, resp, self.tus, upload)

    def _container(self, req, user, href):
        """(kind, container) an ``Upload-Metadata`` container href names, as the container's
        own upload route finds it: 404 for one ``user`` may not see."""
        if href is None:
            return None, None
        path = href.removeprefix(req.root_path) if req.root_path else href
        match = _CONTAINER_HREF.fullmatch(path)
        kind = match and next((each for each in self.tus.service.container_types
                               if each.segment == match[1]), None)
        if kind is None:
            raise property_violation(
                "container", f"{href} is no container attachments can be uploaded into.")
        return kind, visible_container(kind, self.tus.service.permissions.grants(user),
                                       id_of(match[2]))


class TusUploadResource:
    """One upload: its offset (HEAD), its next bytes (PATCH), its end (DELETE)."""

    # the methods a POST may stand for with X-HTTP-Method-Override
    OVERRIDABLE = ("PATCH", "HEAD", "DELETE")

    def __init__(self, tus):
        self.tus = tus

    def on_post(self, req, resp, token):
        """A POST standing for a PATCH, HEAD or DELETE (``X-HTTP-Method-Override``), which
        tus 1.0 asks servers to honour for clients behind proxies that let only GET and POST
        through; anything else is no method of an upload (405)."""
        method = (req.get_header("X-HTTP-Method-Override") or "").upper()
        if method not in self.OVERRIDABLE:
            raise falcon.HTTPMethodNotAllowed(("DELETE", "HEAD", "OPTIONS", "PATCH", "POST"))
        getattr(self, f"on_{method.lower()}")(req, resp, token)

    def on_head(self, req, resp, token):
        # as tusd: a HEAD (a browser's, a proxy's check) need not name the version
        _speaks_tus(req, resp, optional=True)
        upload = self.tus.find(req.context.user, token)
        resp.set_header("Upload-Length", str(upload.upload_length))
        if upload.metadata:
            resp.set_header("Upload-Metadata", upload.metadata)
        resp.set_header("Cache-Control", "no-store")
        _answer_progress(req, resp, self.tus, upload)

    def on_patch(self, req, resp, token):
        _speaks_tus(req, resp)
        if not _is_upload_body(req):
            raise ApiError(falcon.HTTP_415, "TypeNotSupported",
                           f"Expected CONTENT-TYPE to be {OFFSET_OCTET_STREAM}.")
        offset = parse_upload_offset(req.get_header("Upload-Offset"))
        body = request_body(req)
        checksum = parse_checksum(req.get_header("Upload-Checksum"))
        upload = self.tus.append(self.tus.find(req.context.user, token), offset, body, checksum)
        resp.status = falcon.HTTP_204
        _answer_progress(req, resp, self.tus, upload)

    def on_delete(self, req, resp, token):
        _speaks_tus(req, resp)
        user = req.context.user
        self.tus.terminate(self.tus.find(user, token))
        resp.status = falcon.HTTP_204
