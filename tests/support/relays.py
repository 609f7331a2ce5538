"""TCP relays on loopback, between a client and a server: :class:`CountingRelay` counts the
bytes each way (for the bench), :class:`Gate` lets a client's bytes through up to a point and
then holds them, so that a test catches an upload in the middle without waiting for time to
pass (it interrupts the client once the gate holds, or cuts the connection as a dropped Wi-Fi
would) and sees how much a resumed upload sent again."""
import contextlib
import socket
import threading

from .net import HOST

BLOCK = 256 * 1024
HOLD_TIMEOUT = 30


class Relay:
    """Forwards every connection to ``HOST:port`` (a free port) on to ``target`` (host,
    port)."""

    def __init__(self, target):
        self.target = target
        self._lock = threading.Lock()
        self._sockets = []
        # the first line each client sent on its connection (a request line), in order
        self.request_lines = []
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source, destination, from_client):
        first = from_client
        try:
            while data := source.recv(BLOCK):
                if first:
                    with self._lock:
                        self.request_lines.append(data.partition(b"\r\n")[0].decode("latin-1"))
                    first = False
                self._forward(source, destination, data, from_client)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                destination.shutdown(socket.SHUT_WR)

    def _forward(self, source, destination, data, from_client):
        destination.sendall(data)

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


class CountingRelay(Relay):
    """Counts the bytes each way: ``sent`` towards the target, ``received`` back."""

    def __init__(self, target):
        self.sent = 0
        self.received = 0
        super().__init__(target)

    def _forward(self, source, destination, data, from_client):
        destination.sendall(data)
        with self._lock:
            if from_client:
                self.sent += len(data)
            else:
                self.received += len(data)

    def counts(self) -> tuple:
        with self._lock:
            return self.sent, self.received


class Gate(Relay):
    """To the server on ``HOST:upstream_port``. Once ``hold_after`` bytes from clients went
    upstream it forwards no more of them (the answers still flow) until :meth:`release`, and
    ``holding`` is set. ``forwarded`` counts the clients' bytes."""

    def __init__(self, upstream_port, hold_after=None):
        self.hold_after = hold_after
        self.forwarded = 0
        self.holding = threading.Event()
        self._released = threading.Event()
        super().__init__((HOST, upstream_port))

    def release(self, hold_after=None, cut=True):
        """Drop the connections of the clients held so far (they are gone by now; or, without
        ``cut``, let them go on) and let the next bytes through (up to ``hold_after``),
        counting afresh."""
        if cut:
            self.cut()
        with self._lock:
            self.forwarded = 0
            self.hold_after = hold_after
            self.holding.clear()
            released, self._released = self._released, threading.Event()
        released.set()

    def _forward(self, source, destination, data, from_client):
        while data:
            allowed = self._pass(source, len(data)) if from_client else len(data)
            destination.sendall(data[:allowed])
            data = data[allowed:]

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
                raise OSError("the gate was never released")


class CorruptingRelay(Relay):
    """Flips the lowest bit of the clients' byte number ``at`` (counted over every
    connection): a network that damages what it carries, unseen by TCP."""

    def __init__(self, upstream_port, at):
        self.at = at
        self._counted = 0
        super().__init__((HOST, upstream_port))

    def _forward(self, source, destination, data, from_client):
        if from_client:
            with self._lock:
                start, self._counted = self._counted, self._counted + len(data)
            if start <= self.at < start + len(data):
                index = self.at - start
                data = data[:index] + bytes([data[index] ^ 1]) + data[index + 1:]
        destination.sendall(data)
