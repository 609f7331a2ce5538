"""Reading the HAL documents clients send: a JSON object, and the hrefs in its ``_links``."""
import re

from affix.app.errors import invalid_request_body, property_violation

# hrefs are accepted with or without the prefix the app is mounted at
_ATTACHMENT_HREF = re.compile(r"/api/v3/attachments/([0-9]+)/?\Z")


def not_json():
    return invalid_request_body("The request could not be parsed as JSON.")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


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
    return storable_document(req.get_media())


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
        ids.append(int(match.group(1)))
    return ids
