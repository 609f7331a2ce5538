"""Cross-origin requests (CORS): which browser pages on other origins may call affix.

Our own middleware rather than ``falcon.CORSMiddleware``: Falcon's sets no ``Vary: Origin``,
answers a preflight with whatever headers the browser asks for, lets the preflight run into
authentication (which refuses it: a preflight never carries a key), and gives a preflight from
an origin it does not allow an ordinary 200.

Credentials mode is never allowed (no ``Access-Control-Allow-Credentials``): a page sends its
API key in ``Authorization`` itself, which needs no credentials mode; cookies, a Basic login the
browser remembered or a client certificate would let any allowed page act as whoever is signed
in. That is also why ``*`` is safe as an allowlist: every page must bring a key of its own.
"""
import falcon

from affix.app.http.errors import ApiError
from affix.app.settings import ANY_ORIGIN

# every method of affix's API: a method a route lacks gets its 405 (a HAL error the page can
# read) on the actual request instead of an opaque preflight failure
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE")
ALLOWED_REQUEST_HEADERS = (
    "Authorization", "Content-Type", "X-Requested-With",
    # conditional and partial downloads
    "If-None-Match", "If-Modified-Since", "If-Range", "Range",
    # resumable uploads (tus)
    "Tus-Resumable", "Upload-Length", "Upload-Offset", "Upload-Metadata", "Upload-Checksum",
    "Upload-Concat", "Upload-Defer-Length",
    # a POST that stands for a tus PATCH, HEAD or DELETE
    "X-HTTP-Method-Override",
    # a client's own request id, which the logs and the answer carry (see request_facts)
    "X-Request-Id",
)
EXPOSED_RESPONSE_HEADERS = (
    "Content-Disposition", "Content-Range", "Accept-Ranges", "Location", "ETag",
    "Last-Modified",
    # the request id affix gives every answer, for a report that names the request
    "X-Request-Id",
    # the resumable-upload (tus) protocol's response headers, in one place for when tus is
    # served; a header a response does not carry costs nothing in this list
    "Upload-Offset", "Upload-Length", "Upload-Expires", "Tus-Resumable", "Tus-Version",
    "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm", "Link", "Upload-Concat",
    "Upload-Defer-Length",
)
# how long a browser may reuse a preflight's answer: Chromium caps it at two hours anyway, and
# dropping an origin takes effect at once regardless (each actual answer is checked again)
PREFLIGHT_MAX_AGE = 7200


def _origin_not_allowed():
    return ApiError(falcon.HTTP_403, "MissingPermission",
                    "Cross-origin requests from this origin are not allowed.")


class CrossOrigin:
    """Falcon middleware for the origins allowed by ``AFFIX_CORS_ORIGINS``.

    A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) to a route is
    answered here, before authentication and the database: 204 with the methods, request
    headers and max age for an allowed origin; 403 without any CORS header for any other, which
    the browser reports as a failed preflight. Every other answer to an allowed origin names it
    (``*`` for the wildcard) and exposes the headers a client reads, errors included (a page
    reads the HAL error); an answer to any other origin carries no CORS header at all.
    """

    def __init__(self, origins):
        self.any_origin = tuple(origins) == (ANY_ORIGIN,)
        self.origins = frozenset(origins)

    def _allowed(self, origin):
        return origin is not None and (self.any_origin or origin in self.origins)

    def process_resource(self, req, resp, resource, params):
        origin = req.get_header("Origin")
        if req.method != "OPTIONS" or origin is None \
                or req.get_header("Access-Control-Request-Method") is None:
            return
        if not self._allowed(origin):
            raise _origin_not_allowed()
        resp.status = falcon.HTTP_204
        resp.set_header("Access-Control-Allow-Methods", ", ".join(ALLOWED_METHODS))
        resp.set_header("Access-Control-Allow-Headers", ", ".join(ALLOWED_REQUEST_HEADERS))
        resp.set_header("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE))
        resp.complete = True

    def process_response(self, req, resp, resource, req_succeeded):
        if self.origins:
            # answers differ by origin (even "*" is answered only to a request with an Origin):
            # a shared cache must not hand one origin's answer to another
            resp.append_header("Vary", "Origin")
        origin = req.get_header("Origin")
        if not self._allowed(origin):
            return
        resp.set_header("Access-Control-Allow-Origin", ANY_ORIGIN if self.any_origin else origin)
        resp.set_header("Access-Control-Expose-Headers", ", ".join(EXPOSED_RESPONSE_HEADERS))
