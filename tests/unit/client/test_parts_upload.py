"""app.client.direct_parts.PartsUpload: a part that fails stops the parts sent beside it, each
after the block it is sending, its request abandoned."""
import socket
import threading
import types

import pytest

from affix.app.client.direct_parts import PartsUpload
from affix.app.client.uploads import SEND_BLOCK, Stopped, UploadError
from support.net import HOST
from support.waiting import wait_for

PART = 3 * SEND_BLOCK


class Bucket:
    """A loopback server taking one PUT per connection: it reads the body until it is whole or
    the client closes the connection, keeps how many bytes of it came, and answers ``status``
    to a whole body."""

    def __init__(self, status):
        self.status = status
        self.received = []
        self._listener = socket.create_server((HOST, 0))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self):
        return f"http://{HOST}:{self._listener.getsockname()[1]}/part"

    def _serve(self):
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += connection.recv(4096)
                head, _, body = head.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")))
                received = len(body)
                while received < length and (data := connection.recv(65536)):
                    received += len(data)
                self.received.append(received)
                if received == length:
                    connection.sendall(f"HTTP/1.1 {self.status} Refused\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())

    def close(self):
        self._listener.close()


@pytest.fixture
def bucket():
    bucket = Bucket(403)
    yield bucket
    bucket.close()


def test_after_a_failed_part_the_next_block_of_another_ends_its_part(tmp_path, bucket):
    path = tmp_path / "file.bin"
    path.write_bytes(bytes(2 * PART))
    upload = PartsUpload(None, path, 2 * PART)
    bar = types.SimpleNamespace(update=lambda count: None)

    with pytest.raises(UploadError, match="^the object store answered 403 Refused to part 1$"):
        upload._put({"partNumber": 1, "size": PART, "href": bucket.url}, PART, bar)
    with pytest.raises(Stopped):
        upload._put({"partNumber": 2, "size": PART, "href": bucket.url}, PART, bar)

    # the failed part whole; of the other, the one block sent before it heard of the failure
    wait_for(lambda: len(bucket.received) == 2, "the second connection closed")
    assert bucket.received == [PART, SEND_BLOCK]
