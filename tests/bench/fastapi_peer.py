"""The FastAPI peer for the benchmark: an upload endpoint as FastAPI's tutorial on request files
writes it, and nothing else (no key, no database).

``POST /upload`` takes the form fields ``metadata`` (text) and ``file`` (an ``UploadFile``, which
python-multipart parses and spools into a temporary file), copies the file into a new file in
``BENCH_PEER_DIR``, fsyncs it (as the baseline and affix do: the figures on disk compare durable
uploads) and answers its size. The endpoint is a plain ``def``: FastAPI runs it in its thread pool,
as its documentation advises for blocking file work. ``GET /`` answers 200.

Run as FastAPI's deployment documentation runs several processes:
``uvicorn tests.bench.fastapi_peer:app --workers 2`` (what ``fastapi run --workers 2`` starts).
"""
import os
import secrets
import shutil
from typing import Annotated

from fastapi import FastAPI, Form, UploadFile

COPY_CHUNK_SIZE = 1024 * 1024

app = FastAPI()


@app.get("/")
def ready():
    return {"ready": True}


@app.post("/upload")
def upload(metadata: Annotated[str, Form()], file: UploadFile):
    path = os.path.join(os.environ["BENCH_PEER_DIR"], "upload-" + secrets.token_hex(16))
    with open(path, "xb") as target:
        shutil.copyfileobj(file.file, target, COPY_CHUNK_SIZE)
        target.flush()
        os.fsync(target.fileno())
        size = target.tell()
    return {"size": size}
