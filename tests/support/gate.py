"""A TCP proxy on loopback that lets a client's bytes through up to a point and then holds them,
so that a test catches an upload in the middle without waiting for time to pass: it interrupts
the client once the proxy holds, or cuts the connection as a dropped Wi-Fi would. It counts
what it forwarded, so a test sees how much a resumed upload sent again."""
import contextlib
import socket
import threading

from .net import HOST

BLOCK = 64 * 1024
HOLD_TIMEOUT = 30


class Gate:
    """Forwards from ``HOST:port`` to ``upstream_port``. Once ``hold_after`` bytes from clients
    went upstream it forwards no more of them (the answers still flow) until :meth:`release`,
    and ``holding`` is set."""

    def __init__(self, upstream_port, hold_after=None):
        self.upstream_port = upstream_port
        self.hold_after = hold_after
        self.forwarded = 0
        self.holding = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._sockets = []
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def release(self, hold_after=None):
        """Drop the connections of the clients held so far (they are gone by now) and let
        the next ones through (up to ``hold_after`` bytes), counting afresh."""
        self.cut()
        with self._lock:
            self.forwarded = 0
            self.hold_after = hold_after
            self.holding.clear()
            released, self._released = self._released, threading.Event()
        released.set()

    def cut(self):
        """Drop every connection, as a network that went away; new ones are made as before."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for each in sockets:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()

    def close(self):
        self._listener.close()
        self.cut()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pass(self, connection, size) -> int:
        """How much of ``size`` bytes from ``connection`` may go upstream now; waits while the
        gate holds."""
        while True:
            with self._lock:
                if connection not in self._sockets:
                    raise OSError("the connection was dropped")
                if self.hold_after is None:
                    self.forwarded += size
                    return size
                allowed = min(size, self.hold_after - self.forwarded)
                if allowed > 0:
                    self.forwarded += allowed
                    return allowed
                self.holding.set()
                released = self._released
            if not released.wait(HOLD_TIMEOUT):
                raise TimeoutError("the gate was never released")

    def _pump(self, source, target, from_client):
        try:
            while data := source.recv(BLOCK):
                while data:
                    allowed = self._pass(source, len(data)) if from_client else len(data)
                    target.sendall(data[:allowed])
                    data = data[allowed:]
        except (OSError, TimeoutError):
            pass
        finally:
            for each in (source, target):
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
