"""``/api/v3/work_packages`` and ``/api/v3/projects/{id}/work_packages``: lists, creation, one
work package (read, change, delete)."""
import falcon

from affix.app.errors import missing_permission
from affix.app.http import representers
from affix.app.http.paging import Page
from affix.app.accounts.projects import visible_project
from affix.app.attachments.resources import grants_of, render_attachment
from affix.app.http.request_json import json_document
from affix.app.work_packages.queries import WorkPackageQuery
from affix.app.work_packages.service import DELETE, EDIT, VIEW, project_of_document

COLLECTION_TYPE = "WorkPackageCollection"


def render(work_packages, req, work_package, grants, embed_attachments=True) -> dict:
    """``work_package`` as ``req``'s user sees it; ``grants``: the request's, which answer for
    every work package of a list."""
    attachments = None
    if embed_attachments:
        service = work_packages.service
        views = service.views(
            grants, service.of_container(work_packages.kind, work_package), work_packages.kind,
            work_package)
        attachments = representers.collection(
            f"{req.root_path}/api/v3/work_packages/{work_package.id}/attachments",
            [render_attachment(req, view) for view in views],
        )
    project = work_package.project
    may_add_attachments = grants.allowed(work_packages.kind.add, project)
    return representers.work_package(
        req.root_path, work_package, attachments,
        may_add_attachments=may_add_attachments,
        may_prepare_attachments=may_add_attachments and work_packages.direct_uploads_available,
        may_edit=grants.allowed({EDIT}, project),
        may_delete=grants.allowed({DELETE}, project),
    )


def render_list(work_packages, req, grants, rows) -> list:
    """The page's ``rows``, what the user may do in all their projects read at once."""
    grants.learn([row.project for row in rows])
    return [render(work_packages, req, row, grants, embed_attachments=False) for row in rows]


def _list(work_packages, req, resp, grants, project=None):
    """A page of the work packages ``grants.user`` may see (of ``project``, if given)."""
    query = WorkPackageQuery.of(req.get_param("filters"), req.get_param("sortBy"))
    page = Page.of(req)
    catalog = work_packages.catalog
    conditions = [work_packages.visible_to(req.context.user), *query.conditions(catalog)]
    if project is not None:
        conditions.append(catalog.WorkPackage.project == project)
    total, rows = work_packages.page(query, page, conditions)
    resp.media = page.collection(COLLECTION_TYPE, req.root_path + req.path, query.params, total,
                                 render_list(work_packages, req, grants, rows))


class WorkPackagesResource:
    """``GET`` the work packages of every project the user may see them in; ``POST`` one,
    whose project comes from ``_links.project``."""

    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_get(self, req, resp):
        user = req.context.user
        if not self.work_packages.permissions.may_anywhere(user, {VIEW}):
            raise missing_permission({VIEW})
        _list(self.work_packages, req, resp, grants_of(req, self.work_packages))

    def on_post(self, req, resp):
        document = json_document(req)
        project = project_of_document(self.work_packages.catalog, req.context.user, document)
        resp.status = falcon.HTTP_201
        created = self.work_packages.create(req.context.user, project, document)
        resp.media = render(self.work_packages, req, created,
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
            raise missing_permission({VIEW})
        _list(self.work_packages, req, resp, grants, project)

    def on_post(self, req, resp, project_id):
        project = self._project(req, project_id)
        resp.status = falcon.HTTP_201
        created = self.work_packages.create(req.context.user, project, json_document(req))
        resp.media = render(self.work_packages, req, created,
                            grants_of(req, self.work_packages))


class WorkPackageResource:
    def __init__(self, work_packages):
        self.work_packages = work_packages

    def on_get(self, req, resp, container_id):
        grants = grants_of(req, self.work_packages)
        work_package = self.work_packages.visible(grants, container_id)
        resp.media = render(self.work_packages, req, work_package, grants)

    def on_patch(self, req, resp, container_id):
        """Change what the document names, on the lock version it names, and claim the
        attachments it lists; one left out is not deleted."""
        grants = grants_of(req, self.work_packages)
        work_package = self.work_packages.visible(grants, container_id)
        changed = self.work_packages.change(req.context.user, work_package, json_document(req))
        resp.media = render(self.work_packages, req, changed, grants)

    def on_delete(self, req, resp, container_id):
        """The work package, its attachments' rows and their bytes."""
        work_package = self.work_packages.visible(grants_of(req, self.work_packages),
                                                  container_id)
        self.work_packages.delete(req.context.user, work_package)
        resp.status = falcon.HTTP_204
