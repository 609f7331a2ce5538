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


def container_path(base, kind, container_id) -> str:
    return f"{base}{API}/{kind.segment}/{container_id}"


def project_path(base, project_id) -> str:
    return f"{base}{API}/projects/{project_id}"


def attachment(base, record, *, container_link, may_delete, download_url=None) -> dict:
    """``container_link`` is the container's link object, ``{"href": None}`` when unclaimed;
    ``download_url`` is where the storage serves the bytes itself (a pre-signed URL), if
    anywhere."""
    self_href = attachment_path(base, record.id)
    download = f"{self_href}/download"
    links = {
        "self": {"href": self_href, "title": record.file_name},
        "author": {"href": user_path(base, record.author.id), "title": record.author.name},
        "container": container_link,
        "staticDownloadLocation": {"href": download},
        "downloadLocation": {"href": download_url or download},
    }
    if may_delete:
        links["delete"] = {"href": self_href, "method": "delete"}
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
        "_links": links,
    }


def collection(self_href, elements) -> dict:
    return {
        "_type": "Collection",
        "total": len(elements),
        "count": len(elements),
        "_embedded": {"elements": elements},
        "_links": {"self": {"href": self_href}},
    }


def work_package_path(base, work_package_id) -> str:
    return f"{base}{API}/work_packages/{work_package_id}"


def attribute_path(base, segment, record_id) -> str:
    """The path of a type, status or priority (``segment``: types, statuses, priorities)."""
    return f"{base}{API}/{segment}/{record_id}"


def _attribute_link(base, segment, record) -> dict:
    return {"href": attribute_path(base, segment, record.id), "title": record.name}


def work_package(base, record, attachments=None, *, may_add_attachments,
                 may_prepare_attachments, may_edit, may_delete) -> dict:
    """``attachments`` is the already rendered collection of the work package's attachments,
    embedded in a single work package; a list's elements leave it out (their
    ``_links.attachments`` leads there). ``record`` comes with its project, author, type,
    status and priority."""
    self_href = work_package_path(base, record.id)
    links = {
        "self": {"href": self_href, "title": record.subject},
        "project": {"href": project_path(base, record.project.id), "title": record.project.name},
        "author": {"href": user_path(base, record.author.id), "title": record.author.name},
        "type": _attribute_link(base, "types", record.type),
        "status": _attribute_link(base, "statuses", record.status),
        "priority": _attribute_link(base, "priorities", record.priority),
        "attachments": {"href": f"{self_href}/attachments"},
    }
    if may_add_attachments:
        links["addAttachment"] = {"href": f"{self_href}/attachments", "method": "post"}
    if may_prepare_attachments:
        links["prepareAttachment"] = {"href": f"{self_href}/attachments/prepare",
                                      "method": "post"}
    if may_edit:
        links["update"] = {"href": f"{self_href}/form", "method": "post"}
        links["updateImmediately"] = {"href": self_href, "method": "patch"}
    if may_delete:
        links["delete"] = {"href": self_href, "method": "delete"}
    body = {
        "_type": "WorkPackage",
        "id": record.id,
        "lockVersion": record.lock_version,
        "subject": record.subject,
        "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
        "_links": links,
    }
    if attachments is not None:
        body["_embedded"] = {"attachments": attachments}
    return body


def work_package_type(base, record) -> dict:
    return {
        "_type": "Type", "id": record.id, "name": record.name, "color": record.color,
        "position": record.position, "isDefault": record.is_default,
        "isMilestone": record.is_milestone, "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
        "_links": {"self": _attribute_link(base, "types", record)},
    }


def status(base, record) -> dict:
    return {
        "_type": "Status", "id": record.id, "name": record.name, "position": record.position,
        "isDefault": record.is_default, "isClosed": record.is_closed, "color": record.color,
        "_links": {"self": _attribute_link(base, "statuses", record)},
    }


