"""Measure a resumable (tus) upload of a large file through one real gunicorn worker: tuspy sends
a 2 GiB file in 8 MiB PATCHes, the connection drops in the middle of the PATCH at the file's
middle, and a new tuspy client resumes from the offset the server kept.

    python -m tests.bench.tus                       # 2 GiB in 8 MiB chunks
    python -m tests.bench.tus --size-mib 256

Prints the worker's RSS growth over the whole upload (peak minus idle, after a warm-up upload;
target under 32 MiB), the bytes the resumed client sent (counted on the wire by a relay;
target: less than half the file), the time each phase took, and checks the attachment's md5.
"""
import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

import requests
from tusclient import client as tus_client

from tests.bench.direct_upload import CountingRelay, written_file
from tests.bench.run import MiB, affix_server, memory_kib, reset_peak_rss, say
from tests.support.net import HOST
from tests.support.tus import TUS_PATH, attachment_of, cut_short_patch, offset_of

TIMEOUT = 600
RSS_TARGET_MIB = 32
POLL_INTERVAL = 0.05


def run(args):
    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB
    root = Path(tempfile.mkdtemp(prefix="affix-bench-tus-", dir=args.tmpdir))
    try:
        path = root / "file.bin"
        digest = written_file(path, size)
        with affix_server(root / "affix", 1, 4, 5 * MiB) as server:
            relay = CountingRelay((HOST, server.port))
            try:
                measure(server, relay, path, size, chunk, digest)
            finally:
                relay.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def uploader(base, headers, stream, chunk, **kwargs):
    tus = tus_client.TusClient(base + TUS_PATH, headers=headers)
    return tus.uploader(file_stream=stream, chunk_size=chunk, **kwargs)


def measure(server, relay, path, size, chunk, digest):
    base = f"http://{HOST}:{relay.port}"
    # a warm-up upload: what is measured is the big one, not the imports of the first
    uploader(base, server.headers, io.BytesIO(b"warm-up bytes"), chunk,
             metadata={"filename": "warm.bin"}).upload()
    (pid,) = server.worker_pids()
    reset = reset_peak_rss(pid)
    idle = memory_kib(pid, "VmRSS")

    stream = open(path, "rb")
    first = uploader(base, server.headers, stream, chunk, metadata={"filename": "talk.bin"})
    middle = (size // 2) // chunk * chunk
    started = time.monotonic()
    first.upload(stop_at=middle)
    first_seconds = time.monotonic() - started
    # the connection drops half-way through the next PATCH
    upload_path = first.url.removeprefix(base)
    with open(path, "rb") as file:
        file.seek(middle)
        cut_short_patch(relay.port, upload_path, server.headers, middle, file.read(chunk // 2),
                        declared=chunk)
    deadline = time.monotonic() + TIMEOUT
    while offset_of(first.url, server.headers) != middle + chunk // 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not keep the bytes of the PATCH cut short")
        time.sleep(POLL_INTERVAL)

    sent_before = relay.counts()[0]
    started = time.monotonic()
    resumed = uploader(base, server.headers, stream, chunk, url=first.url)
    resumed_from = resumed.offset
    resumed.upload()
    resumed_seconds = time.monotonic() - started
    time.sleep(0.2)
    resumed_sent = relay.counts()[0] - sent_before
    peak = memory_kib(pid, "VmHWM")
    stream.close()

    attachment_id = attachment_of(resumed.request.response_headers.get("link"))
    document = requests.get(f"{base}/api/v3/attachments/{attachment_id}",
                            headers=server.headers, timeout=TIMEOUT).json()
    assert document["digest"]["hash"] == digest, document
    assert document["fileSize"] == size

    growth = (peak - idle) / 1024
    say(f"tus upload of {size // MiB} MiB in {chunk // MiB} MiB PATCHes, one gunicorn worker "
        f"(pid {pid}), local store")
    say(f"  first client: {middle // MiB} MiB in {first_seconds:.1f} s "
        f"({middle / MiB / first_seconds:.0f} MiB/s)")
    say(f"  dropped PATCH: {chunk // 2 // MiB} of {chunk // MiB} MiB sent, kept by the server")
    say(f"  resumed from offset {resumed_from} ({resumed_from / size:.1%} of the file): "
        f"sent {resumed_sent} bytes on the wire ({resumed_sent / size:.1%} of the file; "
        f"target < 50%) in {resumed_seconds:.1f} s, the last PATCH finishing the attachment")
    say(f"  worker RSS: idle {idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, growth "
        f"{growth:.1f} MiB (target < {RSS_TARGET_MIB} MiB)"
        + ("" if reset else "; peak not reset: it includes the time before"))
    say(f"  attachment {attachment_id}: md5 {digest} matches")
    ok = growth < RSS_TARGET_MIB and resumed_sent < size / 2
    say("  PASS" if ok else "  FAIL")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--tmpdir", default=None, help="where the file and the store go")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
