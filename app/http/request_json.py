"""Reading the HAL documents clients send: a JSON object, and the hrefs in its ``_links``."""
import json
import re

from affix.app.errors import ContentTooLarge, invalid_request_body, property_violation
from affix.app.ids import id_of

# hrefs are accepted with or without the prefix the app is mounted at
_ATTACHMENT_HREF = re.compile(r"/api/v3/attachments/([0-9]+)/?\Z")
# no document affix reads nests deeper than a few levels; a deeper one is walked no further
MAX_DEPTH = 32


def not_json():
    return invalid_request_body("The request could not be parsed as JSON.")


def _strings(document):
    """Every string of ``document`` (keys too), walked without recursion; 400 for a document
    nested deeper than :data:`MAX_DEPTH`."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise invalid_request_body(
                    f"The JSON document is nested more than {MAX_DEPTH} levels deep.")
            if isinstance(value, dict):
                yield from value
                value = value.values()
            pending.extend((item, depth + 1) for item in value)


def parse_json(raw: bytes):
    """``raw`` decoded; 400 when it is not JSON, including JSON nested too deep to decode."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 too: Unicode errors are ValueErrors
        raise not_json() from None


def storable_document(document) -> dict:
    """``document`` (decoded JSON) if it is an object whose every string every database we
    support can store as text; 400 otherwise. JSON escapes allow both a lone surrogate
    (``\\ud800``, which is not UTF-8) and U+0000 (which PostgreSQL refuses in text)."""
    if not isinstance(document, dict):
        raise not_json()
    for text in _strings(document):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise not_json() from None
        if "\x00" in text:
            raise invalid_request_body("Text may not contain the NUL character (U+0000).")
    return document


def json_document(req) -> dict:
    """The request's body, parsed by the media handler of its Content-Type. Falcon finds that
    handler by the type as written; media types are case-insensitive (RFC 9110, 8.3.1), so
    ``Application/JSON`` finds it too."""
    refuse_chunked_json(req)
    handlers = req.options.media_handlers
    media_type = media_type_of(req)
    try:
        if media_type in handlers:
            document = handlers[media_type].deserialize(
                req.bounded_stream, req.content_type, req.content_length)
        else:
            document = req.get_media()
    except RecursionError:
        raise not_json() from None
    return storable_document(document)


def refuse_chunked_json(req) -> None:
    """400 for a JSON body sent in chunks: Falcon reads no body without a Content-Length, so
    the JSON would read as missing."""
    if req.content_length is None and req.get_header("Transfer-Encoding"):
        raise invalid_request_body("A JSON body needs a Content-Length header; chunked "
                                   "transfer coding is for uploads.")


def media_type_of(req) -> str:
    """The media type of the request's Content-Type, in lower case, without its parameters;
    "" without one."""
    return (req.content_type or "").split(";")[0].strip().lower()


class JsonBodyLimit:
    """Falcon middleware: 413 for a body other than an upload's (multipart, or a resumable
    upload's bytes) that declares more than ``max_size`` bytes, before a byte of it is read.
    (Without a Content-Length, Falcon reads no JSON body at all.)"""

    def __init__(self, max_size):
        self.max_size = max_size

    def process_request(self, req, resp):
        upload = media_type_of(req).startswith(("multipart/", "application/offset+octet-stream"))
        if not upload and (req.content_length or 0) > self.max_size:
            raise ContentTooLarge("The request body is too large.")


def links_of(document) -> dict:
    links = document.get("_links") or {}
    if not isinstance(links, dict):
        raise property_violation("_links", "Links must be an object.")
    return links


def attachment_ids(links):
    """Attachment ids from ``_links.attachments``; None when the client did not send it."""
    if "attachments" not in links:
        return None
    entries = links["attachments"]
    if not isinstance(entries, list):
        raise property_violation("attachments", "Attachments must be a list of links.")
    ids = []
    for entry in entries:
        href = entry.get("href") if isinstance(entry, dict) else None
        match = _ATTACHMENT_HREF.search(href) if isinstance(href, str) else None
        if match is None:
            raise property_violation("attachments", "Attachments does not exist.")
        ids.append(id_of(match.group(1)))
    return ids
