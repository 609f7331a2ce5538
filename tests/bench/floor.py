"""The floor for the small-upload scenario: the least a durable upload costs on affix's stack.

affix is built on Falcon, streaming-form-data and peewee over SQLite, and answers an upload only
once it is durable. This app uses the same libraries the same way and does only what every such
upload needs, so that the benchmark can tell what the stack costs from what affix adds to it
(permissions, plugins, content sniffing, the HAL document, the writers' queue).

``POST /upload``: the API key (HTTP Basic, user ``apikey``) is looked up by its SHA-256 with
peewee; streaming-form-data parses the ``metadata`` and ``file`` parts, the file part md5ed into
a new file in a staging folder; the metadata's ``fileName`` is read; the file is fsynced, renamed
into the blob folder and the folder fsynced; one row is inserted and committed (SQLite in WAL
mode, ``synchronous=FULL``); the answer is a small JSON document. ``GET /`` answers 200. The
key and the folder's fsync go through affix's own functions: they cost the same here.

``prepare(folder, api_key)`` makes the folders, the database and the key's row; then gunicorn
runs ``'tests.bench.floor:app_from_environ()'`` with ``BENCH_FLOOR_DIR`` naming that folder.
tests/bench/stack.py times the pieces of an upload through the same functions.
"""
import hashlib
import json
import os
import secrets

import falcon
import peewee
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import BaseTarget, ValueTarget

from affix.app.accounts.auth import hash_api_key, presented_key
from affix.storage.local import fsync_directory

READ_CHUNK_SIZE = 1024 * 1024
PRAGMAS = {"journal_mode": "wal", "synchronous": "full", "busy_timeout": 10_000}
DATABASE_FILE = "floor.sqlite3"
STAGING_DIR = ".staging"


class FloorCatalog:
    """The floor's two tables in its folder, and the two statements an upload makes of them."""

    def __init__(self, folder):
        self.database = db = peewee.SqliteDatabase(os.path.join(folder, DATABASE_FILE),
                                                   pragmas=PRAGMAS)

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

        self.Key, self.Upload = Key, Upload

    def create(self, api_key):
        """The tables, and the row of the one key the floor accepts."""
        with self.database:
            self.database.create_tables([self.Key, self.Upload])
            self.Key.create(key_hash=hash_api_key(api_key))

    def knows(self, key_hash) -> bool:
        return self.Key.get_or_none(self.Key.key_hash == key_hash) is not None

    def record(self, **fields):
        """One upload's row, committed."""
        with self.database.atomic():
            return self.Upload.create(**fields)


def parse_body(content_type, chunks, metadata, file):
    """Feed the multipart body's ``chunks`` to streaming-form-data, its two parts to the
    targets ``metadata`` and ``file``."""
    parser = StreamingFormDataParser(headers={"Content-Type": content_type})
    parser.register("metadata", metadata)
    parser.register("file", file)
    for chunk in chunks:
        parser.data_received(chunk)


class StagedFile(BaseTarget):
    """The file part, md5ed into a new file of the staging folder."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder
        self.path = os.path.join(folder, STAGING_DIR, secrets.token_hex(16))
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
        fsync_directory(self.folder)
        return key

    def discard(self):
        self.file.close()
        os.unlink(self.path)


class UploadResource:
    def __init__(self, folder, catalog):
        self.folder = folder
        self.catalog = catalog

    def on_post(self, req, resp):
        key = presented_key(req.get_header("Authorization"))
        if key is None or not self.catalog.knows(hash_api_key(key)):
            raise falcon.HTTPUnauthorized()
        metadata = ValueTarget()
        staged = StagedFile(self.folder)
        try:
            chunks = iter(lambda: req.bounded_stream.read(READ_CHUNK_SIZE), b"")
            parse_body(req.content_type, chunks, metadata, staged)
            file_name = json.loads(metadata.value)["fileName"]
        except BaseException:
            staged.discard()
            raise
        storage_key = staged.commit()
        row = self.catalog.record(file_name=file_name, file_size=staged.size,
                                  md5=staged.md5.hexdigest(), storage_key=storage_key)
        resp.media = {"id": row.id, "fileName": file_name, "fileSize": staged.size,
                      "digest": {"algorithm": "md5", "hash": row.md5}}


class ReadyResource:
    def on_get(self, req, resp):
        resp.media = {"ready": True}


def prepare(folder, api_key):
    """A new floor folder: its staging folder, its database and the key's row."""
    os.makedirs(os.path.join(folder, STAGING_DIR))
    FloorCatalog(folder).create(api_key)


def create_app(folder):
    app = falcon.App()
    app.add_route("/", ReadyResource())
    app.add_route("/upload", UploadResource(folder, FloorCatalog(folder)))
    return app


def app_from_environ():
    """gunicorn's factory: the app of the folder ``BENCH_FLOOR_DIR`` names."""
    return create_app(os.environ["BENCH_FLOOR_DIR"])
