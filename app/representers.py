"""HAL representations of affix's resources.

Every href is built from ``base``, the path the app is mounted at (WSGI ``SCRIPT_NAME``), so links
stay right when a host serves affix under a prefix.
"""
import html
import re

API = "/api/v3"
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def formattable(raw: str) -> dict:
    """A plain-text Formattable: ``html`` is the escaped text, a ``<p>`` per paragraph."""
    text = raw.replace("\r\n", "\n").strip()
    paragraphs = [part.strip() for part in _PARAGRAPH_BREAK.split(text) if part.strip()]
    rendered = "".join(
        "<p>" + html.escape(part).replace("\n", "<br>") + "</p>" for part in paragraphs
    )
    return {"format": "plain", "raw": raw, "html": rendered}


def timestamp(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def attachment_path(base, attachment_id) -> str:
    return f"{base}{API}/attachments/{attachment_id}"


def user_path(base, user_id) -> str:
    return f"{base}{API}/users/{user_id}"


def attachment(base, record) -> dict:
    self_href = attachment_path(base, record.id)
    download = f"{self_href}/download"
    return {
        "_type": "Attachment",
        "id": record.id,
        "title": record.file_name,
        "fileName": record.file_name,
        # the schema says fileSize, the spec's example filesize: real clients read either
        "fileSize": record.file_size,
        "filesize": record.file_size,
        "description": formattable(record.description),
        "contentType": record.content_type,
        "digest": {"algorithm": "md5", "hash": record.md5},
        "createdAt": timestamp(record.created_at),
        "status": record.status,
        "_links": {
            "self": {"href": self_href, "title": record.file_name},
            "author": {"href": user_path(base, record.author.id), "title": record.author.name},
            "container": {"href": None},
            "staticDownloadLocation": {"href": download},
            "downloadLocation": {"href": download},
            "delete": {"href": self_href, "method": "delete"},
        },
    }


def user(base, record, *, show_login: bool) -> dict:
    body = {
        "_type": "User",
        "id": record.id,
        "name": record.name,
        "admin": record.admin,
        "status": "locked" if record.locked else "active",
        "_links": {"self": {"href": user_path(base, record.id), "title": record.name}},
    }
    if show_login:
        body["login"] = record.login
    return body


def root(base, instance_name, current_user) -> dict:
    links = {
        "self": {"href": f"{base}{API}"},
        "attachments": {"href": f"{base}{API}/attachments"},
    }
    if current_user is not None:
        links["user"] = {"href": user_path(base, current_user.id), "title": current_user.name}
    return {"_type": "Root", "instanceName": instance_name, "_links": links}
