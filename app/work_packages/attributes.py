"""Types, statuses and priorities of work packages: ``/api/v3/types``,
``/api/v3/projects/{id}/types``, ``/api/v3/statuses``, ``/api/v3/priorities`` and one of each.

They are seen by whoever may see work packages somewhere (admins always), as in OpenProject;
a project's types by whoever may see its work packages. Every type is every project's."""
from affix.app.http import representers
from affix.app.errors import missing_permission, not_found
from affix.app.accounts.projects import visible_project
from affix.app.work_packages.service import VIEW, in_list_order


class Attributes:
    """One kind of them: ``model_name`` of the catalogue, rendered by ``render``."""

    def __init__(self, catalog, permissions, model_name, render, not_found_message):
        self.catalog = catalog
        self.permissions = permissions
        self.model_name = model_name
        self.render = render
        self.not_found_message = not_found_message

    @property
    def model(self):
        return getattr(self.catalog, self.model_name)

    def require_may_see(self, user):
        if not self.permissions.may_anywhere(user, {VIEW}):
            raise missing_permission({VIEW})

    def find(self, attribute_id):
        """The one with ``attribute_id``; 404 for none."""
        record = self.catalog.get(self.model, attribute_id)
        if record is None:
            raise not_found(self.not_found_message)
        return record

    def collection(self, req) -> dict:
        return representers.collection(
            req.root_path + req.path,
            [self.render(req.root_path, record) for record in in_list_order(self.model)])


class AttributesResource:
    def __init__(self, attributes):
        self.attributes = attributes

    def on_get(self, req, resp):
        self.attributes.require_may_see(req.context.user)
        resp.media = self.attributes.collection(req)


class AttributeResource:
    def __init__(self, attributes):
        self.attributes = attributes

    def on_get(self, req, resp, attribute_id):
        self.attributes.require_may_see(req.context.user)
        record = self.attributes.find(attribute_id)
        resp.media = self.attributes.render(req.root_path, record)


class ProjectTypesResource:
    """``/api/v3/projects/{id}/types``."""

    def __init__(self, types):
        self.types = types

    def on_get(self, req, resp, project_id):
        user = req.context.user
        project = visible_project(self.types.catalog, user, project_id)
        if not self.types.permissions.allowed(user, {VIEW}, project):
            raise missing_permission({VIEW})
        resp.media = self.types.collection(req)


def attribute_kinds(catalog, permissions):
    """(segment, Attributes) of types, statuses and priorities."""
    return [
        ("types", Attributes(catalog, permissions, "Type", representers.work_package_type,
                             "The specified type does not exist.")),
        ("statuses", Attributes(catalog, permissions, "Status", representers.status,
                                "The specified status does not exist.")),
        ("priorities", Attributes(catalog, permissions, "Priority", representers.priority,
                                  "The specified priority does not exist.")),
    ]
