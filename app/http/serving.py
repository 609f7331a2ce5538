"""The gunicorn worker affix is served by: gthread, whose own error answers are HAL too.

gunicorn answers some requests itself, before any app sees them (a request line or headers it
cannot read, a chunked body it cannot frame, a forwarded ``SCRIPT_NAME`` the path does not
start with), in HTML. This worker lets gunicorn decide the status and the message as always,
and sends them in affix's HAL shape instead. ``affix serve`` uses it; a deployment that runs
gunicorn itself names it: ``gunicorn --worker-class affix.HalWorker 'affix:create_app()'``.
"""
import html
import http
import json
import re

from gunicorn.http.errors import ConfigurationProblem
from gunicorn.workers.gthread import ThreadWorker

from affix.app.http.errors import URN_PREFIX

# gunicorn's answer: the status line, and the message in its HTML body
_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")
_MESSAGE = re.compile(rb"</h1>\s*(.*?)\s*</body>", re.DOTALL)
_IDENTIFIERS = {501: "NotImplemented"}


class _Captured:
    """The client's socket, except that what is sent is kept instead."""

    def __init__(self, sock):
        self._sock = sock
        self.sent = bytearray()

    def sendall(self, data):
        self.sent += data

    def __getattr__(self, name):
        return getattr(self._sock, name)


def hal_answer(status: int, message: str) -> bytes:
    """A whole HTTP response, closing the connection, with a HAL error body."""
    if status >= 500:
        identifier = _IDENTIFIERS.get(status, "InternalServerError")
    else:
        identifier = _IDENTIFIERS.get(status, "InvalidRequestBody")
    phrase = http.HTTPStatus(status).phrase
    body = json.dumps({"_type": "Error", "errorIdentifier": URN_PREFIX + identifier,
                       "message": message or phrase}).encode()
    head = (f"HTTP/1.1 {status} {phrase}\r\nConnection: close\r\n"
            f"Content-Type: application/hal+json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class HalWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc):
        captured = _Captured(client)
        super().handle_error(req, captured, addr, exc)
        try:
            client.sendall(_as_hal(bytes(captured.sent), exc))
        except OSError:
            self.log.debug("Failed to send error message.")


def _as_hal(answer: bytes, exc) -> bytes:
    """gunicorn's ``answer`` to the request that raised ``exc``, in HAL."""
    status_line = _STATUS_LINE.match(answer)
    if status_line is None:
        # nothing, or nothing we know: passed on as it is
        return answer
    status = int(status_line.group(1))
    found = _MESSAGE.search(answer)
    message = html.unescape(found.group(1).decode("latin-1")) if found else ""
    if isinstance(exc, ConfigurationProblem) and "SCRIPT_NAME" in str(exc):
        # a forwarded prefix the path does not start with is the request's fault
        status = 400
        message = f"The forwarded path prefix does not fit the path: {exc.info}"
    if status >= 500 and status != 501:
        # never an internal detail in a body
        message = "An internal error has occurred."
    return hal_answer(status, message)
