"""Work packages: enough of them to own attachments the way OpenProject clients use them, with
OpenProject's types, statuses, priorities and optimistic locking (``lockVersion``)."""
import dataclasses
import functools
import operator
import re

import peewee

from affix.app.errors import (
    DomainError, UpdateConflict, missing_permission, not_found, property_violation,
    property_violations,
)
from affix.app.ids import id_of
from affix.app.accounts.projects import project_key_of_href, project_visible_to
from affix.app.http.request_json import attachment_ids, links_of
from affix.plugins.builtin import (
    ADD_WORK_PACKAGES as ADD, DELETE_WORK_PACKAGES as DELETE, EDIT_WORK_PACKAGES as EDIT,
    VIEW_WORK_PACKAGES as VIEW, WORK_PACKAGE,
)

SUBJECT_LIMIT = 255
NOT_FOUND_MESSAGE = "The specified work package does not exist."
# OpenProject's answer to a change made on an older version, or naming none
CONFLICT_MESSAGE = "Could not update the resource because of conflicting modifications."


def update_conflict():
    return UpdateConflict(CONFLICT_MESSAGE)


def in_list_order(model) -> list:
    """Every type, status or priority (``model``) there is, in the order OpenProject lists
    them."""
    return list(model.select().order_by(model.position, model.id))


@dataclasses.dataclass(frozen=True)
class Attribute:
    """A reference of a work package that its ``_links`` name: a type, a status, a priority."""

    name: str
    segment: str
    label: str

    def href_pattern(self):
        # hrefs are accepted with or without the prefix the app is mounted at
        return re.compile(rf"/api/v3/{self.segment}/([0-9]+)/?\Z")

    def model(self, catalog):
        return getattr(catalog, self.name.title())

    def choices(self, catalog) -> list:
        return in_list_order(self.model(catalog))

    def default(self, catalog):
        model = self.model(catalog)
        return (model.select().order_by(model.is_default.desc(), model.position, model.id)
                .first())


ATTRIBUTES = (Attribute("type", "types", "Type"), Attribute("status", "statuses", "Status"),
              Attribute("priority", "priorities", "Priority"))


@dataclasses.dataclass
class Change:
    """What a work-package document asks for, checked: the values to write, the attachments to
    claim, the project (when creating) and the property errors found."""

    values: dict
    claims: list
    errors: list
    project: object = None


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


def _href(links, name):
    link = links.get(name)
    return link.get("href") if isinstance(link, dict) else None


def read_change(catalog, document, *, creating) -> Change:
    """``document`` (a work package's JSON) checked against the database; nothing raised for
    a property, every problem collected in ``errors`` (a form shows them all)."""
    links = links_of(document)
    errors = _subject_errors(document, required=creating)
    values = {"subject": document["subject"]} if "subject" in document and not errors else {}
    for attribute in ATTRIBUTES:
        if attribute.name not in links:
            if creating:
                values[attribute.name] = attribute.default(catalog)
            continue
        href = _href(links, attribute.name)
        match = attribute.href_pattern().search(href) if isinstance(href, str) else None
        record = catalog.get(attribute.model(catalog), id_of(match.group(1))) if match else None
        # an inactive priority stays on the work packages that have it, and is given no other
        if record is None or not getattr(record, "is_active", True):
            errors.append(property_violation(
                attribute.name, f"{attribute.label} is not set to one of the allowed values."))
        else:
            values[attribute.name] = record
    try:
        claims = attachment_ids(links) or []
    except DomainError as error:
        errors.append(error)
        claims = []
    return Change(values, claims, errors)


def project_of_document(catalog, user, document):
    """The project ``_links.project`` names (by id or identifier); 422 for none, and the same
    422 for one that does not exist or that ``user`` may not see."""
    key = project_key_of_href(_href(links_of(document), "project"))
    if key is None:
        raise property_violation("project", "Project can't be blank.")
    project = project_visible_to(catalog, user, key)
    if project is None:
        raise property_violation("project", "Project does not exist.")
    return project


