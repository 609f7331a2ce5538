"""The Falcon peer for the benchmark: an upload resource on Falcon's own multipart parser, as
Falcon's guide to multipart forms writes it, and nothing else (no key, no database).

``POST /upload`` reads the form with ``req.get_media()``, keeps the ``metadata`` part's text,
pipes the ``file`` part's stream into a new file in ``BENCH_PEER_DIR``, fsyncs it (as the baseline
and affix do: the figures on disk compare durable uploads) and answers its size. ``GET /``
answers 200.

Run by gunicorn with the settings ``affix serve`` gives it:
``gunicorn --worker-class gthread --workers 2 --threads 8 tests.bench.falcon_peer:app``.
"""
import os
import secrets

import falcon


class Ready:
    def on_get(self, req, resp):
        resp.media = {"ready": True}


class Upload:
    def on_post(self, req, resp):
        size = None
        for part in req.get_media():
            if part.name == "metadata":
                part.get_text()
            elif part.name == "file":
                path = os.path.join(os.environ["BENCH_PEER_DIR"], "upload-" + secrets.token_hex(16))
                with open(path, "xb") as target:
                    part.stream.pipe(target)
                    target.flush()
                    os.fsync(target.fileno())
                    size = target.tell()
        if size is None:
            raise falcon.HTTPBadRequest(title="no file part")
        resp.media = {"size": size}


app = falcon.App()
app.add_route("/", Ready())
app.add_route("/upload", Upload())
