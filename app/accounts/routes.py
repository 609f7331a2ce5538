"""The routes of users and projects."""
from affix.app.accounts.project_resources import ProjectResource, ProjectsResource
from affix.app.accounts.user_resources import UserResource


def add_routes(app, services):
    catalog = services.catalog
    app.add_route("/api/v3/users/{user_id:id}", UserResource(catalog))
    app.add_route("/api/v3/projects", ProjectsResource(catalog))
    # a project's id or its identifier
    app.add_route("/api/v3/projects/{project_id}", ProjectResource(catalog))
