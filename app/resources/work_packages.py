"""Work packages: just enough of them to own attachments, the way OpenProject clients use them."""
import re

import falcon

from affix.app import representers
from affix.app.errors import missing_permission, not_found, property_violation, property_violations
from affix.app.ids import id_of
from affix.app.request_json import attachment_ids, json_document, links_of
from affix.app.resources.attachments import render_attachment
from affix.plugins.builtin import (
    ADD_WORK_PACKAGES as ADD, EDIT_WORK_PACKAGES as EDIT, VIEW_WORK_PACKAGES as VIEW,
    WORK_PACKAGE,
)

SUBJECT_LIMIT = 255
# hrefs are accepted with or without the prefix the app is mounted at
_PROJECT_HREF = re.compile(r"/api/v3/projects/([0-9]+)/?\Z")


def _change_request(req, subject_required):
    """The request's JSON document, checked, and the attachment ids it claims."""
    document = json_document(req)
    errors = _subject_errors(document, subject_required)
    if errors:
        raise property_violations(errors)
    return document, attachment_ids(links_of(document)) or []


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


class WorkPackages:
    """The work-package operations the resources share."""

    def __init__(self, service):
        self.service = service
        self.catalog = service.catalog
        self.permissions = service.permissions
        self.kind = service.container_types.named(WORK_PACKAGE)

    def visible(self, user, work_package_id):
        work_package = self.kind.find(work_package_id)
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
             for record in self.service.of_container(self.kind, work_package)],
        )
        return representers.work_package(
            base, work_package, attachments,
            may_add_attachments=self.permissions.allowed(
                user, self.kind.add, work_package.project),
        )

    def create(self, req, resp, project):
        """Create a work package in ``project`` from the request and answer 201 with it."""
        user = req.context.user
        if not self.permissions.allowed(user, {ADD}, project):
            raise missing_permission()
        document, claims = _change_request(req, subject_required=True)
        now = self.service.clock()
        # creating the work package is what permits adding attachments to it here
        work_package = self.service.claim_for(
            user, claims, self.kind,
            lambda: self.catalog.WorkPackage.create(
                project=project, subject=document["subject"], author=user,
                created_at=now, updated_at=now,
            ),
        )
        resp.status = falcon.HTTP_201
        resp.media = self.render(req, work_package)


def _project_from_links(catalog, document):
    link = links_of(document).get("project")
    href = link.get("href") if isinstance(link, dict) else None
    match = _PROJECT_HREF.search(href) if isinstance(href, str) else None
    if match is None:
        raise property_violation("project", "Project can't be blank.")
    project = catalog.get(catalog.Project, id_of(match.group(1)))
    if project is None:
        raise property_violation("project", "Project does not exist.")
    return project


class WorkPackagesResource:
    """``POST /api/v3/work_packages``: the project comes from ``_links.project``."""

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_post(self, req, resp):
        project = _project_from_links(self.work_packages.catalog, json_document(req))
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
        document, claims = _change_request(req, subject_required=False)

        def change():
            if "subject" in document:
                work_package.subject = document["subject"]
            work_package.updated_at = service.clock()
            work_package.save()
            return work_package

        service.claim_for(user, claims, self.work_packages.kind, change, work_package)
        resp.media = self.work_packages.render(req, work_package)
