"""A real tus client (tuspy, from PyPI) against a real ``affix serve``: it uploads part of a
file, the connection drops in the middle of a PATCH, a new client resumes from the offset the
server kept, and the attachment's bytes match the digest; on the local store and on S3
(moto). (Two nodes: tests/system/test_nodes.py.)"""
import contextlib
import io

import pytest
import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from support.content import KiB, MiB, md5, random_bytes
from support.net import REQUEST_TIMEOUT
from support.s3 import s3_environ
from support.servers import HIGH_LIMIT, running_server
from support.tus import TUS_PATH, attachment_of, cut_short_patch, offset_of
from support.waiting import wait_for

pytestmark = pytest.mark.system

PREFIX = "blobs"


def upload_interrupted_and_resumed(server, content, chunk_size, cut_at):
    """Upload ``content`` with tuspy up to ``cut_at``, drop a PATCH a third of a chunk in,
    resume with a new client; the attachment's id and what the server had kept."""
    tus = tus_client.TusClient(server.url(TUS_PATH), headers=server.auth)
    first = tus.uploader(file_stream=io.BytesIO(content), chunk_size=chunk_size,
                         metadata={"filename": "video.bin", "description": "Resumed"},
                         upload_checksum=True)
    first.upload(stop_at=cut_at)
    assert first.offset == cut_at
    path = first.url.removeprefix(server.url(""))
    sent = chunk_size // 3
    cut_short_patch(server.port, path, server.auth, cut_at, content[cut_at:cut_at + sent],
                    declared=chunk_size)
    # the server keeps what arrived of the dropped PATCH
    wait_for(lambda: offset_of(first.url, server.auth) == cut_at + sent,
             "the server to keep the bytes of the PATCH cut short")

    resumed = tus.uploader(file_stream=io.BytesIO(content), chunk_size=chunk_size,
                           url=first.url, upload_checksum=True)
    assert resumed.offset == cut_at + sent
    resumed.upload()
    return attachment_of(resumed.request.response_headers.get("link"))


def assert_served(server, attachment_id, content):
    document = requests.get(server.url(f"/api/v3/attachments/{attachment_id}"),
                            headers=server.auth, timeout=REQUEST_TIMEOUT).json()
    assert (document["fileName"], document["fileSize"]) == ("video.bin", len(content))
    assert document["digest"] == {"algorithm": "md5", "hash": md5(content)}
    assert document["description"]["raw"] == "Resumed"
    downloaded = requests.get(server.url(f"/api/v3/attachments/{attachment_id}/download"),
                              headers=server.auth, timeout=REQUEST_TIMEOUT)
    assert downloaded.status_code == 200
    assert md5(downloaded.content) == md5(content)


def test_tuspy_resumes_an_interrupted_upload_on_the_local_store(server):
    content = random_bytes(5 * MiB + 123, seed=3)
    attachment_id = upload_interrupted_and_resumed(server, content, 512 * KiB, 2 * MiB)
    assert_served(server, attachment_id, content)
    files = server.stored.files()
    assert [path for path in files if path.startswith(".tus/")] == []
    assert [data for path, data in files.items() if md5(data) == md5(content)]


def test_tuspy_resumes_an_interrupted_upload_on_s3(tmp_path, databases, s3_bucket):
    content = random_bytes(21 * MiB + 7, seed=4)
    environ = {**s3_environ(s3_bucket.endpoint_url), "AFFIX_STORAGE_URL": s3_bucket.url(PREFIX)}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(running_server(tmp_path, databases, HIGH_LIMIT, environ))
        attachment_id = upload_interrupted_and_resumed(server, content, 8 * MiB, 8 * MiB)
        assert_served(server, attachment_id, content)
    objects = s3_bucket.objects()
    assert [key for key in objects if key.startswith(f"{PREFIX}/.tus/")] == []
    assert [md5(data) for data in objects.values()] == [md5(content)]
    assert s3_bucket.pending_uploads() == []


def test_a_tus_limit_above_every_upload_s_is_lowered_and_serve_says_so(tmp_path, databases):
    environ = {"AFFIX_TUS_MAX_SIZE": str(10 * 1024 ** 3)}
    with running_server(tmp_path, databases, HIGH_LIMIT, environ) as server:
        discovered = requests.options(server.url(TUS_PATH), timeout=REQUEST_TIMEOUT)
        assert discovered.headers["Tus-Max-Size"] == str(HIGH_LIMIT)
        tus = tus_client.TusClient(server.url(TUS_PATH), headers=server.auth)
        uploader = tus.uploader(file_stream=io.BytesIO(b"x" * (HIGH_LIMIT + 1)),
                                chunk_size=MiB, metadata={"filename": "big.bin"})
        with pytest.raises(TusCommunicationError) as refused:
            uploader.upload()
        assert refused.value.status_code == 413
        assert server.stored.rows() == []
    assert (f"affix: AFFIX_TUS_MAX_SIZE=10737418240 is above AFFIX_MAX_ATTACHMENT_SIZE, the "
            f"largest file accepted: resumable (tus) uploads take at most {HIGH_LIMIT} bytes\n"
            ) in (tmp_path / "server.stdout").read_text()
