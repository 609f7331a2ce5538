"""``/api/v3/configuration``: what a client asks before uploading (the size limit)."""
from affix.app.http import representers
from affix.app.http.paging import PER_PAGE_OPTIONS


class ConfigurationResource:
    def __init__(self, max_attachment_size):
        self.max_attachment_size = max_attachment_size

    def on_get(self, req, resp):
        resp.media = representers.configuration(
            req.root_path, self.max_attachment_size, req.netloc, PER_PAGE_OPTIONS)
