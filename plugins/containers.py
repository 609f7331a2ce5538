"""Container types: the resources attachments can be claimed for."""
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # pragma: no cover - names for the annotations only
    from affix.storage.models import Project

# what a container type's containers are (a plugin's own model, say)
ContainerT = TypeVar("ContainerT")


@dataclasses.dataclass(frozen=True)
class ContainerType(Generic[ContainerT]):
    """What affix needs to know of one kind of container.

    ``name`` is stored with each claimed attachment (keep it stable); ``segment`` is the API path
    segment, so that the type's containers are ``/api/v3/<segment>/{id}``; ``find(id)`` returns
    the container with that id or None; ``project_of(container)`` and ``title_of(container)``
    read one. A user may see a container's attachments with one of the ``view`` permissions,
    upload into it and claim for it with one of ``add``, and delete its attachments with one of
    ``delete``, each held in the container's project.
    """

    name: str
    segment: str
    find: Callable[[int], ContainerT | None]
    project_of: Callable[[ContainerT], "Project | None"]
    title_of: Callable[[ContainerT], str]
    view: frozenset[str]
    add: frozenset[str]
    delete: frozenset[str]


class ContainerTypes:
    """The container types of one app, by stored name and by path segment."""

    def __init__(self, types: Iterable[ContainerType[Any]]) -> None:
        self._by_name: dict[str, ContainerType[Any]] = {}
        self._by_segment: dict[str, ContainerType[Any]] = {}
        for kind in types:
            for index, key in ((self._by_name, kind.name), (self._by_segment, kind.segment)):
                if key in index:
                    raise ValueError(f"two container types claim {key!r}")
                index[key] = kind

    def named(self, name: str) -> ContainerType[Any]:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[ContainerType[Any]]:
        return iter(self._by_name.values())
