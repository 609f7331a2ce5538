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
