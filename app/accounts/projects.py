"""Projects as the API addresses them: by id, or by identifier as OpenProject allows everywhere a
project is named (``/api/v3/projects/demo``, ``{"href": "/api/v3/projects/demo"}``)."""
import re

from affix.app.errors import not_found
from affix.app.ids import id_of

# hrefs are accepted with or without the prefix the app is mounted at
PROJECT_HREF = re.compile(r"/api/v3/projects/([^/]+)/?\Z")
NOT_FOUND_MESSAGE = "The specified project does not exist."
_DIGITS = re.compile(r"[0-9]+")


def project_by_key(catalog, key: str):
    """The project ``key`` names, a canonical id or an identifier; None for none. An identifier
    is never all digits (the CLI refuses one), so a number is always an id."""
    if _DIGITS.fullmatch(key):
        return catalog.get(catalog.Project, id_of(key))
    return catalog.Project.get_or_none(catalog.Project.identifier == key)


def is_member(catalog, user, project) -> bool:
    Membership = catalog.Membership
    return Membership.select().where(
        (Membership.user == user) & (Membership.project == project)).exists()


def project_visible_to(catalog, user, key: str):
    """The project ``key`` names if ``user`` may see it (a member, or an admin); None for one
    that does not exist and for one they may not see alike, so that whoever answers cannot
    tell the two apart."""
    project = project_by_key(catalog, key)
    if project is None or not (user.admin or is_member(catalog, user, project)):
        return None
    return project


def visible_project(catalog, user, key: str):
    """The project ``key`` names if ``user`` may see it; 404 otherwise."""
    project = project_visible_to(catalog, user, key)
    if project is None:
        raise not_found(NOT_FOUND_MESSAGE)
    return project


def visible_projects(catalog, user):
    """A query of the projects ``user`` may see."""
    Project, Membership = catalog.Project, catalog.Membership
    if user.admin:
        return Project.select()
    return Project.select().where(Project.id.in_(
        Membership.select(Membership.project).where(Membership.user == user)))


def visible_projects_page(catalog, user, page):
    """(total, rows of ``page`` by id) of the projects ``user`` may see; both in the
    database."""
    projects = visible_projects(catalog, user)
    rows = page.rows(projects.order_by(catalog.Project.id))
    return projects.count(), rows


def project_key_of_href(href):
    """The id or identifier an href of a project names, or None when it names no project."""
    match = PROJECT_HREF.search(href) if isinstance(href, str) else None
    return match.group(1) if match else None
