"""An interactive explorer of affix's API at ``/api/v3/docs``: Swagger UI, reading the OpenAPI
document at ``/api/v3/spec.json``, where a user can authorise with an API key and try each
operation. Swagger UI's script and style come from the swagger-ui-bundle package, served by
affix itself: the page loads nothing from another host.

Like the document, the page and its assets are public (no key needed to read them); every call
the explorer makes is an API request like any other, authorised by the key the user enters."""
from importlib.resources.abc import Traversable

import falcon

from affix.app.errors import not_found

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
JAVASCRIPT, CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
# of the package's files, those the page loads
# (the icon too: without one, a browser asks the host's /favicon.ico, which is not affix's)
BUNDLED = {"swagger-ui-bundle.js": JAVASCRIPT, "swagger-ui.css": CSS,
           "favicon-32x32.png": "image/png"}


class ExplorerSink:
    """The page at ``EXPLORER_PATH`` and its assets below it, as a Falcon sink: not an API
    resource, so not in the OpenAPI document either. ``bundle`` is the folder of
    swagger-ui-bundle's files."""

    auth_required = False

    def __init__(self, bundle: Traversable):
        self.bundle = bundle

    def __call__(self, req, resp, asset=None):
        if req.method not in ("GET", "HEAD"):
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        resp.set_header("X-Content-Type-Options", "nosniff")
        if asset is None:
            resp.content_type, resp.data = "text/html; charset=utf-8", PAGE
        elif asset == "explorer.js":
            resp.content_type, resp.data = JAVASCRIPT, STARTER
        elif asset in BUNDLED:
            resp.content_type = BUNDLED[asset]
            resp.data = (self.bundle / asset).read_bytes()
        else:
            raise not_found()
