"""Container types: the resources attachments can be claimed for."""
import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class ContainerType:
    """What affix needs to know of one kind of container.

    ``name`` is stored with each claimed attachment; ``segment`` is the API path segment
    (``/api/v3/<segment>/{id}``); ``find(catalog, id)`` returns the container or None;
    ``project_of`` and ``title_of`` read a container. A user may see the container's attachments
    with a ``view`` permission, add (upload into it, claim for it) with an ``add`` permission and
    delete them with a ``delete`` permission, each in the container's project.
    """

    name: str
    segment: str
    find: Callable
    project_of: Callable
    title_of: Callable
    view: frozenset
    add: frozenset
    delete: frozenset


WORK_PACKAGES = ContainerType(
    name="WorkPackage",
    segment="work_packages",
    find=lambda catalog, container_id: catalog.get(catalog.WorkPackage, container_id),
    project_of=lambda work_package: work_package.project,
    title_of=lambda work_package: work_package.subject,
    view=frozenset({"view_work_packages"}),
    add=frozenset({"edit_work_packages", "add_work_package_attachments"}),
    delete=frozenset({"edit_work_packages"}),
)


class ContainerTypes:
    """The container types of one app, by stored name and by path segment."""

    def __init__(self, types):
        self._by_name = {kind.name: kind for kind in types}
        self._by_segment = {kind.segment: kind for kind in types}

    def named(self, name) -> ContainerType:
        return self._by_name[name]

    def at(self, segment) -> ContainerType:
        return self._by_segment[segment]

    def __iter__(self):
        return iter(self._by_name.values())
