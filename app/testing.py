"""pytest fixtures for testing affix plugins, shipped with affix.

pytest finds this module through affix's ``pytest11`` entry point as soon as affix is installed
next to it: a plugin package's tests ask for the fixtures by name, without importing anything.
affix itself never imports this module, so pytest is not a dependency of affix. Every fixture's
name starts with ``affix_``, so that none collides with a fixture of the host project.

- ``affix_plugins``: the plugin objects to register (modules or instances); empty unless the
  plugin's ``conftest.py`` overrides it, e.g. ``return [affix_meetings]``.
- ``affix_settings``: :class:`affix.Settings` on a data dir below ``tmp_path`` (an SQLite file
  and a blob folder).
- ``affix_plugin_manager``: affix's plugin manager with its built-in plugin and
  ``affix_plugins``; installed plugins' entry points are not loaded.
- ``affix_clock``: the app's clock, the real one unless overridden.
- ``affix_services``: the app's parts (:func:`affix.compose`) on those, built when first asked
  for; a test replaces one (a fake store, a scanner) by assigning it before the app is made.
- ``affix_app``, ``affix_client``: the WSGI app made of them, and a
  ``falcon.testing.TestClient``.
- ``affix_catalog``: a handle on the app's database (its tables, and any a plugin made).
- ``affix_users``: :class:`People`, to add users with permissions in a project and get the
  headers that authenticate them.
- ``affix_upload``: :func:`upload`, ``affix_upload(client, auth, file_name, content, path=...)``.

affix's own tests use :class:`People`, :func:`multipart` and :func:`upload_form` too.
"""
import base64
import json
import uuid

import falcon.testing
import pytest

from affix import Settings, compose, create_app, create_plugin_manager
from affix.app import open_catalog
from affix.app.accounts.auth import issue_api_key
from affix.storage.models import utc_now

UPLOAD_PATH = "/api/v3/attachments"


# --- helpers ---------------------------------------------------------------------------------

def basic_auth(key) -> str:
    """The ``Authorization`` header value of an API key."""
    return "Basic " + base64.b64encode(f"apikey:{key}".encode()).decode()


def multipart(parts, boundary=None):
    """(body, Content-Type) for ``parts``: (name, bytes, headers-dict) in the given order."""
    boundary = boundary or "affix-" + uuid.uuid4().hex
    body = b""
    for name, data, headers in parts:
        body += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if name == "file":
            disposition += '; filename="upload.bin"'
        lines = {"Content-Disposition": disposition, **headers}
        for key, value in lines.items():
            body += f"{key}: {value}\r\n".encode()
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload_form(file_name, content):
    """(body, Content-Type) of an upload of ``content`` named ``file_name``: the ``metadata``
    part, then the ``file`` part, as OpenProject's clients send them."""
    return multipart([
        ("metadata", json.dumps({"fileName": file_name}).encode(),
         {"Content-Type": "application/json"}),
        ("file", content, {"Content-Type": "application/octet-stream"}),
    ])


def upload(client, auth, file_name, content, path=UPLOAD_PATH, **options):
    """POST an upload of ``content`` named ``file_name`` to ``path`` (by default without a
    container) with the headers ``auth``; the response. ``options`` go to
    ``client.simulate_post`` (``extras=...``, for example)."""
    body, content_type = upload_form(file_name, content)
    return client.simulate_post(
        path, body=body, headers={**auth, "Content-Type": content_type}, **options)


class People:
    """Users made directly in affix's database, each with an API key.

    ``add(login, permissions=[...])`` makes a user with a role holding ``permissions`` in the
    project ``project`` (made if missing); ``auth(login)`` is the header that authenticates
    them. ``clock`` dates their keys."""

    def __init__(self, catalog, clock=utc_now):
        self.catalog = catalog
        self.clock = clock
        self.keys = {}

    def add(self, login, *, name=None, admin=False, locked=False, permissions=(),
            project="demo"):
        with self.catalog.database.connection_context(), self.catalog.database.atomic():
            user = self.catalog.User.create(
                login=login, name=name or login.title(), admin=admin, locked=locked
            )
            if permissions:
                project, _ = self.catalog.Project.get_or_create(
                    identifier=project, defaults={"name": project.title()}
                )
                role = self.catalog.Role.create(name=f"role-of-{login}")
                for permission in permissions:
                    self.catalog.RolePermission.create(role=role, permission=permission)
                self.catalog.Membership.create(user=user, project=project, role=role)
            self.keys[login] = issue_api_key(self.catalog, user, self.clock())
        return user

    def auth(self, login) -> dict:
        return {"Authorization": basic_auth(self.keys[login])}


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def affix_plugins():
    """The plugins ``affix_plugin_manager`` registers: override it to name yours."""
    return []


@pytest.fixture
def affix_settings(tmp_path):
    return Settings.for_data_dir(tmp_path / "affix")


def with_plugins(manager, plugins):
    """``manager`` with ``plugins`` registered, in this order."""
    for plugin in plugins:
        manager.register(plugin)
    return manager


@pytest.fixture
def affix_plugin_manager(affix_plugins):
    return with_plugins(create_plugin_manager(load_entry_points=False), affix_plugins)


@pytest.fixture
def affix_clock():
    """The app's clock: the real one, unless overridden (a clock the test sets)."""
    return utc_now


@pytest.fixture
def affix_services(affix_settings, affix_plugin_manager, affix_clock):
    """The app's parts (:func:`affix.compose`), each built when first asked for: a test may
    replace one, by assignment, before ``affix_app`` is made of them."""
    return compose(affix_settings, plugin_manager=affix_plugin_manager, clock=affix_clock)


@pytest.fixture
def affix_app(affix_services):
    return create_app(services=affix_services)


@pytest.fixture
def affix_client(affix_app):
    return falcon.testing.TestClient(affix_app)


@pytest.fixture
def affix_catalog(affix_settings, affix_app):
    # the app made the schema (and its plugins their tables): this is a second handle on it
    catalog = open_catalog(affix_settings)
    yield catalog
    catalog.database.close()


@pytest.fixture
def affix_users(affix_catalog):
    return People(affix_catalog)


@pytest.fixture
def affix_upload():
    return upload
