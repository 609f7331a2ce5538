"""``/api/v3/users/{id}``."""
from affix.app.http import representers
from affix.app.accounts.users import existing_user


class UserResource:
    def __init__(self, catalog):
        self.catalog = catalog

    def on_get(self, req, resp, user_id):
        record = existing_user(self.catalog, user_id)
        viewer = req.context.user
        # the deleted user's login is a made-up one that nobody needs
        # (affix.app.accounts.management)
        resp.media = representers.user(
            req.root_path, record,
            show_login=(viewer.admin or viewer.id == record.id) and not record.is_deleted_user,
        )