def priority(base, record) -> dict:
    return {
        "_type": "Priority", "id": record.id, "name": record.name, "position": record.position,
        "isDefault": record.is_default, "isActive": record.is_active, "color": record.color,
        "_links": {"self": _attribute_link(base, "priorities", record)},
    }


def project(base, record) -> dict:
    self_href = project_path(base, record.id)
    return {
        "_type": "Project",
        "id": record.id,
        "identifier": record.identifier,
        "name": record.name,
        "_links": {
            "self": {"href": self_href, "title": record.name},
            # OpenProject's names: the form first, the work package at once
            "createWorkPackage": {"href": f"{self_href}/work_packages/form", "method": "post"},
            "createWorkPackageImmediately": {"href": f"{self_href}/work_packages",
                                             "method": "post"},
            "workPackages": {"href": f"{self_href}/work_packages"},
            "types": {"href": f"{self_href}/types"},
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


def configuration(base, max_attachment_size, host_name, per_page_options) -> dict:
    """OpenProject's Configuration, without the per-user preferences link: affix has no
    preferences to point it at."""
    return {
        "_type": "Configuration",
        "maximumAttachmentFileSize": max_attachment_size,
        "hostName": host_name,
        "perPageOptions": list(per_page_options),
        "activeFeatureFlags": [],
        "_links": {"self": {"href": f"{base}{API}/configuration"}},
    }


def root(base, instance_name, current_user, *, work_packages) -> dict:
    """``work_packages``: whether the app serves work packages (the built-in plugin's)."""
    links = {
        "self": {"href": f"{base}{API}"},
        "attachments": {"href": f"{base}{API}/attachments"},
        "configuration": {"href": f"{base}{API}/configuration"},
        "projects": {"href": f"{base}{API}/projects"},
    }
    if work_packages:
        links.update({name: {"href": f"{base}{API}/{segment}"} for name, segment in (
            ("workPackages", "work_packages"), ("types", "types"), ("statuses", "statuses"),
            ("priorities", "priorities"))})
    if current_user is not None:
        links["user"] = {"href": user_path(base, current_user.id), "title": current_user.name}
    return {"_type": "Root", "instanceName": instance_name, "_links": links}


def attachment_upload(base, record, *, container_link, form_url, form_fields,
                      plan=None) -> dict:
    """A prepared direct upload (OpenProject's AttachmentUpload): the form that uploads its
    bytes to the store (``form_url``, ``form_fields``), or for an upload in parts, how the
    file is cut (``plan``) and where its parts and their URLs are; and where to complete it.
    ``container_link`` is None for an upload without a container."""
    self_href = attachment_path(base, record.id)
    download = f"{self_href}/download"
    links = {
        # OpenProject's path; answered while the upload is pending
        "self": {"href": f"{base}{API}/attachment_upload/{record.id}", "title": record.file_name},
        "author": {"href": user_path(base, record.author.id), "title": record.author.name},
        "completeUpload": {"href": f"{self_href}/uploaded", "method": "get"},
        "delete": {"href": self_href, "method": "delete"},
        "staticDownloadLocation": {"href": download},
        "downloadLocation": {"href": download},
    }
    if container_link is not None:
        links["container"] = container_link
    document = {
        "_type": "AttachmentUpload",
        "id": record.id,
        "fileName": record.file_name,
        "description": formattable(record.description),
        "createdAt": timestamp(record.created_at),
        "_links": links,
    }
    if plan is None:
        links["addAttachment"] = {"href": form_url, "method": "post", "form_fields": form_fields}
    else:
        links.update(upload_parts_links(self_href))
        document.update(fileSize=plan.size, partSize=plan.part_size, partCount=plan.count)
    return document


def upload_parts_links(self_href) -> dict:
    """Where an upload in parts lists its parts and gives their URLs."""
    return {"uploadParts": {"href": f"{self_href}/parts", "method": "get"},
            "partUrls": {"href": f"{self_href}/parts/urls{{?partNumbers}}", "templated": True,
                         "method": "get"}}
