"""app.http.socket_body: a body of known length read from gunicorn's socket gives the bytes
gunicorn's reader would, in the same order, and leaves gunicorn's count and buffer of the body
as its own reads would have; any other body is the server's own stream."""
import io
import socket
import ssl
import threading

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import SocketUnreader

from affix.app.http.socket_body import SocketBody, request_body
from support.net import HOST
from support.nginx import CERTIFICATE, PRIVATE_KEY, write_self_signed_certificate

BODY = b"first line\nsecond line\n" + bytes(range(256)) * 40 + b"\nlast"
# what gunicorn read ahead with the headers: the body's start, and the next request's
READ_AHEAD = 100
NEXT_REQUEST = b"GET /next HTTP/1.1\r\n\r\n"


@pytest.fixture
def connection():
    """(gunicorn's body of a request whose first READ_AHEAD bytes gunicorn holds already, the
    client's end of the socket, which has sent the rest and the next request)."""
    server, client = socket.socketpair()
    unreader = SocketUnreader(server)
    unreader.unread(BODY[:READ_AHEAD])
    client.sendall(BODY[READ_AHEAD:] + NEXT_REQUEST)
    yield Body(LengthReader(unreader, len(BODY))), server
    server.close()
    client.close()


def environ_of(body, sock):
    return {"wsgi.input": body, "gunicorn.socket": sock}


def left_to_gunicorn(body):
    """What gunicorn itself would read next: the rest of the body, then the next request."""
    rest = body.read()
    return rest, body.reader.unreader.read(len(NEXT_REQUEST))


def test_a_body_of_known_length_under_gunicorn_is_read_from_the_socket(connection):
    body, sock = connection

    assert isinstance(request_body(environ_of(body, sock)), SocketBody)


def test_read_gives_the_body_in_order_and_never_past_its_end(connection):
    body, sock = connection
    stream = request_body(environ_of(body, sock))

    pieces = [stream.read(10), stream.read(1000), stream.read(100_000), stream.read(5)]

    assert b"".join(pieces) == BODY
    assert [len(piece) for piece in pieces] == [10, 1000, len(BODY) - 1010, 0]
    assert left_to_gunicorn(body) == (b"", NEXT_REQUEST)


@pytest.mark.parametrize("size", [-1, None])
def test_read_of_everything_gives_the_whole_body(connection, size):
    body, sock = connection

    assert request_body(environ_of(body, sock)).read(size) == BODY
    assert left_to_gunicorn(body) == (b"", NEXT_REQUEST)


@pytest.mark.parametrize("taken", [5, READ_AHEAD, 3000])
def test_a_body_left_half_read_is_left_to_gunicorn_whole(connection, taken):
    """An upload refused half-way: gunicorn drains the rest, and reads the next request."""
    body, sock = connection

    assert request_body(environ_of(body, sock)).read(taken) == BODY[:taken]
    assert left_to_gunicorn(body) == (BODY[taken:], NEXT_REQUEST)


def test_lines_are_read_across_gunicorns_buffer_and_the_socket(connection):
    body, sock = connection
    stream = request_body(environ_of(body, sock))

    assert stream.readline() == b"first line\n"
    assert stream.readline(3) == b"sec"
    assert stream.readline() == b"ond line\n"
    *lines, last = BODY[len(b"first line\nsecond line\n"):].split(b"\n")
    assert list(stream) == [line + b"\n" for line in lines] + [last]
    assert left_to_gunicorn(body) == (b"", NEXT_REQUEST)


def test_readlines_stops_at_the_hint(connection):
    body, sock = connection
    stream = request_body(environ_of(body, sock))

    assert stream.readlines(5) == [b"first line\n"]
    assert stream.read(12) == b"second line\n"
    assert left_to_gunicorn(body) == (BODY[23:], NEXT_REQUEST)


def test_a_client_that_stops_sending_ends_the_body_early():
    server, client = socket.socketpair()
    with server, client:
        client.sendall(BODY[:500])
        client.shutdown(socket.SHUT_WR)
        body = Body(LengthReader(SocketUnreader(server), len(BODY)))
        stream = request_body(environ_of(body, server))

        assert (stream.read(1000), stream.read(1000)) == (BODY[:500], b"")


def test_a_chunked_body_is_gunicorns_own_stream():
    server, client = socket.socketpair()
    with server, client:
        request = type("Request", (), {"limit_request_field_size": 0,
                                       "max_buffer_headers": 0})()
        body = Body(ChunkedReader(request, SocketUnreader(server)))

        assert request_body(environ_of(body, server)) is body


def test_a_body_gunicorn_began_to_read_is_gunicorns_own_stream(connection):
    body, sock = connection
    body.readline()  # gunicorn's body holds what it read past the line

    assert request_body(environ_of(body, sock)) is body


def test_another_servers_body_is_its_own_stream():
    stream = io.BytesIO(BODY)

    assert request_body({"wsgi.input": stream}) is stream


def test_a_read_that_fails_marks_the_body_failed_so_gunicorn_closes_the_connection(connection):
    body, sock = connection
    stream = request_body(environ_of(body, sock))
    assert stream.read(READ_AHEAD) == BODY[:READ_AHEAD]
    sock.close()  # the socket's read now fails (EBADF)

    with pytest.raises(OSError):
        stream.read(10)
    assert body.failed is True


def test_a_line_longer_than_a_step_of_the_search_is_read_whole():
    long_line = b"x" * 20_000 + b"\n"
    server, client = socket.socketpair()
    with server, client:
        client.sendall(long_line + b"end" + NEXT_REQUEST)
        body = Body(LengthReader(SocketUnreader(server), len(long_line) + 3))
        stream = request_body(environ_of(body, server))

        assert (stream.readline(), stream.readline()) == (long_line, b"end")
        assert left_to_gunicorn(body) == (b"", NEXT_REQUEST)


def tls_pair(folder):
    """(server's end, client's end) of a connection over TLS, as gunicorn's ``--certfile``
    wraps it."""
    write_self_signed_certificate(folder)
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(folder / CERTIFICATE, folder / PRIVATE_KEY)
    trusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trusting.load_verify_locations(folder / CERTIFICATE)
    server, client = socket.socketpair()
    wrapped = {}
    # the handshake needs both ends at once
    handshake = threading.Thread(target=lambda: wrapped.setdefault(
        "client", trusting.wrap_socket(client, server_hostname=HOST)))
    handshake.start()
    wrapped["server"] = serving.wrap_socket(server, server_side=True)
    handshake.join()
    return wrapped["server"], wrapped["client"]


def test_a_body_over_tls_is_read_whole(tmp_path):
    server, client = tls_pair(tmp_path)
    try:
        client.sendall(BODY + NEXT_REQUEST)
        body = Body(LengthReader(SocketUnreader(server), len(BODY)))
        stream = request_body(environ_of(body, server))

        assert [stream.read(1000), stream.read()] == [BODY[:1000], BODY[1000:]]
        assert left_to_gunicorn(body) == (b"", NEXT_REQUEST)
    finally:
        server.close()
        client.close()
