"""An interactive explorer of affix's API at ``/api/v3/docs``: Swagger UI, reading the OpenAPI
document at ``/api/v3/spec.json``, where a user can authorise with an API key and try each
operation. Swagger UI's script and style come from the swagger-ui-bundle package, served by
affix itself: the page loads nothing from another host.

Like the document, the page and its assets are public (no key needed to read them); every call
the explorer makes is an API request like any other, authorised by the key the user enters.
They change only with affix and the package, so each is read once, and answered with an entity
tag that a browser revalidates (``no-cache``): a page it loaded before costs 304s, not the
bundle's 1.5 MB again."""
import hashlib
import typing
from importlib.resources.abc import Traversable

import falcon

from affix.app.errors import not_found
from affix.app.http.conditional import entity_tag, not_modified

EXPLORER_PATH = "/api/v3/docs"
# the page, or one of its assets: nothing deeper
EXPLORER_ROUTE = r"/api/v3/docs(?:/(?P<asset>[^/]+))?$"
# relative to the page's own URL (/api/v3/docs), so that a mount prefix is kept
PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>affix API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
</head>
<body>
<div id="explorer"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/explorer.js"></script>
</body>
</html>
"""
# a file of its own rather than an inline script, which a Content-Security-Policy may forbid;
# spec.json is relative to the page, like the assets
STARTER = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({url: "spec.json", dom_id: "#explorer", deepLinking: true});
};
"""
HTML = "text/html; charset=utf-8"
JAVASCRIPT, CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
# of the package's files, those the page loads
# (the icon too: without one, a browser asks the host's /favicon.ico, which is not affix's)
BUNDLED = {"swagger-ui-bundle.js": JAVASCRIPT, "swagger-ui.css": CSS,
           "favicon-32x32.png": "image/png"}


class Asset(typing.NamedTuple):
    """One file the explorer serves, with its entity tag."""

    content_type: str
    data: bytes
    etag: falcon.ETag

    @classmethod
    def of(cls, content_type: str, data: bytes) -> "Asset":
        return cls(content_type, data, entity_tag(hashlib.md5(data).hexdigest()))


class ExplorerSink:
    """The page at ``EXPLORER_PATH`` and its assets below it, as a Falcon sink: not an API
    resource, so not in the OpenAPI document either. ``bundle`` is the folder of
    swagger-ui-bundle's files, each read at its first request and kept."""

    auth_required = False

    def __init__(self, bundle: Traversable):
        self.bundle = bundle
        self._assets = {None: Asset.of(HTML, PAGE), "explorer.js": Asset.of(JAVASCRIPT, STARTER)}

    def _asset(self, name: str | None) -> Asset | None:
        asset = self._assets.get(name)
        if asset is None and name in BUNDLED:
            # two threads asking at once may both read it: the same bytes, kept once
            asset = self._assets[name] = Asset.of(BUNDLED[name], (self.bundle / name).read_bytes())
        return asset

    def __call__(self, req, resp, asset=None):
        if req.method not in ("GET", "HEAD"):
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        found = self._asset(asset)
        if found is None:
            raise not_found()
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.etag, resp.cache_control = found.etag, ["no-cache"]
        if not_modified(req, found.etag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type, resp.data = found.content_type, found.data
