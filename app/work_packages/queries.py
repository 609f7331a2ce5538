"""The work-package list's query parameters, read as OpenProject reads them and turned into SQL:
``filters`` (a JSON array of ``{"<name>": {"operator": "…", "values": [...]}}``) and ``sortBy``
(a JSON array of ``["<property>", "asc"|"desc"]``). A query affix cannot answer is refused with
OpenProject's 400 InvalidQuery, never answered with something else.

Filters: ``id`` and ``type`` (``=``, ``!``), ``project`` (``=``, ``!``; ids or identifiers),
``subject`` (``~`` contains, ``!~`` does not; case-insensitive), ``status`` (``o`` open, ``c``
closed, ``=``, ``!``, ``*`` any), and affix's own ``attachments`` (``*`` has some, ``!*`` has
none). Without ``filters`` only open work packages are listed, as in OpenProject; ``[]`` lists
them all.
"""
import dataclasses
import json

import peewee

from affix.app.errors import InvalidQuery
from affix.app.ids import id_of
from affix.storage.models import is_valid_id

DEFAULT_FILTERS = [{"status": {"operator": "o", "values": []}}]
DEFAULT_SORT = [["id", "asc"]]
# OpenProject accepts the ``_id`` spellings of the references too
_ALIASES = {"status_id": "status", "type_id": "type", "project_id": "project"}
_LABELS = {"id": "ID", "project": "Project", "subject": "Subject", "status": "Status",
           "type": "Type", "attachments": "Attachments"}
_OPERATORS = {"id": {"=", "!"}, "type": {"=", "!"}, "project": {"=", "!"},
              "subject": {"~", "!~"}, "status": {"o", "c", "=", "!", "*"},
              "attachments": {"*", "!*"}}
# filters whose operator reads values
_VALUED = {"=", "!", "~", "!~"}
_SORT_DIRECTIONS = {"asc", "desc"}


def invalid_query(message):
    return InvalidQuery(message)


@dataclasses.dataclass(frozen=True)
class WorkPackageQuery:
    filters: list
    sort: list

    @classmethod
    def of(cls, filters, sort_by) -> "WorkPackageQuery":
        """The query the parameters ``filters`` and ``sortBy`` (their JSON text, or None)
        ask for."""
        filters = _json_param(filters, DEFAULT_FILTERS,
                              "Filters is not a JSON array of filters.")
        sort = _json_param(sort_by, DEFAULT_SORT,
                           "Sort by is not a JSON array of [property, direction] pairs.")
        return cls(_checked_filters(filters), _checked_sort(sort))

    @property
    def params(self) -> dict:
        """The query as the collection's links repeat it."""
        return {"filters": json.dumps(self.filters, separators=(",", ":")),
                "sortBy": json.dumps(self.sort, separators=(",", ":"))}

    def conditions(self, catalog) -> list:
        return [_condition(catalog, name, spec["operator"], spec["values"])
                for each in self.filters for name, spec in each.items()]

    def order(self, catalog) -> list:
        WorkPackage = catalog.WorkPackage
        columns = {"id": WorkPackage.id, "subject": WorkPackage.subject,
                   "createdAt": WorkPackage.created_at, "updatedAt": WorkPackage.updated_at,
                   "type": catalog.Type.position, "status": catalog.Status.position,
                   "priority": catalog.Priority.position}
        order = [getattr(columns[name], direction)() for name, direction in self.sort]
        if "id" not in (name for name, _ in self.sort):
            # pages must not overlap: equal keys are ordered by id
            order.append(WorkPackage.id.asc())
        return order


def _json_param(raw, default, message):
    if raw is None:
        return default
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid_query(message) from None
    if not isinstance(value, list):
        raise invalid_query(message)
    return value


def _checked_filters(filters) -> list:
    checked = []
    for entry in filters:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise invalid_query("Filters is not a JSON array of filters.")
        ((name, spec),) = entry.items()
        name = _ALIASES.get(name, name)
        if name not in _OPERATORS:
            raise invalid_query(f"Filters {name} does not exist.")
        label = _LABELS[name]
        operator = spec.get("operator") if isinstance(spec, dict) else None
        if operator not in _OPERATORS[name]:
            raise invalid_query(f"{label} filter has an invalid operator.")
        values = spec.get("values")
        if operator in _VALUED:
            if not isinstance(values, list) or not values or not all(
                    isinstance(value, (str, int)) and not isinstance(value, bool)
                    for value in values):
                raise invalid_query(f"{label} filter has invalid values.")
            values = [str(value) for value in values]
            if name in ("id", "type", "status") and not all(
                    is_valid_id(id_of(value)) for value in values):
                raise invalid_query(f"{label} filter has invalid values.")
            if name == "subject" and len(values) != 1:
                raise invalid_query(f"{label} filter has invalid values.")
        else:
            values = []
        checked.append({name: {"operator": operator, "values": values}})
    return checked


def _checked_sort(sort) -> list:
    known = ("id", "subject", "createdAt", "updatedAt", "type", "status", "priority")
    checked = []
    for entry in sort:
        if not (isinstance(entry, list) and len(entry) == 2
                and all(isinstance(part, str) for part in entry)):
            raise invalid_query("Sort by is not a JSON array of [property, direction] pairs.")
        name, direction = entry
        if name not in known:
            raise invalid_query(f"Sort by {name} is not supported.")
        if direction not in _SORT_DIRECTIONS:
            raise invalid_query(f"Sort direction {direction} is not asc or desc.")
        checked.append([name, direction])
    return checked


def _contains(column, text):
    """``column`` contains ``text``, case-insensitively, wildcards taken literally."""
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return peewee.NodeList((peewee.fn.LOWER(column), peewee.SQL("LIKE"), f"%{escaped}%",
                            peewee.SQL("ESCAPE '!'")))


def _condition(catalog, name, operator, values):
    WorkPackage, Attachment = catalog.WorkPackage, catalog.Attachment
    if name == "attachments":
        has = Attachment.select(peewee.SQL("1")).where(
            (Attachment.container_type == "WorkPackage")
            & (Attachment.container_id == WorkPackage.id))
        return peewee.fn.EXISTS(has) if operator == "*" else ~peewee.fn.EXISTS(has)
    if name == "subject":
        matches = _contains(WorkPackage.subject, values[0])
        return matches if operator == "~" else ~matches
    if name == "status" and operator in ("o", "c", "*"):
        return {"o": catalog.Status.is_closed == False,  # noqa: E712 (SQL, not Python)
                "c": catalog.Status.is_closed == True,  # noqa: E712
                "*": peewee.SQL("1 = 1")}[operator]
    if name == "project":
        Project = catalog.Project
        numbers = [id_of(value) for value in values if value.isdigit()]
        named = Project.select(Project.id).where(
            Project.id.in_(numbers) | Project.identifier.in_(values))
        column, values = WorkPackage.project, named
    else:
        column = {"id": WorkPackage.id, "type": WorkPackage.type,
                  "status": WorkPackage.status}[name]
        values = [id_of(value) for value in values]
    return column.in_(values) if operator == "=" else column.not_in(values)
