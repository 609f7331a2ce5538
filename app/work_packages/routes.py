"""The routes of work packages, their forms and their attributes: affix's own API only while
the built-in plugin provides their type."""
from affix.app.work_packages.attributes import (
    AttributeResource, AttributesResource, ProjectTypesResource, attribute_kinds,
)
from affix.app.work_packages.forms import (
    ProjectWorkPackageCreateFormResource, WorkPackageCreateFormResource,
    WorkPackageUpdateFormResource,
)
from affix.app.work_packages.resources import (
    ProjectWorkPackagesResource, WorkPackageResource, WorkPackagesResource,
)


def add_routes(app, services):
    work_packages = services.work_packages
    if work_packages is None:
        return
    app.add_route("/api/v3/projects/{project_id}/work_packages",
                  ProjectWorkPackagesResource(work_packages))
    app.add_route("/api/v3/work_packages", WorkPackagesResource(work_packages))
    app.add_route("/api/v3/work_packages/form", WorkPackageCreateFormResource(work_packages))
    app.add_route("/api/v3/projects/{project_id}/work_packages/form",
                  ProjectWorkPackageCreateFormResource(work_packages))
    app.add_route("/api/v3/work_packages/{container_id:id}/form",
                  WorkPackageUpdateFormResource(work_packages))
    # the same field name as the container attachments' routes, which share this path level
    app.add_route("/api/v3/work_packages/{container_id:id}", WorkPackageResource(work_packages))
    for segment, attributes in attribute_kinds(services.catalog, services.permissions):
        app.add_route(f"/api/v3/{segment}", AttributesResource(attributes))
        app.add_route(f"/api/v3/{segment}/{{attribute_id:id}}", AttributeResource(attributes))
        if segment == "types":
            app.add_route("/api/v3/projects/{project_id}/types", ProjectTypesResource(attributes))
