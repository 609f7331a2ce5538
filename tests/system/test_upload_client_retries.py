"""``affix upload`` against a real server when a tus PATCH is not taken at once: 423 while
another request holds the upload (tried again after 2, 4, 8, 16 and 32 seconds, by a wait the
test is handed, so nothing sleeps), and 409 when the server has more bytes than the client
thought (asked with HEAD, and gone on from there)."""
import datetime
import io

import pytest
import requests

from affix.app.client.uploads import (
    LOCKED_WAITS, ResumeState, UploadError, Uploader, progress_bars,
)
from affix.storage.models import utc_now
from affix.storage.resumable import ResumableUploads
from support.content import md5, random_bytes
from support.net import REQUEST_TIMEOUT
from support.servers import HIGH_LIMIT, running_server
from support.tus import LOCKED, OFFSET_OCTET_STREAM, TUS, token_of

pytestmark = [pytest.mark.system, pytest.mark.one_database(
    "the client's behaviour: the server's storing is tested on both elsewhere")]

CHUNK = 100 * 1024
CONTENT = random_bytes(3 * CHUNK + 1234, seed=23)


@pytest.fixture
def server(tmp_path, databases):
    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server", databases, HIGH_LIMIT) as server:
        yield server


@pytest.fixture
def file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    return path


class HeldUpload:
    """Another request's lease on the upload the uploader creates, taken in the database as
    soon as the server answers the creation: the uploader's first PATCH finds it held."""

    def __init__(self, catalog):
        self.table = ResumableUploads(catalog)
        self.catalog = catalog
        self.url = None
        self.lease = None

    def on_response(self, response, *args, **kwargs):
        if response.request.method == "POST" and response.status_code == 201:
            self.url = response.url.rsplit("/tus", 1)[0] + "/tus/" + token_of(
                response.headers["Location"])
            with self.catalog.database.connection_context():
                upload = self.table.by_token(token_of(self.url))
                now = utc_now()
                self.lease = self.table.take_lease(upload, now, now + datetime.timedelta(days=1))
            assert self.lease is not None

    def release(self):
        with self.catalog.database.connection_context():
            self.table.release_lease(self.table.by_token(token_of(self.url)), self.lease)

    def row(self):
        with self.catalog.database.connection_context():
            upload = self.table.by_token(token_of(self.url))
            return upload.received, upload.attachment_id


def uploader(server, tmp_path, wait):
    return Uploader(server.url(""), server.api_key, ResumeState(tmp_path / "state.json"),
                    progress_bars(io.StringIO()), CHUNK, wait)


def test_a_locked_upload_is_tried_again_and_a_conflict_goes_on_from_the_server_s_offset(
        server, file, tmp_path):
    held = HeldUpload(server.stored.catalog)
    waits = []

    def wait(seconds):
        waits.append(seconds)
        # the request that held the upload ends, having stored the first chunk
        held.release()
        stored = requests.patch(held.url, data=CONTENT[:CHUNK], timeout=REQUEST_TIMEOUT,
                                headers={**server.auth, **TUS, "Upload-Offset": "0",
                                         "Content-Type": OFFSET_OCTET_STREAM})
        assert stored.status_code == 204, stored.text

    client = uploader(server, tmp_path, wait)
    client.session.hooks["response"].append(held.on_response)
    try:
        uploaded = client.upload(file)
    finally:
        client.close()
    # tried again once after the first wait; its 409 sent it to HEAD, and on from there
    assert waits == [LOCKED_WAITS[0]]
    assert uploaded.way == "tus"
    assert uploaded.attachment["digest"] == {"algorithm": "md5", "hash": md5(CONTENT)}
    assert uploaded.attachment["fileSize"] == len(CONTENT)
    assert held.row() == (len(CONTENT), uploaded.attachment["id"])
    downloaded = requests.get(server.url(f"/api/v3/attachments/{uploaded.attachment['id']}"
                                         "/content"), headers=server.auth,
                              timeout=REQUEST_TIMEOUT)
    assert downloaded.content == CONTENT


def test_an_upload_locked_for_longer_than_every_wait_fails_with_the_server_s_word(
        server, file, tmp_path):
    held = HeldUpload(server.stored.catalog)
    waits = []
    client = uploader(server, tmp_path, waits.append)
    client.session.hooks["response"].append(held.on_response)
    try:
        with pytest.raises(UploadError) as failed:
            client.upload(file)
    finally:
        client.close()
    assert waits == [2, 4, 8, 16, 32]
    assert str(failed.value) == LOCKED
    assert held.row() == (0, None)
    # the same command, run again once the other request is done, goes on with the upload
    held.release()
    again = uploader(server, tmp_path, waits.append)
    try:
        uploaded = again.upload(file)
    finally:
        again.close()
    assert waits == [2, 4, 8, 16, 32]
    assert uploaded.attachment["digest"]["hash"] == md5(CONTENT)
    assert held.row() == (len(CONTENT), uploaded.attachment["id"])
