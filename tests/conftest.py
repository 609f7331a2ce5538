"""Fixtures shared by every test: a real app on a temporary data dir, users with keys, and
helpers to build multipart bodies and to snapshot what is stored."""
import base64
import datetime
import struct
import uuid
import zlib
from pathlib import Path

import falcon.testing
import pytest

from app import create_app, open_catalog
from app.auth import issue_api_key
from app.settings import Settings
from plugins.manager import create_plugin_manager

FROZEN_NOW = datetime.datetime(2014, 5, 21, 8, 51, 20)
SMALL_LIMIT = 64 * 1024


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


@pytest.fixture
def settings(tmp_path):
    return Settings.for_data_dir(tmp_path / "data", max_attachment_size=SMALL_LIMIT)


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


@pytest.fixture
def people(catalog):
    people = People(catalog)
    people.add("ada", name="Ada Admin", admin=True)
    people.add("bob", name="Bob Builder", permissions=["edit_work_packages"])
    people.add("eve", name="Eve Nopermission", permissions=["view_work_packages"])
    return people
