"""The users of conftest's ``people`` fixture: affix's own ``People`` (``affix.app.testing``, the
``affix_users`` fixture plugin authors get), with keys dated like everything a test's app
writes."""
from affix.app.testing import People

from .defaults import FROZEN_NOW


def make_people(catalog) -> People:
    """Ada the admin, Bob who may upload, and Eve who may only look."""
    people = People(catalog, clock=lambda: FROZEN_NOW)
    people.add("ada", name="Ada Admin", admin=True)
    people.add("bob", name="Bob Builder", permissions=["edit_work_packages"])
    people.add("eve", name="Eve Nopermission", permissions=["view_work_packages"])
    return people
