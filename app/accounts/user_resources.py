"""``/api/v3/users/{id}``."""
from affix.app.http import representers
from affix.app.http.errors import not_found


class UserResource:
    def __init__(self, catalog):
        self.catalog = catalog

    def on_get(self, req, resp, user_id):
        record = self.catalog.get(self.catalog.User, user_id)
        if record is None:
            raise not_found("The specified user does not exist.")
        viewer = req.context.user
        # the deleted user's login is a made-up one that nobody needs
        # (affix.app.accounts.management)
        resp.media = representers.user(
            req.root_path, record,
            show_login=(viewer.admin or viewer.id == record.id) and not record.is_deleted_user,
        )
