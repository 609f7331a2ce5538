"""The FastAPI peer that does affix's work for an upload, as lean as a FastAPI user would write it.

``POST /upload``:

- the API key in HTTP Basic (user ``apikey``) is looked up by its SHA-256 in SQLite (stdlib
  ``sqlite3``, WAL, ``synchronous=FULL``, one connection per thread), joined to its user and the
  user's may-upload flag: 401 for no key or an unknown one, 403 for a user who may not upload,
  with the HAL error documents affix answers;
- the form is parsed by python-multipart (``UploadFile``, spooled in ``TMPDIR``);
- the ``metadata`` part is parsed as JSON and its ``fileName`` read;
- libmagic (python-magic) names the MIME type of the file's first 4 KiB;
- the file is copied in 1 MiB reads into a new file of ``BENCH_PEER_DIR``, md5ed on the way, and
  fsynced;
- one row (name, size, md5, type, blob, author) is inserted and committed;
- the answer is a HAL document with the id, size, type, digest and links.

The endpoint is a plain ``def``: FastAPI runs it in its thread pool, as its documentation advises
for blocking work. ``GET /`` answers 200.

``prepare(folder, api_key)`` makes the database with the key's user; uvicorn then runs
``tests.bench.fastapi_full_peer:app`` with ``BENCH_PEER_DIR`` naming that folder (the database
is its file ``peer.sqlite3``).
"""
import hashlib
import json
import os
import secrets
import sqlite3
import threading
from base64 import b64decode
from typing import Annotated

import magic
from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import JSONResponse

READ_SIZE = 1024 * 1024
SNIFF_SIZE = 4 * 1024
DATABASE_FILE = "peer.sqlite3"
SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT NOT NULL, may_upload INTEGER NOT NULL);
CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users);
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY, file_name TEXT NOT NULL, file_size INTEGER NOT NULL,
    md5 TEXT NOT NULL, content_type TEXT NOT NULL, blob TEXT NOT NULL,
    author_id INTEGER NOT NULL REFERENCES users
);
"""
HAL_ERROR = "urn:openproject-org:api:v3:errors:"


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def connect(folder) -> sqlite3.Connection:
    connection = sqlite3.connect(os.path.join(folder, DATABASE_FILE), isolation_level=None,
                                 check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


def prepare(folder, api_key):
    """The peer's database in ``folder``, with one user who may upload and their key."""
    connection = connect(folder)
    try:
        connection.executescript(SCHEMA)
        connection.execute("INSERT INTO users (id, login, may_upload) VALUES (1, 'bench', 1)")
        connection.execute("INSERT INTO api_keys VALUES (?, 1)", (key_hash(api_key),))
    finally:
        connection.close()


app = FastAPI()
# one connection per thread of FastAPI's pool
connections = threading.local()


def database() -> sqlite3.Connection:
    if not hasattr(connections, "connection"):
        connections.connection = connect(os.environ["BENCH_PEER_DIR"])
    return connections.connection


def hal_error(status, identifier, message):
    return JSONResponse({"_type": "Error", "errorIdentifier": HAL_ERROR + identifier,
                         "message": message}, status_code=status,
                        media_type="application/hal+json")


def presented_key(authorization: str | None) -> str | None:
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        user, _, key = b64decode(authorization[6:]).decode().partition(":")
    except ValueError:
        return None
    return key if user == "apikey" and key else None


class Refused(Exception):
    def __init__(self, response):
        self.response = response


@app.exception_handler(Refused)
def refused(request, error):
    return error.response


def author_of(request: Request) -> int:
    """The id of the user whose key the request presents, if they may upload."""
    key = presented_key(request.headers.get("authorization"))
    row = None if key is None else database().execute(
        "SELECT users.id, users.may_upload FROM api_keys JOIN users ON users.id = "
        "api_keys.user_id WHERE api_keys.key_hash = ?", (key_hash(key),)).fetchone()
    if row is None:
        raise Refused(hal_error(401, "Unauthenticated",
                                "You did not provide the correct credentials."))
    if not row[1]:
        raise Refused(hal_error(403, "MissingPermission",
                                "You are not authorized to access this resource."))
    return row[0]


@app.get("/")
def ready():
    return {"ready": True}


@app.post("/upload")
def upload(request: Request, metadata: Annotated[str, Form()], file: UploadFile):
    author = author_of(request)
    try:
        file_name = json.loads(metadata)["fileName"]
    except (ValueError, KeyError, TypeError):
        return hal_error(400, "InvalidRequestBody", "The metadata is not valid.")
    source = file.file
    content_type = magic.from_buffer(source.read(SNIFF_SIZE), mime=True)
    source.seek(0)
    blob = "upload-" + secrets.token_hex(16)
    md5 = hashlib.md5()
    with open(os.path.join(os.environ["BENCH_PEER_DIR"], blob), "xb") as target:
        while chunk := source.read(READ_SIZE):
            md5.update(chunk)
            target.write(chunk)
        target.flush()
        os.fsync(target.fileno())
        size = target.tell()
    digest = md5.hexdigest()
    connection = database()
    with connection:
        connection.execute("BEGIN")
        attachment_id = connection.execute(
            "INSERT INTO attachments (file_name, file_size, md5, content_type, blob, author_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (file_name, size, digest, content_type, blob, author)).lastrowid
    self_link = f"/api/v3/attachments/{attachment_id}"
    return JSONResponse({
        "_type": "Attachment", "id": attachment_id, "fileName": file_name, "fileSize": size,
        "contentType": content_type, "digest": {"algorithm": "md5", "hash": digest},
        "_links": {"self": {"href": self_link},
                   "downloadLocation": {"href": self_link + "/content"},
                   "author": {"href": f"/api/v3/users/{author}"}},
    }, media_type="application/hal+json")
