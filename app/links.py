"""Reading the HAL documents clients send: a JSON object, and the hrefs in its ``_links``."""
import re

from app.errors import invalid_request_body, property_violation

# hrefs are accepted with or without the prefix the app is mounted at
_ATTACHMENT_HREF = re.compile(r"/api/v3/attachments/([0-9]+)/?\Z")


def json_document(req) -> dict:
    document = req.get_media()
    if not isinstance(document, dict):
        raise invalid_request_body("The request could not be parsed as JSON.")
    return document


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
