"""``/api/v3/users/{id}``."""
from affix.app import representers
from affix.app.errors import not_found


class UserResource:
    def __init__(self, catalog):
        self.catalog = catalog

    def on_get(self, req, resp, user_id):
        record = self.catalog.get(self.catalog.User, user_id)
        if record is None:
            raise not_found("The specified user does not exist.")
        viewer = req.context.user
        resp.media = representers.user(
            req.root_path, record, show_login=viewer.admin or viewer.id == record.id
        )
