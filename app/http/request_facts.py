"""What one request was, gathered once for the metrics and the logs: its id, who made it, which
route it took, how it ended, how many bytes it read, how long the app took.

The id comes from ``X-Request-Id`` when a proxy sent a usable one, and is made here otherwise;
either way it goes back in the response's ``X-Request-Id``. Nothing of the request that could
carry a secret or content (headers, the query, the body, a path that routed nowhere) is kept.
"""
import contextvars
import dataclasses
import os
import re
import time

from affix.app.http.socket_body import request_body

REQUEST_ID_HEADER = "X-Request-Id"
# where gunicorn's access logger (affix.app.http.logs) finds the facts once the app has answered
ENVIRON_KEY = "affix.request"
# what proxies send (a UUID, nginx's $request_id, a base64 token), and no longer than any of
# them; anything else is a client's input, replaced by an id of our own
_USABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:+/=-]{1,128}")
# a label or a field whose values the client cannot multiply
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# the id of the request this thread serves, for log lines written while serving it: logging
# calls deep in the app have no request to ask. A ContextVar holds one value per thread (and per
# task), so two apps in one process, or two threads, never see each other's.
current_request_id = contextvars.ContextVar("affix_request_id", default=None)


def request_id_of(sent) -> str:
    """The id for a request whose ``X-Request-Id`` was ``sent`` (None when absent)."""
    if sent is not None and _USABLE_REQUEST_ID.fullmatch(sent):
        return sent
    # as random as a UUID4, in a tenth of its time
    return os.urandom(16).hex()


class CountingStream:
    """The request body's stream, counting the bytes the app read from it."""

    def __init__(self, stream):
        self._stream = stream
        self.count = 0

    def read(self, size=-1):
        data = self._stream.read(size)
        self.count += len(data)
        return data

    def readline(self, size=-1):
        line = self._stream.readline(size)
        self.count += len(line)
        return line

    def readlines(self, hint=-1):
        lines = self._stream.readlines(hint)
        self.count += sum(map(len, lines))
        return lines

    def __iter__(self):
        return iter(self.readline, b"")


@dataclasses.dataclass
class RequestFacts:
    request_id: str
    # the method when it is a known one, "other" otherwise
    method: str
    started: float
    # the route's template ("/api/v3/attachments/{attachment_id:id}"), None when none matched
    route: str | None = None
    # the path, only when a route matched it: then it is the template with its ids filled in
    path: str | None = None
    user_id: int | None = None
    status: int | None = None
    # the HAL error identifier of an error answer
    error: str | None = None
    # "database" or "storage", when the answer is that one failed
    failed_backend: str | None = None
    bytes_in: int = 0
    # seconds the app took, until the body is handed to the server
    duration: float = 0.0
    # the attachment this request stored, if it stored one
    stored: object = None
    # seconds the upload it stored took, when it began before this request (a resumable or a
    # direct upload); None: this request's duration
    upload_seconds: float | None = None


class RequestFactsMiddleware:
    """Falcon middleware, first in the list so that its ``process_request`` runs whatever the
    others raise. The facts go into the WSGI environ, for the server's access log, and to
    ``metrics`` (:class:`~affix.app.metrics.Metrics`, or None without metrics)."""

    def __init__(self, metrics=None):
        self.metrics = metrics

    def process_request(self, req, resp):
        method = req.method if req.method in KNOWN_METHODS else "other"
        facts = RequestFacts(request_id_of(req.get_header(REQUEST_ID_HEADER)), method,
                             time.perf_counter())
        req.context.facts = facts
        req.context.request_id_token = current_request_id.set(facts.request_id)
        # the body as the app reads it (from gunicorn's socket where it can), counted
        req.stream = req.context.counted_stream = CountingStream(request_body(req.env))
        req.env[ENVIRON_KEY] = facts
        resp.set_header(REQUEST_ID_HEADER, facts.request_id)
        if self.metrics is not None:
            self.metrics.started()

    def process_response(self, req, resp, resource, req_succeeded):
        facts = req.context.facts
        facts.duration = time.perf_counter() - facts.started
        facts.route = req.uri_template
        if facts.route is not None:
            facts.path = req.path
        user = req.context.get("user")
        facts.user_id = user.id if user is not None else None
        facts.status = resp.status_code
        facts.bytes_in = req.context.counted_stream.count
        if self.metrics is not None:
            self.metrics.observe(facts)
        current_request_id.reset(req.context.request_id_token)


def record_error(req, identifier):
    """The error identifier ``req`` is answered with (errors.py calls it)."""
    req.context.facts.error = identifier


def record_failed_backend(req, backend):
    """``req`` is answered that ``backend`` ("database" or "storage") failed."""
    req.context.facts.failed_backend = backend


def record_stored(req, attachment, upload_seconds=None):
    """``attachment`` was stored by ``req`` (an upload), whose bytes took ``upload_seconds``
    to arrive when the upload began before ``req`` (None: it took ``req``'s time)."""
    req.context.facts.stored = attachment
    req.context.facts.upload_seconds = upload_seconds


def record_finished(req, finished):
    """``req`` finished an upload that began before it: ``finished`` is its
    :class:`~affix.app.uploads.finishing.Finished`, or None when ``req`` finished none (a
    retry of a finished upload's last request): an upload is counted once."""
    if finished is not None:
        record_stored(req, finished.attachment, finished.seconds)
