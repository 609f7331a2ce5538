"""A webhook receiver: a real threaded HTTP server on loopback that records every POST, and
answers as the test tells it (204, 503, not at all until released, a byte at a time, or no
connection)."""
import dataclasses
import http
import http.server
import threading

from .net import HOST
from .waiting import wait_for

# how long a held request waits to be released before it gives up
HOLD_TIMEOUT = 30


@dataclasses.dataclass
class Delivery:
    path: str
    headers: dict
    body: bytes
    # what the receiver answered; None while it holds the request or drips its answer, and
    # for good when the sender hung up before the whole answer was sent
    status: int | None = None
    # the sender closed the connection while the answer was being dripped
    cut: bool = False


class WebhookReceiver:
    """``deliveries`` lists every request received, in order, also those answered with an
    error. ``status`` is the answer; ``hold(after=n)`` makes the requests after the n-th wait,
    received and unanswered, until ``release()``; ``drip(interval)`` sends each answer a byte
    every ``interval`` seconds. ``stop()`` closes the port (connections are refused) and
    ``start()`` opens it again, on the same port."""

    def __init__(self):
        self.deliveries = []
        self.status = 204
        self._released = threading.Event()
        self._released.set()
        self._hold_after = 0
        self._drip_interval = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._server = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hooks/affix"

    def start(self):
        receiver = self
        self._stopped.clear()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                delivery = Delivery(self.path, dict(self.headers), body)
                with receiver._lock:
                    receiver.deliveries.append(delivery)
                    held = len(receiver.deliveries) > receiver._hold_after
                if held:
                    receiver._released.wait(HOLD_TIMEOUT)
                status, interval = receiver.status, receiver._drip_interval
                if interval is not None:
                    self.drip(delivery, status, interval)
                    return
                delivery.status = status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def drip(self, delivery, status, interval):
                """A whole, valid answer, each byte sent on its own ``interval`` after the
                one before, until the receiver stops."""
                self.close_connection = True
                answer = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
                          "Content-Length: 0\r\nConnection: close\r\n\r\n").encode()
                try:
                    for offset in range(len(answer)):
                        if offset and receiver._stopped.wait(interval):
                            return
                        self.wfile.write(answer[offset:offset + 1])
                except (BrokenPipeError, ConnectionResetError):
                    delivery.cut = True
                    return
                delivery.status = status

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # a held request's worker was killed: its answer has nowhere to go
                pass

        self._server = Server((HOST, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def hold(self, after=0):
        self._hold_after = after
        self._released.clear()

    def release(self):
        self._released.set()

    def drip(self, interval):
        """Send each answer a byte every ``interval`` seconds from now on; None: at once."""
        self._drip_interval = interval

    def wait_for_deliveries(self, count):
        wait_for(lambda: len(self.deliveries) >= count, f"{count} webhook deliveries")

    def answered(self, status):
        """The deliveries answered with ``status``, in order."""
        return [delivery for delivery in self.deliveries if delivery.status == status]
