"""The routes of attachments: alone, their content, and those of each container type."""
from affix.app.attachments.resources import (
    AttachmentContentResource, AttachmentResource, AttachmentsResource,
    ContainerAttachmentsResource,
)
from affix.plugins.builtin import WORK_PACKAGE


def add_routes(app, services):
    service = services.attachments
    app.add_route("/api/v3/attachments", AttachmentsResource(service))
    app.add_route("/api/v3/attachments/{attachment_id:id}", AttachmentResource(service))
    content = AttachmentContentResource(service)
    app.add_route("/api/v3/attachments/{attachment_id:id}/download", content)
    app.add_route("/api/v3/attachments/{attachment_id:id}/content", content)
    for kind in services.container_types:
        app.add_route(
            f"/api/v3/{kind.segment}/{{container_id:id}}/attachments",
            # work packages are claimed for by creating or changing them, as in OpenProject
            ContainerAttachmentsResource(service, kind,
                                         claims_by_json=kind.name != WORK_PACKAGE),
        )
