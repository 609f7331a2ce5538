"""serve's look at the addresses it is to listen on, before it makes anything: gunicorn finds an
address taken only after the database and the first admin's key were made, and then retries
for five seconds in ten lines of log, so the key scrolls by for a server that never started."""
import errno
import socket

from affix.app.cli.checks import CheckFailed

OTHER_ADDRESS = "choose another address with --bind"
ADDRESS_TAKEN = f"stop what listens there, or {OTHER_ADDRESS}"


def check_address_free(bind: str) -> None:
    """Raise :class:`CheckFailed` when nothing could listen on ``bind`` (HOST:PORT or
    [IPv6]:PORT, as ``--bind`` gives it; a unix: socket is gunicorn's to make)."""
    if bind.startswith("unix:"):
        return
    host, _, port = bind.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        [(family, kind, protocol, _, address), *_] = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise CheckFailed("bind", f"cannot listen on {bind}: {error.strerror}") from None
    with socket.socket(family, kind, protocol) as probe:
        # as gunicorn binds: a port whose last connections are still closing is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            advice = ADDRESS_TAKEN if error.errno == errno.EADDRINUSE else OTHER_ADDRESS
            raise CheckFailed(
                "bind", f"cannot listen on {bind}: {error.strerror}: {advice}") from None
