"""The routes of direct uploads in parts (:mod:`affix.app.uploads.direct_parts`):
``GET /api/v3/attachments/{id}/parts`` and ``GET /api/v3/attachments/{id}/parts/urls``."""
from affix.app.http.representers import attachment_path, timestamp, upload_parts_links


def _plan(plan) -> dict:
    return {"fileSize": plan.size, "partSize": plan.part_size, "partCount": plan.count}


class UploadPartsResource:
    """The parts the bucket holds of an upload in parts: what is left to send."""

    def __init__(self, part_uploads):
        self.part_uploads = part_uploads

    def on_get(self, req, resp, attachment_id):
        found = self.part_uploads.held(req.context.user, attachment_id)
        self_href = attachment_path(req.root_path, found.record.id)
        resp.media = {
            "_type": "UploadParts", **_plan(found.plan),
            "parts": [{"partNumber": part.number, "size": part.size} for part in found.held],
            "_links": {**upload_parts_links(self_href),
                       "self": {"href": f"{self_href}/parts"},
                       "completeUpload": {"href": f"{self_href}/uploaded", "method": "get"},
                       "delete": {"href": self_href, "method": "delete"}},
        }


class UploadPartUrlsResource:
    """Pre-signed URLs of the parts a client names (``?partNumbers=1,2,3``)."""

    def __init__(self, part_uploads):
        self.part_uploads = part_uploads

    def on_get(self, req, resp, attachment_id):
        signed = self.part_uploads.part_urls(req.context.user, attachment_id,
                                             req.get_param("partNumbers"))
        self_href = attachment_path(req.root_path, signed.record.id)
        resp.media = {
            "_type": "UploadPartUrls", **_plan(signed.plan),
            "expiresAt": timestamp(signed.expires_at),
            "parts": [{"partNumber": number, "size": signed.plan.length(number),
                       "href": url, "method": "put"} for number, url in signed.urls.items()],
            "_links": {"uploadParts": {"href": f"{self_href}/parts", "method": "get"}},
        }
