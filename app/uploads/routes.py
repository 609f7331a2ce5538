"""The routes of the uploads that are not one request: direct uploads and tus."""
from affix.app.uploads.direct_resources import (
    CompleteUploadResource, ContainerPrepareUploadResource, PendingUploadResource,
    PrepareUploadResource,
)
from affix.app.uploads.direct_parts import DirectPartUploads
from affix.app.uploads.direct_parts_resources import UploadPartsResource, UploadPartUrlsResource
from affix.app.uploads.tus_resources import TUS_PATH, TusCreationResource, TusUploadResource


def add_routes(app, services):
    direct_uploads, tus = services.direct_uploads, services.tus
    app.add_route("/api/v3/attachments/prepare", PrepareUploadResource(direct_uploads))
    app.add_route("/api/v3/attachment_upload/{attachment_id:id}",
                  PendingUploadResource(direct_uploads))
    app.add_route("/api/v3/attachments/{attachment_id:id}/uploaded",
                  CompleteUploadResource(direct_uploads))
    part_uploads = DirectPartUploads(direct_uploads)
    app.add_route("/api/v3/attachments/{attachment_id:id}/parts",
                  UploadPartsResource(part_uploads))
    app.add_route("/api/v3/attachments/{attachment_id:id}/parts/urls",
                  UploadPartUrlsResource(part_uploads))
    for kind in services.container_types:
        app.add_route(
            f"/api/v3/{kind.segment}/{{container_id:id}}/attachments/prepare",
            ContainerPrepareUploadResource(direct_uploads, kind),
        )
    if tus.enabled:
        # AFFIX_TUS_MAX_SIZE=0: no route, so every tus path answers 404
        app.add_route(TUS_PATH, TusCreationResource(tus))
        app.add_route(TUS_PATH + "/{token}", TusUploadResource(tus))
