"""OpenProject's offset paging: ``offset`` is the page number (from 1), ``pageSize`` the
elements per page; the page is cut in the database (LIMIT/OFFSET), and counted there too.

Both parameters are read as OpenProject reads them (Ruby's ``to_i``: leading digits, anything
else 0): an offset below 1 is the first page, a page size of -1 or above the maximum is the
maximum, and a page size of 0 answers the total without elements.
"""
import dataclasses
import re
from urllib.parse import quote_plus

from affix.storage.models import MAX_ID

# OpenProject's defaults: the smallest of its per-page options, and apiv3_max_page_size
PER_PAGE_OPTIONS = (20, 100)
DEFAULT_PAGE_SIZE = PER_PAGE_OPTIONS[0]
MAX_PAGE_SIZE = 1000
_LEADING_INTEGER = re.compile(r"\s*([+-]?[0-9]+)")
# the placeholders of the templated links, written as they are
_PLACEHOLDERS = ("{offset}", "{size}")
# more digits than any row count has: the number is only ever compared, never stored
_DIGITS_KEPT = len(str(MAX_ID))


def _to_i(text) -> int:
    match = _LEADING_INTEGER.match(text)
    if match is None:
        return 0
    sign, digits = match.group(1)[:1], match.group(1).lstrip("+-").lstrip("0") or "0"
    number = int(digits[:_DIGITS_KEPT + 1])
    return -number if sign == "-" else number


@dataclasses.dataclass(frozen=True)
class Page:
    number: int
    size: int

    @classmethod
    def of(cls, req) -> "Page":
        offset, size = req.get_param("offset"), req.get_param("pageSize")
        number = max(_to_i(offset), 1) if offset is not None else 1
        if size is None:
            size = DEFAULT_PAGE_SIZE
        else:
            size = _to_i(size)
            size = MAX_PAGE_SIZE if size == -1 or size > MAX_PAGE_SIZE else max(size, 0)
        return cls(number, size)

    def rows(self, query) -> list:
        """The rows of this page of ``query`` (ordered), cut by the database."""
        skip = (self.number - 1) * self.size
        if self.size == 0 or skip > MAX_ID:
            return []
        return list(query.limit(self.size).offset(skip))

    def collection(self, type_name, path, query_params, total, elements) -> dict:
        """The page in OpenProject's shape; ``query_params`` are what every link repeats
        (the filters and the order), besides the page."""
        def link(number, size):
            params = {**query_params, "offset": number, "pageSize": size}
            # a template's placeholder stays as it is; everything else is escaped
            return path + "?" + "&".join(
                f"{key}={value if value in _PLACEHOLDERS else quote_plus(str(value))}"
                for key, value in sorted(params.items()))

        links = {
            "self": {"href": link(self.number, self.size)},
            "jumpTo": {"href": link("{offset}", self.size), "templated": True},
            "changeSize": {"href": link(self.number, "{size}"), "templated": True},
        }
        if self.number > 1:
            links["previousByOffset"] = {"href": link(self.number - 1, self.size)}
        if self.number * self.size < total:
            links["nextByOffset"] = {"href": link(self.number + 1, self.size)}
        return {
            "_type": type_name,
            "total": total,
            "count": len(elements),
            "pageSize": self.size,
            "offset": self.number,
            "_embedded": {"elements": elements},
            "_links": links,
        }
