"""The floor for the small-upload scenario: the least a durable upload costs on affix's stack.

affix is built on Falcon, streaming-form-data and peewee over SQLite, and answers an upload only
once it is durable. This app uses the same libraries the same way and does only what every such
upload needs, so that the benchmark can tell what the stack costs from what affix adds to it
(permissions, plugins, content sniffing, the HAL document, the writers' queue).

``POST /upload``: the API key (HTTP Basic, user ``apikey``) is looked up by its SHA-256 with
peewee; streaming-form-data parses the ``metadata`` and ``file`` parts, the file part md5ed into
a new file in a staging folder; the metadata's ``fileName`` is read; the file is fsynced, renamed
into the blob folder and the folder fsynced; one row is inserted and committed (SQLite in WAL
mode, ``synchronous=FULL``); the answer is a small JSON document. ``GET /`` answers 200.

``prepare(folder, api_key)`` makes the folders, the database and the key's row; then gunicorn
runs ``'tests.bench.floor:app_from_environ()'`` with ``BENCH_FLOOR_DIR`` naming that folder.
"""
import hashlib
import json
import os
import secrets
from base64 import b64decode

import falcon
import peewee
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import BaseTarget, ValueTarget

READ_CHUNK_SIZE = 1024 * 1024
PRAGMAS = {"journal_mode": "wal", "synchronous": "full", "busy_timeout": 10_000}
DATABASE_FILE = "floor.sqlite3"


def open_database(folder) -> peewee.SqliteDatabase:
    return peewee.SqliteDatabase(os.path.join(folder, DATABASE_FILE), pragmas=PRAGMAS)


def models(db):
    class Key(peewee.Model):
        key_hash = peewee.CharField(unique=True)

        class Meta:
            database = db

    class Upload(peewee.Model):
        file_name = peewee.TextField()
        file_size = peewee.IntegerField()
        md5 = peewee.CharField()
        storage_key = peewee.CharField()

        class Meta:
            database = db

    return Key, Upload


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def prepare(folder, api_key):
    os.makedirs(os.path.join(folder, ".staging"))
    db = open_database(folder)
    Key, Upload = models(db)
    with db:
        db.create_tables([Key, Upload])
        Key.create(key_hash=_key_hash(api_key))


def _fsync_directory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedFile(BaseTarget):
    """The file part, md5ed into a new file of the staging folder."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder
        self.path = os.path.join(folder, ".staging", secrets.token_hex(16))
        self.file = open(self.path, "xb")
        self.md5 = hashlib.md5()
        self.size = 0

    def on_data_received(self, chunk):
        self.md5.update(chunk)
        self.size += len(chunk)
        self.file.write(chunk)

    def commit(self) -> str:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        key = secrets.token_hex(16)
        os.rename(self.path, os.path.join(self.folder, key))
        _fsync_directory(self.folder)
        return key

    def discard(self):
        self.file.close()
        os.unlink(self.path)


class UploadResource:
    def __init__(self, folder, db):
        self.folder = folder
        self.db = db
        self.Key, self.Upload = models(db)

    def _authenticate(self, req):
        scheme, _, credentials = (req.get_header("Authorization") or "").partition(" ")
        user, _, key = b64decode(credentials).decode().partition(":")
        if scheme != "Basic" or user != "apikey" or self.Key.get_or_none(
                self.Key.key_hash == _key_hash(key)) is None:
            raise falcon.HTTPUnauthorized()

    def on_post(self, req, resp):
        self._authenticate(req)
        metadata = ValueTarget()
        staged = StagedFile(self.folder)
        try:
            parser = StreamingFormDataParser(headers={"Content-Type": req.content_type})
            parser.register("metadata", metadata)
            parser.register("file", staged)
            while chunk := req.bounded_stream.read(READ_CHUNK_SIZE):
                parser.data_received(chunk)
            file_name = json.loads(metadata.value)["fileName"]
        except BaseException:
            staged.discard()
            raise
        storage_key = staged.commit()
        with self.db.atomic():
            row = self.Upload.create(file_name=file_name, file_size=staged.size,
                                     md5=staged.md5.hexdigest(), storage_key=storage_key)
        resp.media = {"id": row.id, "fileName": file_name, "fileSize": staged.size,
                      "digest": {"algorithm": "md5", "hash": row.md5}}


class ReadyResource:
    def on_get(self, req, resp):
        resp.media = {"ready": True}


def create_app(folder):
    app = falcon.App()
    app.add_route("/", ReadyResource())
    app.add_route("/upload", UploadResource(folder, open_database(folder)))
    return app


def app_from_environ():
    """gunicorn's factory: the app of the folder ``BENCH_FLOOR_DIR`` names."""
    return create_app(os.environ["BENCH_FLOOR_DIR"])
