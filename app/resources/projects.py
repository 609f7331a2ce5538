"""``/api/v3/projects/{id}``: visible to its members and to admins."""
from affix.app import representers
from affix.app.errors import not_found


class ProjectResource:
    def __init__(self, catalog):
        self.catalog = catalog

    def on_get(self, req, resp, project_id):
        user = req.context.user
        project = self.catalog.get(self.catalog.Project, project_id)
        is_member = project is not None and self.catalog.Membership.select().where(
            (self.catalog.Membership.user == user) & (self.catalog.Membership.project == project)
        ).exists()
        if project is None or not (user.admin or is_member):
            raise not_found("The specified project does not exist.")
        resp.media = representers.project(req.root_path, project)
