"""Work packages: just enough of them to own attachments, the way OpenProject clients use them."""
import re

import falcon

from app import representers
from app.containers import WORK_PACKAGES
from app.errors import (
    invalid_request_body, missing_permission, not_found, property_violation,
    property_violations,
)
from app.resources.attachments import render_attachment

VIEW, ADD, EDIT = "view_work_packages", "add_work_packages", "edit_work_packages"
SUBJECT_LIMIT = 255
# hrefs are accepted with or without the prefix the app is mounted at
_ATTACHMENT_HREF = re.compile(r"/api/v3/attachments/([0-9]+)/?\Z")
_PROJECT_HREF = re.compile(r"/api/v3/projects/([0-9]+)/?\Z")


def _document(req) -> dict:
    document = req.get_media()
    if not isinstance(document, dict):
        raise invalid_request_body("The request could not be parsed as JSON.")
    return document


def _links(document) -> dict:
    links = document.get("_links") or {}
    if not isinstance(links, dict):
        raise property_violation("_links", "Links must be an object.")
    return links


def _subject_errors(document, required):
    if "subject" not in document and not required:
        return []
    subject = document.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        return [property_violation("subject", "Subject can't be blank.")]
    if len(subject) > SUBJECT_LIMIT:
        return [property_violation(
            "subject", f"Subject is too long (maximum is {SUBJECT_LIMIT} characters).")]
    return []


def _attachment_ids(links):
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


class WorkPackages:
    """The work-package operations the resources share."""

    def __init__(self, service):
        self.service = service
        self.catalog = service.catalog
        self.permissions = service.permissions

    def visible(self, user, work_package_id):
        work_package = WORK_PACKAGES.find(self.catalog, work_package_id)
        if work_package is None or not self.permissions.allowed(
                user, {VIEW}, work_package.project):
            raise not_found("The specified work package does not exist.")
        return work_package

    def render(self, req, work_package) -> dict:
        user = req.context.user
        base = req.root_path
        attachments = representers.collection(
            f"{base}/api/v3/work_packages/{work_package.id}/attachments",
            [render_attachment(req, self.service, record)
             for record in self.service.of_container(WORK_PACKAGES, work_package)],
        )
        return representers.work_package(
            base, work_package, attachments,
            may_add_attachments=self.permissions.allowed(
                user, WORK_PACKAGES.add, work_package.project),
        )

    def create(self, req, resp, project):
        """Create a work package in ``project`` from the request and answer 201 with it."""
        user = req.context.user
        if not self.permissions.allowed(user, {ADD}, project):
            raise missing_permission()
        document = _document(req)
        errors = _subject_errors(document, required=True)
        if errors:
            raise property_violations(errors)
        attachment_ids = _attachment_ids(_links(document)) or []
        now = self.service.clock()
        with self.catalog.write_transaction():
            work_package = self.catalog.WorkPackage.create(
                project=project, subject=document["subject"], author=user,
                created_at=now, updated_at=now,
            )
            # creating the work package is what permits adding attachments to it here
            self.service.claim(user, attachment_ids, WORK_PACKAGES, work_package)
        resp.status = falcon.HTTP_201
        resp.media = self.render(req, work_package)


def _project_from_links(catalog, document):
    link = _links(document).get("project")
    href = link.get("href") if isinstance(link, dict) else None
    match = _PROJECT_HREF.search(href) if isinstance(href, str) else None
    if match is None:
        raise property_violation("project", "Project can't be blank.")
    project = catalog.get(catalog.Project, int(match.group(1)))
    if project is None:
        raise property_violation("project", "Project does not exist.")
    return project


class WorkPackagesResource:
    """``POST /api/v3/work_packages``: the project comes from ``_links.project``."""

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_post(self, req, resp):
        project = _project_from_links(self.work_packages.catalog, _document(req))
        self.work_packages.create(req, resp, project)


class ProjectWorkPackagesResource:
    """``POST /api/v3/projects/{id}/work_packages``."""

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_post(self, req, resp, project_id):
        catalog = self.work_packages.catalog
        project = catalog.get(catalog.Project, project_id)
        if project is None:
            raise not_found("The specified project does not exist.")
        self.work_packages.create(req, resp, project)


class WorkPackageResource:
    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_get(self, req, resp, container_id):
        work_package = self.work_packages.visible(req.context.user, container_id)
        resp.media = self.work_packages.render(req, work_package)

    def on_patch(self, req, resp, container_id):
        """Change the subject and claim the attachments listed; one left out is not deleted."""
        user = req.context.user
        service = self.work_packages.service
        work_package = self.work_packages.visible(user, container_id)
        if not service.permissions.allowed(user, {EDIT}, work_package.project):
            raise missing_permission()
        document = _document(req)
        errors = _subject_errors(document, required=False)
        if errors:
            raise property_violations(errors)
        attachment_ids = _attachment_ids(_links(document)) or []
        with service.catalog.write_transaction():
            if "subject" in document:
                work_package.subject = document["subject"]
            work_package.updated_at = service.clock()
            work_package.save()
            service.claim(user, attachment_ids, WORK_PACKAGES, work_package)
        resp.media = self.work_packages.render(req, work_package)