def lock_version_of(document):
    """The ``lockVersion`` a change was made on; 409 without one, as OpenProject answers."""
    version = document.get("lockVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        raise update_conflict()
    return version


class WorkPackages:
    """The work-package operations the resources share."""

    def __init__(self, *, service, direct_uploads_available):
        self.service = service
        # whether a work package offers its prepareAttachment link, as OpenProject's do while
        # direct uploads are on
        self.direct_uploads_available = direct_uploads_available
        self.catalog = service.catalog
        self.permissions = service.permissions
        self.kind = service.container_types.named(WORK_PACKAGE)

    def _select(self):
        catalog = self.catalog
        WorkPackage = catalog.WorkPackage
        return (WorkPackage
                .select(WorkPackage, catalog.Project, catalog.User, catalog.Type,
                        catalog.Status, catalog.Priority)
                .join_from(WorkPackage, catalog.Project)
                .join_from(WorkPackage, catalog.User)
                .join_from(WorkPackage, catalog.Type)
                .join_from(WorkPackage, catalog.Status)
                .join_from(WorkPackage, catalog.Priority))

    def _read(self, work_package_id):
        """The work package with everything it is rendered with, or None."""
        return self.catalog.by_id(self._select(), self.catalog.WorkPackage, work_package_id)

    def _reread(self, work_package_id):
        """The work package just written, read back to be rendered."""
        work_package = self._read(work_package_id)
        if work_package is None:
            # deleted by another request right after this one committed
            raise not_found(NOT_FOUND_MESSAGE)
        return work_package

    def visible(self, grants, work_package_id):
        """The work package if ``grants.user`` may see it; 404 otherwise."""
        work_package = self._read(work_package_id)
        if work_package is None or not grants.allowed({VIEW}, work_package.project):
            raise not_found(NOT_FOUND_MESSAGE)
        return work_package

    def visible_to(self, user):
        """The condition on work packages that ``user`` may see: those of the projects where
        one of their roles holds view_work_packages; all of them for an admin."""
        if user.admin:
            return peewee.SQL("1 = 1")
        catalog = self.catalog
        Membership, RolePermission = catalog.Membership, catalog.RolePermission
        viewable = (Membership.select(Membership.project)
                    .join(RolePermission, on=RolePermission.role == Membership.role)
                    .where((Membership.user == user) & (RolePermission.permission == VIEW)))
        return catalog.WorkPackage.project.in_(viewable)

    def page(self, query, page, conditions):
        """(total, rows of ``page``) of the work packages meeting ``conditions``, ordered by
        ``query``; both in the database."""
        WorkPackage = self.catalog.WorkPackage
        where = functools.reduce(operator.and_, conditions)
        total = (WorkPackage.select(peewee.fn.COUNT(WorkPackage.id))
                 .join_from(WorkPackage, self.catalog.Status).where(where).scalar())
        rows = page.rows(self._select().where(where).order_by(*query.order(self.catalog)))
        return total, rows

    def require_may_add(self, user, project):
        if not self.permissions.allowed(user, {ADD}, project):
            raise missing_permission({ADD})

    def create(self, user, project, document):
        """Create a work package in ``project`` from ``document`` by ``user``; the new work
        package."""
        self.require_may_add(user, project)
        change = read_change(self.catalog, document, creating=True)
        if change.errors:
            raise property_violations(change.errors)
        now = self.service.clock()
        # creating the work package is what permits adding attachments to it here
        work_package = self.service.claim_for(
            user, change.claims, self.kind,
            lambda: self.catalog.WorkPackage.create(
                project=project, author=user, created_at=now, updated_at=now,
                lock_version=0, **change.values),
        )
        # its creator may add work packages without being allowed to see them afterwards
        return self._reread(work_package.id)

    def require_may_edit(self, user, work_package):
        if not self.permissions.allowed(user, {EDIT}, work_package.project):
            raise missing_permission({EDIT})

    def change(self, user, work_package, document):
        """Apply ``document`` to ``work_package`` for ``user`` if it names the current lock
        version; the changed work package. Two changes made on the same version: exactly one
        is applied."""
        self.require_may_edit(user, work_package)
        version = lock_version_of(document)
        if version != work_package.lock_version:
            raise update_conflict()
        change = read_change(self.catalog, document, creating=False)
        if change.errors:
            raise property_violations(change.errors)
        WorkPackage = self.catalog.WorkPackage

        def apply():
            updated = (WorkPackage
                       .update(lock_version=WorkPackage.lock_version + 1,
                               updated_at=self.service.clock(), **change.values)
                       .where((WorkPackage.id == work_package.id)
                              & (WorkPackage.lock_version == version))
                       .execute())
            if not updated:
                # changed (or deleted) since it was read: the claims roll back with this
                raise update_conflict()
            return work_package

        self.service.claim_for(user, change.claims, self.kind, apply, work_package)
        return self._reread(work_package.id)

    def delete(self, user, work_package):
        """Delete ``work_package`` for ``user``, with its attachments, rows and bytes."""
        if not self.permissions.allowed(user, {DELETE}, work_package.project):
            raise missing_permission({DELETE})

        def delete_row():
            if not work_package.delete_instance():
                # another request deleted it since it was read: that one answers 204
                raise not_found(NOT_FOUND_MESSAGE)

        self.service.delete_with_container(user, self.kind, work_package, delete_row)
