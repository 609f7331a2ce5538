"""app.client.direct_parts.PartsUpload: a part that fails stops the parts sent beside it, each
after the block it is sending, its request abandoned; and the failure raised is that part's."""
import contextlib
import http.server
import json
import socket
import threading
import types
import urllib.parse

import pytest
import requests

from affix.app.client.direct_parts import PartsUpload
from affix.app.client.uploads import SEND_BLOCK, Stopped, UploadError
from support.net import HOST
from support.waiting import CONDITION_TIMEOUT, wait_for

# more than the sending socket's buffer takes: a part whose body is not read is held mid-way
PART = 8 * SEND_BLOCK
# the bucket's receive buffer, so that what waits unread is the client's
RECEIVE_BUFFER = 64 * 1024
REFUSED = b"HTTP/1.1 403 Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
STORED = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Bucket:
    """A loopback server taking one PUT of ``/part/N`` per connection. It reads the body until
    it is whole or the client closes the connection, and keeps how many bytes of it came, by
    part. It answers 403 to the parts in ``refused``, 200 to the others; the bodies of the
    parts in ``held`` wait to be read until ``release`` (an event) is set."""

    def __init__(self, refused=(), held=()):
        self.refused, self.held = set(refused), set(held)
        self.release = threading.Event()
        self.received = {}
        self._changes = threading.Condition()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._listener.bind((HOST, 0))
        self._listener.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, number):
        return f"http://{HOST}:{self._listener.getsockname()[1]}/part/{number}"

    def wait_for_parts(self, numbers):
        with self._changes:
            return self._changes.wait_for(lambda: set(numbers) <= set(self.received),
                                          CONDITION_TIMEOUT)

    def _accept(self):
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._take, args=(connection,), daemon=True).start()

    def _take(self, connection):
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                head += connection.recv(4096)
            head, _, body = head.partition(b"\r\n\r\n")
            number = int(head.split(b" ")[1].rsplit(b"/", 1)[1])
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            if number in self.held:
                self.release.wait(CONDITION_TIMEOUT)
            received = len(body)
            while received < length and (data := connection.recv(65536)):
                received += len(data)
            if received == length:
                connection.sendall(REFUSED if number in self.refused else STORED)
            with self._changes:
                self.received[number] = received
                self._changes.notify_all()

    def close(self):
        self._listener.close()


@contextlib.contextmanager
def affix_signing(bucket, slow_from=None, waiting_for=()):
    """A loopback affix that answers for part URLs of ``bucket``; the URLs of parts from
    ``slow_from`` on only once the bucket took the parts ``waiting_for``."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            numbers = [int(number) for number in query["partNumbers"][0].split(",")]
            if slow_from is not None and numbers[0] >= slow_from:
                bucket.wait_for_parts(waiting_for)
            body = json.dumps({"parts": [{"partNumber": number, "size": PART,
                                          "href": bucket.url(number)} for number in numbers]})
            self.send_response(200)
            self.send_header("Content-Type", "application/hal+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def no_bar(*args):
    yield types.SimpleNamespace(update=lambda count: None)


def sparse_file(path, size):
    with open(path, "wb") as file:
        file.truncate(size)
    return path


def test_after_a_failed_part_the_next_block_of_another_ends_its_part(tmp_path):
    bucket = Bucket(refused={1})
    path = sparse_file(tmp_path / "file.bin", 2 * PART)
    upload = PartsUpload(None, path, 2 * PART)
    try:
        with pytest.raises(UploadError, match="^the object store answered 403 Refused to part 1$"):
            upload._put({"partNumber": 1, "size": PART, "href": bucket.url(1)}, PART,
                        no_bar().__enter__())
        with pytest.raises(Stopped):
            upload._put({"partNumber": 2, "size": PART, "href": bucket.url(2)}, PART,
                        no_bar().__enter__())
        wait_for(lambda: len(bucket.received) == 2, "the second connection closed")
    finally:
        bucket.close()
    # the failed part whole; of the other, the one block sent before it heard of the failure
    assert bucket.received == {1: PART, 2: SEND_BLOCK}


def test_a_part_failing_while_more_urls_are_asked_for_is_the_failure_raised(tmp_path):
    # four at a time: parts 13 to 15 held in the middle, 16 refused, while the client asks
    # for the URLs of 17 on, which come once 13 to 15 ended
    parts = 20
    bucket = Bucket(refused={16}, held={13, 14, 15})
    path = sparse_file(tmp_path / "file.bin", parts * PART)
    try:
        with affix_signing(bucket, slow_from=17, waiting_for={13, 14, 15}) as root:
            uploader = types.SimpleNamespace(session=requests.Session(), progress=no_bar,
                                             root=root)
            upload = PartsUpload(uploader, path, parts * PART, parallel=4)
            # the held parts go on once the refused one told them to stop: their next block
            # ends them, however much of them the sockets' buffers took meanwhile
            bucket.release = upload.stopping
            with pytest.raises(UploadError) as raised:
                upload.send({
                    "partCount": parts, "partSize": PART, "parts": [], "_links": {
                        "partUrls": {"href": "/api/v3/urls{?partNumbers}"},
                        "completeUpload": {"href": "/api/v3/complete"}}})
    finally:
        bucket.close()
    assert str(raised.value) == "the object store answered 403 Refused to part 16"
    # 1 to 12 whole, 16 whole and refused, 13 to 15 cut short, none after 16 begun
    assert sorted(bucket.received) == list(range(1, 17))
    assert [bucket.received[number] for number in range(1, 13)] == [PART] * 12
    assert bucket.received[16] == PART
    assert all(SEND_BLOCK <= bucket.received[number] < PART for number in (13, 14, 15))
