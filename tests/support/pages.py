"""Web pages served from an origin of their own: a static file server on another loopback port,
so that a browser's requests from the page to affix are cross-origin. The pages are the files
in ``support/pages/``."""
import contextlib
import functools
import http.server
import threading
from pathlib import Path

from .net import HOST

PAGES = Path(__file__).with_name("pages")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serving_pages():
    """The origin (``http://127.0.0.1:<port>``) that serves ``support/pages/`` until the block
    ends."""
    handler = functools.partial(_QuietHandler, directory=str(PAGES))
    with http.server.ThreadingHTTPServer((HOST, 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{HOST}:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()
