"""The routes of resumable uploads (tus 1.0): ``/api/v3/attachments/tus`` (OPTIONS to discover,
POST to create) and ``/api/v3/attachments/tus/{token}`` (HEAD, PATCH, DELETE, or a POST that
stands for one of them). The tus headers are read here; :mod:`affix.app.uploads.tus` is given
what they say."""
import base64
import binascii
import re

import falcon

from affix.app.errors import (
    PreconditionFailed, TypeNotSupported, invalid_request_body, property_violation,
)
from affix.app.http import representers
from affix.app.http.request_facts import record_finished
from affix.app.ids import id_of
from affix.app.attachments.resources import visible_container
from affix.app.uploads.multipart import RequestBody
from affix.app.uploads.tus import (
    CHECKSUM_ALGORITHMS, EXTENSIONS, OFFSET_OCTET_STREAM, TUS_VERSION, Declaration, too_large,
)

TUS_PATH = f"{representers.API}/attachments/tus"
_CONTAINER_HREF = re.compile(rf"{representers.API}/([A-Za-z0-9_-]+)/([0-9]+)")


# the most digits a count of bytes has: the database keeps counts in 64 bits
MAX_COUNT_DIGITS = len(str(2 ** 63 - 1))


def bad_header(name, what):
    return invalid_request_body(f"{name} must be {what}.")


def _significant_digits(raw):
    """The digits of ``raw`` without its leading zeros, or None for anything but ASCII digits
    (``int()`` takes a sign, spaces, underscores and the digits of every script, and
    ``str.isdigit`` superscripts that ``int()`` refuses)."""
    if raw is None or not (raw.isascii() and raw.isdigit()):
        return None
    return raw.lstrip("0") or "0"


def parse_count(name, raw, what):
    """The whole number of bytes a header says, in ASCII digits alone: 400 for anything else,
    and for more bytes than anything holds (``int()`` would refuse past 4,300 digits)."""
    digits = _significant_digits(raw)
    if digits is None or len(digits) > MAX_COUNT_DIGITS:
        raise bad_header(name, what)
    return int(digits)


def parse_upload_length(raw, max_size):
    """An ``Upload-Length``: 413 for one over ``max_size``, however many digits it has."""
    digits = _significant_digits(raw)
    if digits is not None and len(digits) > len(str(max_size)):
        raise too_large(max_size)
    return parse_count("Upload-Length", raw, "the size of the file in bytes")


def parse_upload_offset(raw):
    return parse_count("Upload-Offset", raw, "the number of bytes the upload has")


def request_body(req):
    """The body of a tus request, its Content-Length (if any) checked as strictly as the
    protocol's own headers."""
    raw = req.get_header("Content-Length")
    length = None if raw is None else parse_count(
        "Content-Length", raw, "the number of bytes of the body")
    return RequestBody(req.stream, req.content_type, length)


def parse_checksum(raw):
    """(algorithm's hash object, expected digest) of an ``Upload-Checksum``, or None."""
    if raw is None:
        return None
    name, _, encoded = raw.strip().partition(" ")
    if name.lower() not in CHECKSUM_ALGORITHMS or not encoded.strip():
        raise bad_header("Upload-Checksum",
                         f"one of {', '.join(CHECKSUM_ALGORITHMS)} and a Base64 digest")
    try:
        expected = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise bad_header("Upload-Checksum", "an algorithm and a Base64 digest") from None
    return CHECKSUM_ALGORITHMS[name.lower()](), expected


def parse_metadata(raw) -> dict:
    """The pairs of an ``Upload-Metadata``: keys with Base64 values (or none), comma-separated;
    400 for anything else."""
    pairs = {}
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        key, _, encoded = entry.strip().partition(" ")
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise bad_header("Upload-Metadata", "keys with Base64 values of UTF-8 text") from None
        if key in pairs:
            raise bad_header("Upload-Metadata", "free of repeated keys")
        pairs[key] = value
    return pairs


def _speaks_tus(req, resp, optional=False):
    """Every answer says which protocol it speaks, errors included; a request in another
    version of it, or in none unless the version is ``optional``, is refused (412) before
    anything else."""
    resp.set_header("Tus-Resumable", TUS_VERSION)
    version = req.get_header("Tus-Resumable")
    if version != TUS_VERSION and not (optional and version is None):
        resp.set_header("Tus-Version", TUS_VERSION)
        raise PreconditionFailed(
            f"This server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}.")


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
        declaration = Declaration(parse_metadata(metadata))
        kind, container = self._container(req, user, declaration.container_href)
        body = request_body(req) if _is_upload_body(req) else None
        checksum = (None if body is None
                    else parse_checksum(req.get_header("Upload-Checksum")))
        upload, finished = self.tus.create(user, length, metadata, declaration, kind,
                                           container, body=body, checksum=checksum)
        record_finished(req, finished)
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
            raise TypeNotSupported(f"Expected CONTENT-TYPE to be {OFFSET_OCTET_STREAM}.")
        offset = parse_upload_offset(req.get_header("Upload-Offset"))
        body = request_body(req)
        checksum = parse_checksum(req.get_header("Upload-Checksum"))
        upload, finished = self.tus.append(self.tus.find(req.context.user, token), offset, body,
                                           checksum)
        record_finished(req, finished)
        resp.status = falcon.HTTP_204
        _answer_progress(req, resp, self.tus, upload)

    def on_delete(self, req, resp, token):
        _speaks_tus(req, resp)
        user = req.context.user
        self.tus.terminate(self.tus.find(user, token))
        resp.status = falcon.HTTP_204
