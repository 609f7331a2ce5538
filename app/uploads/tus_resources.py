"""The routes of resumable uploads (tus 1.0): ``/api/v3/attachments/tus`` (OPTIONS to discover,
POST to create) and ``/api/v3/attachments/tus/{token}`` (HEAD, PATCH, DELETE, or a POST that
stands for one of them). The tus headers are read here; :mod:`affix.app.uploads.tus` is given
what they say."""
import base64
import re
import urllib.parse

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
from affix.storage.resumable import FINAL, PARTIAL

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


def parse_declared_length(raw, max_size):
    """The ``Upload-Length`` of a PATCH (an upload that deferred its length), or None: one of
    more digits than ``max_size`` has as ``max_size + 1``, which is too large all the same."""
    if raw is None:
        return None
    digits = _significant_digits(raw)
    if digits is not None and len(digits) > len(str(max_size)):
        return max_size + 1
    return parse_count("Upload-Length", raw, "the size of the file in bytes")


def parse_creation_length(req, max_size):
    """The ``Upload-Length`` of a new upload, or None when it says ``Upload-Defer-Length: 1``
    (creation-defer-length)."""
    deferred = req.get_header("Upload-Defer-Length")
    if deferred is None:
        return parse_upload_length(req.get_header("Upload-Length"), max_size)
    if deferred != "1":
        raise bad_header("Upload-Defer-Length", "1")
    if req.get_header("Upload-Length") is not None:
        raise invalid_request_body("Send Upload-Length or Upload-Defer-Length: 1, not both.")
    return None


def parse_final_concat(raw, root_path):
    """{URL as written: token} of the partial uploads an ``Upload-Concat: final;…`` names, in
    order; absolute URLs or paths, on this server's tus route."""
    urls = raw[len(FINAL):].split()
    tokens = {}
    for url in urls:
        try:
            path = urllib.parse.urlsplit(url).path
        except ValueError:
            # not a URL at all (an unclosed IPv6 address)
            tokens = {}
            break
        path = path.removeprefix(root_path) if root_path else path
        prefix, _, token = path.rpartition("/")
        if prefix != TUS_PATH or not token or token in tokens.values():
            tokens = {}
            break
        tokens[url] = token
    if not tokens:
        raise bad_header("Upload-Concat",
                         "partial, or final; and the URLs of partial uploads, each once")
    return tokens


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
    except ValueError:  # binascii.Error, or a character past ASCII
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
        except ValueError:  # not Base64 (a character past ASCII too), or not UTF-8
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
        concat = req.get_header("Upload-Concat")
        metadata = req.get_header("Upload-Metadata")
        if concat is not None and concat.startswith(FINAL):
            upload, finished = self._create_final(req, user, metadata, concat)
        elif concat not in (None, PARTIAL):
            raise bad_header("Upload-Concat",
                             "partial, or final; and the URLs of partial uploads, each once")
        else:
            length = parse_creation_length(req, self.tus.max_size)
            pairs = parse_metadata(metadata)
            # a partial upload becomes part of a final one, which says what the file is
            declaration = None if concat == PARTIAL else Declaration(pairs)
            kind, container = (None, None) if declaration is None else self._container(
                req, user, declaration.container_href)
            body = request_body(req) if _is_upload_body(req) else None
            checksum = (None if body is None
                        else parse_checksum(req.get_header("Upload-Checksum")))
            upload, finished = self.tus.create(user, length, metadata, declaration, kind,
                                               container, body=body, checksum=checksum)
        record_finished(req, finished)
        resp.status = falcon.HTTP_201
        resp.set_header("Location", f"{req.root_path}{TUS_PATH}/{upload.token}")
        _answer_progress(req, resp, self.tus, upload)

    def _create_final(self, req, user, metadata, concat):
        if (req.get_header("Upload-Length") is not None
                or req.get_header("Upload-Defer-Length") is not None):
            raise invalid_request_body(
                "A final upload's length is the sum of its partial uploads': send no "
                "Upload-Length.")
        partial_urls = parse_final_concat(concat, req.root_path)
        declaration = Declaration(parse_metadata(metadata))
        kind, container = self._container(req, user, declaration.container_href)
        return self.tus.create_final(user, metadata, declaration, kind, container,
                                     partial_urls)

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
        if upload.length_deferred:
            resp.set_header("Upload-Defer-Length", "1")
        else:
            resp.set_header("Upload-Length", str(upload.upload_length))
        if upload.concat is not None:
            resp.set_header("Upload-Concat", upload.concat)
        if upload.metadata:
            resp.set_header("Upload-Metadata", upload.metadata)
        resp.set_header("Cache-Control", "no-store")
        _answer_progress(req, resp, self.tus, upload)

    def on_patch(self, req, resp, token):
        _speaks_tus(req, resp)
        if not _is_upload_body(req):
            raise TypeNotSupported(f"Expected CONTENT-TYPE to be {OFFSET_OCTET_STREAM}.")
        offset = parse_upload_offset(req.get_header("Upload-Offset"))
        declared_length = parse_declared_length(req.get_header("Upload-Length"),
                                                self.tus.max_size)
        body = request_body(req)
        checksum = parse_checksum(req.get_header("Upload-Checksum"))
        upload, finished = self.tus.append(self.tus.find(req.context.user, token), offset, body,
                                           checksum, declared_length)
        record_finished(req, finished)
        resp.status = falcon.HTTP_204
        _answer_progress(req, resp, self.tus, upload)

    def on_delete(self, req, resp, token):
        _speaks_tus(req, resp)
        user = req.context.user
        self.tus.terminate(self.tus.find(user, token))
        resp.status = falcon.HTTP_204
