"""What the listing commands show (``affix user list``, ``project list``, ``role list``,
``member list``) and ``affix member remove``: rows in the order they were made, each listing
read in a bounded number of queries whatever the number of rows."""
from affix.app.accounts.management import AccountError, find_project, find_user


def users(catalog):
    """Every user but the deleted user, whom nobody names."""
    User = catalog.User
    return list(User.select().where(~User.is_deleted_user).order_by(User.id))


def projects(catalog):
    Project = catalog.Project
    return list(Project.select().order_by(Project.id))


def roles(catalog):
    """(role, the names of its permissions in alphabetical order) of every role."""
    Role, RolePermission = catalog.Role, catalog.RolePermission
    held: dict[int, list[str]] = {}
    for grant in RolePermission.select().order_by(RolePermission.permission):
        held.setdefault(grant.role_id, []).append(grant.permission)
    return [(role, held.get(role.id, [])) for role in Role.select().order_by(Role.id)]


def _memberships(catalog, project):
    Membership, User, Role = catalog.Membership, catalog.User, catalog.Role
    return (Membership.select(Membership, User, Role)
            .join(User).switch(Membership).join(Role)
            .where(Membership.project == project).order_by(User.id, Role.name))


def members(catalog, identifier):
    """(user, the names of their roles) of each member of the project ``identifier``."""
    held: dict[int, tuple[object, list[str]]] = {}
    for membership in _memberships(catalog, find_project(catalog, identifier)):
        held.setdefault(membership.user.id, (membership.user, []))[1].append(
            membership.role.name)
    return list(held.values())


def remove_member(catalog, identifier, login):
    """Take every role the user ``login`` has in the project ``identifier``; their names."""
    with catalog.write_transaction():
        project = find_project(catalog, identifier)
        user = find_user(catalog, login)
        Membership = catalog.Membership
        taken = [membership.role.name for membership in _memberships(catalog, project)
                 .where(Membership.user == user)]
        if not taken:
            raise AccountError(f"{login!r} is no member of {identifier!r}")
        Membership.delete().where(
            (Membership.project == project) & (Membership.user == user)).execute()
    return taken
