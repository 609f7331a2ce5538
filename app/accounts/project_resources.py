"""``/api/v3/projects`` and ``/api/v3/projects/{id}``: the projects a user is a member of (every
project, for an admin); a project is addressed by its id or its identifier."""
from affix.app.http import representers
from affix.app.http.paging import Page
from affix.app.accounts.projects import visible_project, visible_projects_page


class ProjectsResource:
    def __init__(self, catalog):
        self.catalog = catalog

    def on_get(self, req, resp):
        page = Page.of(req)
        total, rows = visible_projects_page(self.catalog, req.context.user, page)
        resp.media = page.collection(
            "Collection", req.root_path + req.path, {}, total,
            [representers.project(req.root_path, project) for project in rows])


class ProjectResource:
    def __init__(self, catalog):
        self.catalog = catalog

    def on_get(self, req, resp, project_id):
        project = visible_project(self.catalog, req.context.user, project_id)
        resp.media = representers.project(req.root_path, project)
