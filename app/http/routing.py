"""Paths as OpenProject's router reads them: repeated slashes are one, and a trailing slash is
dropped, before routing (``/api/v3/work_packages//6`` is ``/api/v3/work_packages/6``, and
``/api/v3/work_packages/`` is ``/api/v3/work_packages``); some clients build such URLs."""
import re

import falcon

from affix.app.errors import not_found

_REPEATED_SLASHES = re.compile(r"//+")


def normalised_path(path: str) -> str:
    path = _REPEATED_SLASHES.sub("/", path)
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


class PathNormaliser:
    """Falcon middleware, first of all: routes the request by its normalised path. Only the path
    below the app's mount point (``PATH_INFO``) changes; ``SCRIPT_NAME``, and with it every href
    affix writes, stays as the server passed it."""

    def process_request(self, req, resp):
        path = normalised_path(req.path)
        if path != req.path:
            req.path = path


class ShadowedIds:
    """Falcon middleware: a resource at a fixed segment where an id could stand
    (``/api/v3/work_packages/form`` beside ``/api/v3/work_packages/{id}``) answers a method it
    does not serve as a path whose id is no number is answered, 404, not 405: for
    every other method, ``form`` is just not a work package's id."""

    def process_resource(self, req, resp, resource, params):
        if (getattr(resource, "shadows_an_id", False) and req.method != "OPTIONS"
                and not hasattr(resource, f"on_{req.method.lower()}")):
            raise not_found()


class App(falcon.App):
    """Falcon's app, where every resource that answers GET answers HEAD alike: RFC 9110 (9.1)
    expects HEAD of every GET resource, and CORS preflights advertise it. Falcon itself drops
    the body of a HEAD's answer and keeps its headers (a Content-Length of the body it would
    have sent among them). A resource that streams its body opens nothing for a HEAD, so it
    has an ``on_head`` of its own (or serves both from one method that asks)."""

    def add_route(self, uri_template, resource, **kwargs):
        if hasattr(resource, "on_get") and not hasattr(resource, "on_head"):
            resource.on_head = resource.on_get
        super().add_route(uri_template, resource, **kwargs)
