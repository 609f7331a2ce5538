"""Work-package forms, OpenProject's ``Form``: ``POST /api/v3/work_packages/form``,
``/api/v3/projects/{id}/work_packages/form`` and ``/api/v3/work_packages/{id}/form`` check a
payload without writing anything, and answer it back with its schema, every property error in
``_embedded.validationErrors`` (not as an error response) and, when it is valid, the
``commit`` link that makes it.

A form refuses what OpenProject refuses outside the form too: a body that is not JSON (400), no
permission (403), a work package the user may not see (404), a change naming an old or no
``lockVersion`` (409).
"""
from affix.app.http import representers
from affix.app.errors import DomainError, missing_permission
from affix.app.http.errors import hal_error
from affix.app.accounts.projects import visible_project
from affix.app.http.request_json import json_document, links_of, refuse_chunked_json
from affix.app.work_packages.service import (
    ADD, ATTRIBUTES, SUBJECT_LIMIT, lock_version_of, project_of_document, read_change,
    update_conflict,
)


def _schema(base, catalog, updating) -> dict:
    def allowed(attribute):
        return [{"href": representers.attribute_path(base, attribute.segment, record.id),
                 "title": record.name}
                for record in attribute.choices(catalog)]

    schema = {
        "_type": "Schema",
        "_dependencies": [],
        "lockVersion": {"type": "Integer", "name": "Lock Version", "required": True,
                        "hasDefault": False, "writable": False},
        "id": {"type": "Integer", "name": "ID", "required": True, "hasDefault": False,
               "writable": False},
        "subject": {"type": "String", "name": "Subject", "required": True, "hasDefault": False,
                    "writable": True, "minLength": 1, "maxLength": SUBJECT_LIMIT},
        "project": {"type": "Project", "name": "Project", "required": True,
                    "hasDefault": False, "writable": not updating},
        "attachments": {"type": "[]Attachment", "name": "Attachments", "required": False,
                        "hasDefault": False, "writable": True},
    }
    for attribute in ATTRIBUTES:
        schema[attribute.name] = {
            "type": attribute.label, "name": attribute.label, "required": True,
            "hasDefault": True, "writable": True,
            "_links": {"allowedValues": allowed(attribute)},
        }
    schema["_links"] = {}
    return schema


def _payload(base, document, change, project, work_package) -> dict:
    """What the work package would be: the document's values over the defaults (creating) or
    the work package's own (changing)."""
    links = links_of(document)
    values = change.values
    payload = {}
    if work_package is not None:
        payload["lockVersion"] = work_package.lock_version
    # what the client sent, even when it is wrong: the form shows it with its error
    payload["subject"] = document["subject"] if "subject" in document else (
        work_package.subject if work_package is not None else None)
    # a form asked for without a project shows the link to fill in, as OpenProject's does
    payload_links: dict[str, object] = {"project": {"href": None}}
    if project is not None:
        payload_links["project"] = {"href": representers.project_path(base, project.id),
                                    "title": project.name}
    for attribute in ATTRIBUTES:
        record = values.get(attribute.name)
        if record is None and work_package is not None:
            record = getattr(work_package, attribute.name)
        payload_links[attribute.name] = (
            {"href": representers.attribute_path(base, attribute.segment, record.id),
             "title": record.name} if record is not None else links.get(attribute.name))
    payload_links["attachments"] = [
        {"href": representers.attachment_path(base, attachment_id)}
        for attachment_id in change.claims]
    payload["_links"] = payload_links
    return payload


def _form(req, work_packages, document, change, *, project, work_package, commit) -> dict:
    base = req.root_path
    if not change.errors:
        try:
            # the claims as they would be checked when committing, reported like the rest
            work_packages.service.check_claims(
                req.context.user, change.claims, work_packages.kind, work_package)
        except DomainError as error:
            change.errors.append(error)
    links = {"self": {"href": base + req.path, "method": "post"},
             "validate": {"href": base + req.path, "method": "post"}}
    if not change.errors:
        links["commit"] = commit
    return {
        "_type": "Form",
        "_embedded": {
            "payload": _payload(base, document, change, project, work_package),
            "schema": _schema(base, work_packages.catalog, work_package is not None),
            "validationErrors": {error.attribute or "base": hal_error(error)
                                 for error in change.errors},
        },
        "_links": links,
    }


def form_document(req) -> dict:
    """The payload to check: none at all is an empty one, as OpenProject takes a form request
    without a body (clients ask for the empty form to fill it in)."""
    refuse_chunked_json(req)
    if not req.content_length:
        return {}
    return json_document(req)


def _create_form(req, work_packages, document, project):
    """The form of a new work package, in ``project`` when the route names one."""
    user = req.context.user
    catalog = work_packages.catalog
    change = read_change(catalog, document, creating=True)
    if project is None:
        try:
            project = project_of_document(catalog, user, document)
        except DomainError as error:
            change.errors.insert(0, error)
    if project is not None:
        work_packages.require_may_add(user, project)
    elif not work_packages.permissions.may_anywhere(user, {ADD}):
        raise missing_permission({ADD})
    commit_path = (f"/api/v3/projects/{project.id}/work_packages"
                   if req.path.startswith("/api/v3/projects/") and project is not None
                   else "/api/v3/work_packages")
    return _form(req, work_packages, document, change, project=project, work_package=None,
                 commit={"href": req.root_path + commit_path, "method": "post"})


class WorkPackageCreateFormResource:
    """``POST /api/v3/work_packages/form``: the project comes from ``_links.project``."""

    # see affix.app.http.routing.ShadowedIds
    shadows_an_id = True

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_post(self, req, resp):
        resp.media = _create_form(req, self.work_packages, form_document(req), None)


class ProjectWorkPackageCreateFormResource:
    """``POST /api/v3/projects/{id}/work_packages/form``."""

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_post(self, req, resp, project_id):
        project = visible_project(self.work_packages.catalog, req.context.user, project_id)
        resp.media = _create_form(req, self.work_packages, form_document(req), project)


class WorkPackageUpdateFormResource:
    """``POST /api/v3/work_packages/{id}/form``."""

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_post(self, req, resp, container_id):
        user = req.context.user
        work_package = self.work_packages.visible(self.work_packages.permissions.grants(user),
                                                  container_id)
        self.work_packages.require_may_edit(user, work_package)
        document = form_document(req)
        if lock_version_of(document) != work_package.lock_version:
            raise update_conflict()
        change = read_change(self.work_packages.catalog, document, creating=False)
        resp.media = _form(
            req, self.work_packages, document, change, project=work_package.project,
            work_package=work_package,
            commit={"href": representers.work_package_path(req.root_path, work_package.id),
                    "method": "patch"})

