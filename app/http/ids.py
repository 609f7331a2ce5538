"""The route field converter ``id``: ids in URLs as :mod:`affix.app.ids` reads them."""
import falcon.routing

from affix.app.ids import id_of


class IdConverter(falcon.routing.BaseConverter):
    """The route field converter ``id``: a path segment of digits routes, whatever id it
    spells (one that names nothing is a 404 of the resource); anything else does not route."""

    def convert(self, value):
        if not value.isascii() or not value.isdigit():
            return None
        return id_of(value)
