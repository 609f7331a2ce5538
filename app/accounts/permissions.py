"""Who may do what: admins everything, everybody else what their roles in a project hold."""


class Permissions:
    def __init__(self, *, catalog, upload_permissions):
        self.catalog = catalog
        self.upload_permissions = upload_permissions

    def may_upload(self, user) -> bool:
        """Whether ``user`` may upload without a container: any project will do."""
        return self.may_anywhere(user, self.upload_permissions)

    def may_anywhere(self, user, permissions) -> bool:
        """Whether ``user`` holds one of ``permissions`` in at least one project."""
        return user.admin or self.catalog.user_holds_any(user, permissions)

    def allowed(self, user, permissions, project) -> bool:
        """Whether ``user`` holds one of ``permissions`` in ``project``; a container whose
        project is gone (None) is left to admins, never widened to any project."""
        if user.admin:
            return True
        return project is not None and self.catalog.user_holds_any(user, permissions, project)

    def grants(self, user) -> "Grants":
        """``user``'s answers for one request, each project asked once."""
        return Grants(self.catalog, user)


class Grants:
    """What one user may do, for the length of one request: the permissions they hold in a
    project are read once, with one statement for however many projects are asked at once, and
    every question about that project is answered from them. Not kept longer, so a revoked
    permission stops working with the next request."""

    def __init__(self, catalog, user):
        self.catalog = catalog
        self.user = user
        # project id: the permission names the user holds there
        self._held = {}

    def learn(self, projects):
        """Read what the user holds in each of ``projects`` not read yet, in one statement."""
        if self.user.admin:
            return
        unread = sorted({project.id for project in projects
                         if project is not None and project.id not in self._held})
        if unread:
            held = self.catalog.permissions_held(self.user, unread)
            self._held.update({project_id: held.get(project_id, frozenset())
                               for project_id in unread})

    def allowed(self, permissions, project) -> bool:
        """As :meth:`Permissions.allowed` answers."""
        if self.user.admin:
            return True
        if project is None:
            return False
        self.learn([project])
        return not self._held[project.id].isdisjoint(permissions)
