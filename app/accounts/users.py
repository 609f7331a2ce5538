"""Users as the API addresses them: by id."""
from affix.app.errors import not_found


def existing_user(catalog, user_id):
    """The user with ``user_id``; 404 for none."""
    user = catalog.get(catalog.User, user_id)
    if user is None:
        raise not_found("The specified user does not exist.")
    return user
