"""Measure what a direct upload moves through affix: a 256 MiB file prepared, POSTed to moto's S3
server as the form says, and completed, with affix under gunicorn on loopback.

    python -m tests.bench.direct_upload              # 256 MiB
    python -m tests.bench.direct_upload --size-mib 16

Two counting TCP relays stand in the way of the bytes: one between the client and affix (what
the affix worker receives for the prepare and complete requests), one between everybody and
moto (what the client sends to the store, and what affix exchanges with the store while it
completes the upload: it reads the object once for its md5 and content type; the copy to the
attachment's own key happens inside the store).
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

from affix.app.testing import multipart
from affix.storage.s3 import s3_client
from tests.bench.run import MiB, affix_server, say
from tests.support.net import HOST
from tests.support.relays import CountingRelay
from tests.support.s3 import running_moto_server, s3_environ, s3_options

BUCKET = "affix-bench"
PREFIX = "blobs"
TIMEOUT = 600


def measured(relay, action):
    """(action's result, bytes sent through ``relay``, bytes received, seconds)."""
    before = relay.counts()
    started = time.monotonic()
    result = action()
    seconds = time.monotonic() - started
    # the relay's threads count after forwarding: let the last chunk be counted
    time.sleep(0.2)
    after = relay.counts()
    return result, after[0] - before[0], after[1] - before[1], seconds


def written_file(path, size):
    """A file of ``size`` bytes at ``path`` (one random MiB over and over); its md5."""
    digest = hashlib.md5()
    block = os.urandom(MiB)
    with open(path, "wb") as file:
        for _ in range(size // MiB):
            file.write(block)
            digest.update(block)
        rest = block[: size % MiB]
        file.write(rest)
        digest.update(rest)
    return digest.hexdigest()


def run(args):
    size = args.size_mib * MiB
    root = Path(tempfile.mkdtemp(prefix="affix-bench-direct-", dir=args.tmpdir))
    try:
        with running_moto_server(root / "moto.log") as moto_url:
            s3_client(s3_options(moto_url)).create_bucket(Bucket=BUCKET)
            moto_port = int(moto_url.rsplit(":", 1)[1])
            store_relay = CountingRelay((HOST, moto_port))
            environ = {**s3_environ(f"http://{HOST}:{store_relay.port}"),
                       "AFFIX_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
                       "AFFIX_MAX_DIRECT_UPLOAD_SIZE": str(size)}
            with affix_server(root / "affix", 1, 4, 5 * MiB, extra_environ=environ) as server:
                affix_relay = CountingRelay((HOST, server.port))
                report(measure(server, affix_relay, store_relay, root / "file.bin", size), size)
                affix_relay.close()
            store_relay.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(server, affix_relay, store_relay, path, size):
    digest = written_file(path, size)
    base = f"http://{HOST}:{affix_relay.port}"
    body, content_type = multipart([("metadata", json.dumps(
        {"fileName": "talk.bin", "fileSize": size}).encode(), {})])
    upload, prepare_sent, _, prepare_seconds = measured(affix_relay, lambda: requests.post(
        base + "/api/v3/attachments/prepare", data=body, timeout=TIMEOUT,
        headers={**server.headers, "Content-Type": content_type}))
    assert upload.status_code == 201, upload.text
    link = upload.json()["_links"]["addAttachment"]

    def send():
        with open(path, "rb") as file:
            return requests.post(link["href"], data=list(link["form_fields"].items()),
                                 files={"file": ("talk.bin", file)}, timeout=TIMEOUT)

    stored, client_to_store, _, upload_seconds = measured(store_relay, send)
    assert stored.status_code == 201, stored.text

    def complete():
        return requests.get(base + upload.json()["_links"]["completeUpload"]["href"],
                            headers=server.headers, timeout=TIMEOUT)

    before_store = store_relay.counts()
    completed, complete_sent, _, complete_seconds = measured(affix_relay, complete)
    after_store = store_relay.counts()
    assert completed.status_code == 200, completed.text
    assert completed.json()["digest"]["hash"] == digest
    return {
        "prepare": prepare_sent, "complete": complete_sent,
        "upload to the store": client_to_store,
        "affix to store, completing": after_store[0] - before_store[0],
        "store to affix, completing": after_store[1] - before_store[1],
        "seconds": (prepare_seconds, upload_seconds, complete_seconds),
    }


def report(figures, size):
    received = figures["prepare"] + figures["complete"]
    say(f"file: {size} bytes ({size // MiB} MiB)")
    say(f"bytes the affix worker received from the client: prepare {figures['prepare']}, "
        f"complete {figures['complete']}, together {received} "
        f"({received / size:.6%} of the file)")
    say(f"bytes the client sent to the store: {figures['upload to the store']}")
    say(f"while completing, affix sent the store {figures['affix to store, completing']} bytes "
        f"(the copy is the store's own) and read {figures['store to affix, completing']} "
        "bytes from it (the one read for md5 and content type)")
    prepare, upload, complete = figures["seconds"]
    say(f"seconds: prepare {prepare:.3f}, upload to moto {upload:.1f}, complete {complete:.1f}")
    verdict = "met" if received < size // 1000 else "NOT met"
    say(f"no file bytes through affix's requests (under 0.1 % of the file): {verdict}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench.direct_upload",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--tmpdir", help="where the file and the servers' data go")
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
