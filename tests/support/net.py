"""Loopback networking, for the tests and the bench: the host every server binds, a free port."""
import socket

HOST = "127.0.0.1"
# how long a test waits for one answer of a server on loopback
REQUEST_TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
