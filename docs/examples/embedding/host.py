"""A host site that mounts affix at /files and tells it who is logged in.

Run with:  gunicorn --worker-class gthread --threads 8 host:application
"""
import os
from pathlib import Path

from affix import Settings, create_app, create_plugin_manager, hookimpl


class HostSessions:
    """Tells affix who is logged in to the host site."""

    def __init__(self, sessions):
        self.sessions = sessions          # the host's own session store: cookie -> login

    @hookimpl
    def affix_authenticate(self, request):
        return self.sessions.get(request.cookies.get("session"))


def host_site(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the host's own pages"]


def mount(prefix, mounted, fallback):
    """Send PATH_INFO under ``prefix`` to ``mounted``, with the prefix moved to SCRIPT_NAME."""
    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == prefix or path.startswith(prefix + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix):]
            return mounted(environ, start_response)
        return fallback(environ, start_response)
    return dispatch


sessions = {"secret-cookie": "ada"}       # stands in for the host's real session store
plugins = create_plugin_manager()
plugins.register(HostSessions(sessions), name="host-sessions")
data_dir = Path(os.environ.get("HOST_AFFIX_DATA_DIR", "/srv/host/affix"))
affix = create_app(Settings.for_data_dir(data_dir), plugin_manager=plugins)
application = mount("/files", affix, host_site)
