"""``/api/v3/work_packages`` and ``/api/v3/projects/{id}/work_packages``: lists, creation, one
work package (read, change, delete)."""
import falcon

from affix.app.http.errors import missing_permission
from affix.app.http.paging import Page
from affix.app.accounts.projects import visible_project
from affix.app.attachments.resources import grants_of
from affix.app.http.request_json import json_document
from affix.app.work_packages.queries import WorkPackageQuery
from affix.app.work_packages.service import VIEW, project_of_document

COLLECTION_TYPE = "WorkPackageCollection"


def _list(work_packages, req, resp, grants, project=None):
    """A page of the work packages ``grants.user`` may see (of ``project``, if given)."""
    query, page = WorkPackageQuery.of(req), Page.of(req)
    catalog = work_packages.catalog
    conditions = [work_packages.visible_to(req.context.user), *query.conditions(catalog)]
    if project is not None:
        conditions.append(catalog.WorkPackage.project == project)
    total, rows = work_packages.page(query, page, conditions)
    resp.media = page.collection(COLLECTION_TYPE, req.root_path + req.path, query.params, total,
                                 work_packages.render_list(req, grants, rows))


class WorkPackagesResource:
    """``GET`` the work packages of every project the user may see them in; ``POST`` one,
    whose project comes from ``_links.project``."""

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_get(self, req, resp):
        user = req.context.user
        if not self.work_packages.permissions.may_anywhere(user, {VIEW}):
            raise missing_permission()
        _list(self.work_packages, req, resp, grants_of(req, self.work_packages))

    def on_post(self, req, resp):
        document = json_document(req)
        project = project_of_document(self.work_packages.catalog, req.context.user, document)
        resp.status = falcon.HTTP_201
        resp.media = self.work_packages.render(
            req, self.work_packages.create(req, project, document),
            grants_of(req, self.work_packages))


class ProjectWorkPackagesResource:
    """``/api/v3/projects/{id}/work_packages``: the project by id or identifier."""

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def _project(self, req, project_id):
        return visible_project(self.work_packages.catalog, req.context.user, project_id)

    def on_get(self, req, resp, project_id):
        project, grants = self._project(req, project_id), grants_of(req, self.work_packages)
        if not grants.allowed({VIEW}, project):
            raise missing_permission()
        _list(self.work_packages, req, resp, grants, project)

    def on_post(self, req, resp, project_id):
        project = self._project(req, project_id)
        resp.status = falcon.HTTP_201
        resp.media = self.work_packages.render(
            req, self.work_packages.create(req, project, json_document(req)),
            grants_of(req, self.work_packages))


class WorkPackageResource:
    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_get(self, req, resp, container_id):
        grants = grants_of(req, self.work_packages)
        work_package = self.work_packages.visible(grants, container_id)
        resp.media = self.work_packages.render(req, work_package, grants)

    def on_patch(self, req, resp, container_id):
        """Change what the document names, on the lock version it names, and claim the
        attachments it lists; one left out is not deleted."""
        grants = grants_of(req, self.work_packages)
        work_package = self.work_packages.visible(grants, container_id)
        changed = self.work_packages.change(req, work_package, json_document(req))
        resp.media = self.work_packages.render(req, changed, grants)

    def on_delete(self, req, resp, container_id):
        """The work package, its attachments' rows and their bytes."""
        work_package = self.work_packages.visible(grants_of(req, self.work_packages),
                                                  container_id)
        self.work_packages.delete(req, work_package)
        resp.status = falcon.HTTP_204
