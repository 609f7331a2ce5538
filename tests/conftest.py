"""Fixtures shared by every test: a real app on a temporary data dir, users with keys, and
helpers to build multipart bodies and to snapshot what is stored."""
import base64
import contextlib
import datetime
import os
import re
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

import falcon.testing
import pytest

from affix.app import create_app, open_catalog
from affix.app.auth import issue_api_key
from affix.app.settings import Settings
from affix.plugins.manager import create_plugin_manager
from postgres import SERVER_URL_VARIABLE, PostgresServer

FROZEN_NOW = datetime.datetime(2014, 5, 21, 8, 51, 20)
SMALL_LIMIT = 64 * 1024
# what every blob store names a blob: its fan-out folder, then a random token starting with it
STORAGE_KEY = re.compile(r"([0-9a-f]{2})/\1[0-9a-f]{30}")
# every test that stores anything runs once on each
DATABASE_KINDS = ("sqlite", "postgresql")


def pytest_xdist_auto_num_workers(config):
    """Two test processes per core: most tests spend much of their time waiting for a server,
    a subprocess or a disk, and two per core keep the cores busy meanwhile."""
    return 2 * (os.cpu_count() or 1)


def pytest_configure(config):
    for kind in DATABASE_KINDS:
        config.addinivalue_line(
            "markers", f"{kind}_only(reason): checks what only {kind} has; not run on the other")


def pytest_collection_modifyitems(config, items):
    """A test marked for one database is not collected for the other at all: there is nothing
    it could check there, so it is neither run nor reported as skipped."""
    kept, dropped = [], []
    for item in items:
        kind = getattr(item, "callspec", None) and item.callspec.params.get("databases")
        only = [each for each in DATABASE_KINDS if item.get_closest_marker(f"{each}_only")]
        (dropped if kind and only and kind not in only else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def png_bytes(width=1, height=1) -> bytes:
    """A real, minimal PNG that libmagic recognises as image/png."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\0" + b"\xff\0\0" * width for _ in range(height)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


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


def upload_body(metadata=b'{"fileName": "cat.png"}', file=b"hello", file_first=False):
    metadata_part = ("metadata", metadata, {"Content-Type": "application/json"})
    file_part = ("file", file, {"Content-Type": "application/octet-stream"})
    parts = [file_part, metadata_part] if file_first else [metadata_part, file_part]
    return multipart(parts)


def hal_error(identifier, message, attribute=None) -> dict:
    """The exact HAL body of an error."""
    body = {"_type": "Error",
            "errorIdentifier": "urn:openproject-org:api:v3:errors:" + identifier,
            "message": message}
    if attribute is not None:
        body["_embedded"] = {"details": {"attribute": attribute}}
    return body


def basic_auth(key) -> str:
    return "Basic " + base64.b64encode(f"apikey:{key}".encode()).decode()


class Stored:
    """What affix holds on disk: attachment rows and every file under the blob folder."""

    def __init__(self, catalog, blob_root: Path):
        self.catalog = catalog
        self.blob_root = blob_root

    def rows(self):
        with self.catalog.database.connection_context():
            return [
                (a.id, a.file_name, a.file_size, a.md5, a.storage_key)
                for a in self.catalog.Attachment.select().order_by(self.catalog.Attachment.id)
            ]

    def files(self):
        """Every file below the blob root, staging included, with its bytes."""
        return {
            path.relative_to(self.blob_root).as_posix(): path.read_bytes()
            for path in sorted(self.blob_root.rglob("*")) if path.is_file()
        }

    def snapshot(self):
        return self.rows(), self.files()


class Databases:
    """The database of every data dir of one test: the embedded default (an SQLite file in the
    data dir), or a new PostgreSQL database of its own. Every affix a test makes, in process,
    through the CLI or as a server, takes its settings or its environment from here, so that
    the choice is made in one place."""

    def __init__(self, kind, postgres_server):
        self.kind = kind
        self.postgres_server = postgres_server
        self.urls = {}

    def url(self, data_dir) -> str | None:
        """The database URL for ``data_dir``; None for the embedded default."""
        if self.kind == "sqlite":
            return None
        data_dir = Path(data_dir).absolute()
        if data_dir not in self.urls:
            self.urls[data_dir] = self.postgres_server.create_database()
        return self.urls[data_dir]

    def settings(self, data_dir, **overrides) -> Settings:
        url = self.url(data_dir)
        if url is not None:
            overrides.setdefault("database_url", url)
        return Settings.for_data_dir(data_dir, **overrides)

    def environ(self, data_dir, **variables) -> dict:
        """``AFFIX_*`` variables for a command or a server on ``data_dir``."""
        environ = {"AFFIX_DATA_DIR": str(data_dir), **variables}
        url = self.url(data_dir)
        if url is not None:
            environ.setdefault("AFFIX_DATABASE_URL", url)
        return environ

    def drop(self):
        for url in self.urls.values():
            self.postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer.from_environ()
    yield server
    if server is not None:
        server.close()


@pytest.fixture(params=DATABASE_KINDS)
def databases(request, postgres_server):
    if request.param == "postgresql" and postgres_server is None:
        pytest.skip(f"no PostgreSQL server to test with: set {SERVER_URL_VARIABLE}")
    databases = Databases(request.param, postgres_server)
    yield databases
    databases.drop()


@pytest.fixture
def settings(tmp_path, databases):
    return databases.settings(tmp_path / "data", max_attachment_size=SMALL_LIMIT)


@pytest.fixture
def plugin_manager():
    return create_plugin_manager(load_entry_points=False)


@pytest.fixture
def app(settings, plugin_manager):
    return create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW)


@pytest.fixture
def client(app):
    return falcon.testing.TestClient(app)


@pytest.fixture
def catalog(settings, app):
    # the app created the schema; this is a second, independent handle on the same database
    catalog = open_catalog(settings)
    yield catalog
    catalog.database.close()


@pytest.fixture
def stored(catalog, settings):
    return Stored(catalog, Path(settings.storage_url))


@contextlib.contextmanager
def small_disk(path: Path, size: int):
    """A real filesystem of ``size`` bytes at ``path`` (a tmpfs, which only root may mount),
    for tests of what a full disk does."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


class People:
    """Users made directly in the database, each with an API key."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.keys = {}

    def add(self, login, *, name=None, admin=False, locked=False, permissions=()):
        with self.catalog.database.connection_context():
            user = self.catalog.User.create(
                login=login, name=name or login.title(), admin=admin, locked=locked
            )
            if permissions:
                project, _ = self.catalog.Project.get_or_create(
                    identifier="demo", defaults={"name": "Demo"}
                )
                role = self.catalog.Role.create(name=f"role-of-{login}")
                for permission in permissions:
                    self.catalog.RolePermission.create(role=role, permission=permission)
                self.catalog.Membership.create(user=user, project=project, role=role)
            self.keys[login] = issue_api_key(self.catalog, user, FROZEN_NOW)
        return user

    def auth(self, login):
        return {"Authorization": basic_auth(self.keys[login])}


def make_people(catalog) -> People:
    """Ada the admin, Bob who may upload, and Eve who may only look."""
    people = People(catalog)
    people.add("ada", name="Ada Admin", admin=True)
    people.add("bob", name="Bob Builder", permissions=["edit_work_packages"])
    people.add("eve", name="Eve Nopermission", permissions=["view_work_packages"])
    return people


@pytest.fixture
def people(catalog):
    return make_people(catalog)
