"""A request body of known length read from gunicorn's socket itself, not through its reader.

gunicorn's body reader keeps what it receives in ``BytesIO`` buffers on two levels (the body's
and its socket's), and each read copies the bytes in, out and through slices: each byte of a
large upload is copied five or six times, under the GIL, on the thread that also parses the
upload (``python -m tests.bench.body_reads`` measures it). Read from the socket, each byte is
copied once out of the kernel.

gunicorn's own objects stay the truth about the body: what it read ahead with the headers is
taken from its buffer first, whatever is read back is returned to that buffer, and its count of
the bytes still to come is kept up to date at every read. So whatever this leaves unread
(an upload refused half-way) gunicorn drains or discards as it does any body, and the next
request on the connection is read as before. Under another server, or for a chunked body,
the body is the server's own stream.
"""
import socket
import ssl

from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

# the most one recv() asks for: gunicorn's own bound for a body's reads
MAX_RECV = SocketUnreader.max_body_chunk
# how much a line is looked for in at a time
LINE_STEP = 8192


def request_body(environ: dict):
    """The body of the request in ``environ``: read from the socket under gunicorn when its
    length is known and nothing of it was read yet; otherwise ``wsgi.input``."""
    stream = environ["wsgi.input"]
    sock = environ.get("gunicorn.socket")
    if sock is None or type(stream) is not Body or stream.buf.tell():
        return stream
    reader = stream.reader
    if type(reader) is not LengthReader or type(reader.unreader) is not SocketUnreader:
        return stream
    return SocketBody(stream, sock)


class SocketBody:
    """The file-like body of one request (``read``, ``readline``, ``readlines``, iteration),
    its bytes taken from the buffer of ``body``'s reader (gunicorn's ``Body`` and
    ``LengthReader``), then from ``sock``. ``read(size)`` returns ``size`` bytes unless the
    body ends (or the client stops sending) first, as ``wsgi.input`` does."""

    def __init__(self, body: Body, sock) -> None:
        self._body = body
        self._reader = body.reader
        self._unreader = body.reader.unreader
        self._sock = sock
        # a whole read in one recv, where the socket takes the flag: a TLS socket takes none
        self._wait_all = 0 if isinstance(sock, ssl.SSLSocket) else socket.MSG_WAITALL

    def _take(self, size: int, whole: bool = False) -> bytes:
        """Up to ``size`` bytes of what is left of the body, b"" at its end or when the client
        stopped sending: fewer when the socket has fewer now, unless ``whole``, when one
        ``recv`` waits for them all (``MSG_WAITALL``, on a plain socket) instead of the caller
        joining a ``recv`` of each segment that arrived (half the reading thread's CPU per
        MiB)."""
        size = min(size, self._reader.length)
        if size <= 0:
            return b""
        data = self._unreader.take_buffered()
        if data:
            data = self._give_back(data, size)
        else:
            try:
                data = self._sock.recv(min(size, MAX_RECV), self._wait_all if whole else 0)
            except BaseException:
                # as gunicorn's own reader does: where the next request would start is
                # unknown now, so gunicorn closes the connection instead of reading on
                self._body.failed = True
                raise
        self._reader.length -= len(data)
        return data

    def _give_back(self, data: bytes, keep: int) -> bytes:
        """The first ``keep`` bytes of ``data``; the rest back in gunicorn's buffer."""
        if len(data) > keep:
            self._unreader.unread(data[keep:])
            return data[:keep]
        return data

    def read(self, size: int | None = -1) -> bytes:
        wanted = self._reader.length if size is None or size < 0 else size
        pieces = []
        got = 0
        while got < wanted and (piece := self._take(wanted - got, whole=True)):
            pieces.append(piece)
            got += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def readline(self, size: int | None = -1) -> bytes:
        limit = self._reader.length if size is None or size < 0 else size
        pieces = []
        got = 0
        while got < limit and (piece := self._take(min(LINE_STEP, limit - got))):
            end = piece.find(b"\n")
            if end >= 0:
                self._reader.length += len(piece) - end - 1
                pieces.append(self._give_back(piece, end + 1))
                break
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return iter(self.readline, b"")
