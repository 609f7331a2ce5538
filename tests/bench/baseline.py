"""The baseline for the benchmark: the least a WSGI app can do with an upload and a download.

``POST /upload`` reads the body in 1 MiB chunks, md5s it, writes it to a new file in
``BENCH_BASELINE_DIR``, fsyncs it and answers 200 with a small JSON document (the body is treated
as plain bytes, multipart or not). ``GET /files/<name>`` serves a file of that folder through
``wsgi.file_wrapper``, which gunicorn turns into sendfile().

Run by gunicorn with the same settings as ``affix serve``:
``gunicorn --worker-class gthread --workers 2 --threads 8 tests.bench.baseline:app``.
"""
import hashlib
import json
import os
import secrets

READ_CHUNK_SIZE = 1024 * 1024
FILE_BLOCK_SIZE = 1024 * 1024


def _answer(start_response, status, document):
    body = json.dumps(document).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _upload(environ, start_response, folder):
    stream = environ["wsgi.input"]
    md5 = hashlib.md5()
    size = 0
    path = os.path.join(folder, "upload-" + secrets.token_hex(16))
    with open(path, "xb") as target:
        while True:
            chunk = stream.read(READ_CHUNK_SIZE)
            if not chunk:
                break
            size += len(chunk)
            md5.update(chunk)
            target.write(chunk)
        target.flush()
        os.fsync(target.fileno())
    return _answer(start_response, "200 OK", {"size": size, "md5": md5.hexdigest()})


def _download(environ, start_response, folder, name):
    if not name or "/" in name or name.startswith("."):
        return _answer(start_response, "404 Not Found", {"error": "not found"})
    try:
        blob = open(os.path.join(folder, name), "rb")
    except FileNotFoundError:
        return _answer(start_response, "404 Not Found", {"error": "not found"})
    size = os.fstat(blob.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](blob, FILE_BLOCK_SIZE)


def app(environ, start_response):
    folder = os.environ["BENCH_BASELINE_DIR"]
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    if method == "POST" and path == "/upload":
        return _upload(environ, start_response, folder)
    if method == "GET" and path.startswith("/files/"):
        return _download(environ, start_response, folder, path[len("/files/"):])
    if method == "GET" and path == "/":
        return _answer(start_response, "200 OK", {"ready": True})
    return _answer(start_response, "404 Not Found", {"error": "not found"})
