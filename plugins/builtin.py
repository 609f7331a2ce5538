"""affix's own behaviour, registered through the same hooks as any third-party plugin."""
from typing import TYPE_CHECKING

from affix.plugins import hookimpl
from affix.plugins.containers import ContainerType

if TYPE_CHECKING:  # pragma: no cover - names for the annotations only
    from affix.storage.models import Catalog, WorkPackage

VIEW_WORK_PACKAGES = "view_work_packages"
ADD_WORK_PACKAGES = "add_work_packages"
EDIT_WORK_PACKAGES = "edit_work_packages"
DELETE_WORK_PACKAGES = "delete_work_packages"
ADD_WORK_PACKAGE_ATTACHMENTS = "add_work_package_attachments"
WORK_PACKAGE = "WorkPackage"


@hookimpl
def affix_upload_permissions() -> list[str]:
    # OpenProject's own list: anyone who may edit or add content somewhere may upload
    return [EDIT_WORK_PACKAGES, ADD_WORK_PACKAGES, "edit_messages", "edit_wiki_pages"]


@hookimpl
def affix_permissions() -> list[str]:
    return [VIEW_WORK_PACKAGES, ADD_WORK_PACKAGES, EDIT_WORK_PACKAGES, DELETE_WORK_PACKAGES,
            ADD_WORK_PACKAGE_ATTACHMENTS]


@hookimpl
def affix_container_types(catalog: "Catalog") -> list[ContainerType["WorkPackage"]]:
    return [ContainerType(
        name=WORK_PACKAGE,
        segment="work_packages",
        # with its project, which every question about a work package's attachments asks
        find=lambda work_package_id: catalog.by_id(
            catalog.WorkPackage.select(catalog.WorkPackage, catalog.Project)
            .join(catalog.Project), catalog.WorkPackage, work_package_id),
        project_of=lambda work_package: work_package.project,
        title_of=lambda work_package: work_package.subject,
        view=frozenset({VIEW_WORK_PACKAGES}),
        add=frozenset({EDIT_WORK_PACKAGES, ADD_WORK_PACKAGE_ATTACHMENTS}),
        delete=frozenset({EDIT_WORK_PACKAGES}),
    )]
