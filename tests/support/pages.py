"""Web pages served from an origin of their own: a static file server on another loopback port,
so that a browser's requests from the page to affix are cross-origin. The pages are the files
in ``support/pages/``; scripts installed by npm (in ``tests/js/node_modules``) are served under
``/vendor/`` by the name a test gives them."""
import contextlib
import functools
import http.server
import threading
from collections.abc import Mapping
from pathlib import Path

from .net import HOST

PAGES = Path(__file__).with_name("pages")


# what npm installs for the system tests (tests/js/package.json)
NODE_MODULES = Path(__file__).parent.parent / "js" / "node_modules"
VENDOR = "/vendor/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    # {name under /vendor/: the file}
    vendored: Mapping[str, Path] = {}

    def translate_path(self, path):
        name = path.split("?", 1)[0].removeprefix(VENDOR)
        if path.startswith(VENDOR) and name in self.vendored:
            return str(self.vendored[name])
        return super().translate_path(path)

    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serving_pages(vendored: Mapping[str, Path] | None = None):
    """The origin (``http://127.0.0.1:<port>``) that serves ``support/pages/``, and each file
    of ``vendored`` at ``/vendor/<its name>``, until the block ends."""
    handler_class = type("PagesHandler", (_QuietHandler,), {"vendored": dict(vendored or {})})
    handler = functools.partial(handler_class, directory=str(PAGES))
    with http.server.ThreadingHTTPServer((HOST, 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{HOST}:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()
