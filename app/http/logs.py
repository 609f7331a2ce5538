"""The server's logs: the app's, gunicorn's and one access line per request, all on stderr,
as text for a terminal or as one JSON object a line (python-json-logger) for a log collector.

``affix serve`` hands :func:`logging_config` to gunicorn (``logconfig_dict``) and makes
:class:`AccessLogger` its logger class. An access line carries the request's
:class:`~affix.app.http.request_facts.RequestFacts` and what only the server knows (the bytes it
sent, the time until the last of them), the client's address (behind a trusted proxy, the
address the proxy names) and its ``User-Agent``; never another header, the query or a byte of
a body.

A line may still quote what a client chose (a routed path's segments, a file name in an error):
no such value may begin a line of its own or drive a terminal (CWE-117). JSON escapes every
control character itself; the text format escapes them (:func:`escaped`) and indents each line
of a trace, so that a line that begins at the margin is always one of the log's own.
"""
import ipaddress
import logging
import re
import time

from gunicorn.glogging import Logger
from pythonjsonlogger.json import JsonFormatter

from affix.app.http.request_facts import ENVIRON_KEY, current_request_id

# gunicorn's own text format, so that its lines and affix's read alike in a terminal
TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
TEXT_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"
ACCESS_TEXT_FORMAT = (TEXT_FORMAT + " %(bytes_in)d bytes in, %(bytes_out)d out, %(duration).3f s,"
                      " user %(user_id)s, request %(request_id)s, client %(client)s,"
                      " agent %(user_agent)s")
# what of a User-Agent a line keeps: every real client's fits
USER_AGENT_LENGTH = 200
# the fields of every JSON line, first; an access line adds the request's
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
JSON_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
# what a text line must not carry as is: C0 and C1 control characters (a newline or a carriage
# return would begin a line of the client's making, ESC would drive the terminal) and Unicode's
# line and paragraph separators, which some viewers break lines at
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# a trace's lines are indented by this much, the first included
TRACE_INDENT = "    "
# gunicorn's warning about a request it refused, up to the kind of error; what follows quotes
# the request's own text (its request line, a header's name, a chunk's size line)
_REFUSED_REQUEST = re.compile(r"(Invalid request from ip=\S+: [^:']+)")


class JsonLines(JsonFormatter):
    """python-json-logger's formatter, its time in ISO 8601 UTC to the millisecond."""

    converter = time.gmtime  # type: ignore[assignment]  # what logging documents; typeshed differs
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self):
        super().__init__(JSON_FIELDS, rename_fields=JSON_RENAMED)


def escaped(text: str) -> str:
    """``text`` with every character of ``_UNPRINTABLE`` written as a Python escape."""
    return _UNPRINTABLE.sub(lambda match: repr(match[0])[1:-1], text)


class TextLines(logging.Formatter):
    """logging's formatter for the text format: one line an event, whatever its values hold.
    A trace, or a stack, follows on lines of its own, each indented and escaped."""

    def formatMessage(self, record):
        return escaped(super().formatMessage(record))

    def formatException(self, ei):
        return self._indented(super().formatException(ei))

    def formatStack(self, stack_info):
        return self._indented(super().formatStack(stack_info))

    @staticmethod
    def _indented(text):
        return "\n".join(TRACE_INDENT + escaped(line) for line in text.split("\n"))


class RequestIdFilter(logging.Filter):
    """Gives a line written while a request is served that request's id (None outside)."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


class WithoutRequestText(logging.Filter):
    """Cuts the quoted request text from gunicorn's warnings about requests it refused: a
    request line or a chunk of body may hold a key or a file's bytes."""

    def filter(self, record):
        if isinstance(record.msg, str) and record.msg.startswith("Invalid request from ip="):
            refused = _REFUSED_REQUEST.match(record.msg)
            record.msg = (refused.group(1) if refused else "Invalid request")
            record.msg += " (the request's text is not logged)"
        return True


def logging_config(log_format: str, access_log: bool) -> dict:
    """A :func:`logging.config.dictConfig` for the app's loggers and gunicorn's, in
    ``log_format`` ("text" or "json"); the access lines only when ``access_log``."""
    if log_format == "json":
        lines: dict[str, object] = {"()": JsonLines}
        access: dict[str, object] = lines
    else:
        lines = {"()": TextLines, "fmt": TEXT_FORMAT, "datefmt": TEXT_DATE_FORMAT}
        access = {"()": TextLines, "fmt": ACCESS_TEXT_FORMAT, "datefmt": TEXT_DATE_FORMAT}

    def to_stderr(formatter, filters):
        return {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                "formatter": formatter, "filters": filters}

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter},
                    "without_request_text": {"()": WithoutRequestText}},
        "formatters": {"lines": lines, "access": access},
        # an access line has its request's id and is no warning of gunicorn's: no filter
        "handlers": {"lines": to_stderr("lines", ["request_id", "without_request_text"]),
                     "access": to_stderr("access", [])},
        "root": {"level": "INFO", "handlers": ["lines"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["lines"], "propagate": False},
            "gunicorn.access": {"level": "INFO" if access_log else "WARNING",
                                "handlers": ["access"], "propagate": False},
        },
    }


def client_address(environ, trusted_proxy) -> str | None:
    """The client's address: the peer's; or, where the peer is a proxy ``trusted_proxy(address)``
    vouches for (gunicorn's ``forwarded_allow_ips``), the nearest address of its
    ``X-Forwarded-For`` that is no trusted proxy (the leftmost, where all are). An address a
    client wrote itself stands left of every proxy's, and is never taken past an untrusted one."""
    address = environ.get("REMOTE_ADDR") or None
    if address is None or not trusted_proxy(address):
        return address
    forwarded = [entry.strip() for entry in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")
                 if entry.strip()]
    for entry in reversed(forwarded):
        address = entry
        if not trusted_proxy(entry):
            break
    return address


class AccessLogger(Logger):
    """gunicorn's logger, whose access line is the request's facts as fields. A request the
    app did not answer (a metrics scrape, an answer gunicorn made itself) has no line."""

    def access(self, resp, req, environ, request_time):
        facts = environ.get(ENVIRON_KEY)
        if facts is None or not self.access_log.isEnabledFor(logging.INFO):
            return
        # made directly: logging's own way would walk the stack for a caller nobody logs
        self.access_log.handle(self.access_log.makeRecord(
            self.access_log.name, logging.INFO, __file__, 0, "%s %s %s",
            (facts.method, facts.path or "(no route)", facts.status), None, extra={
                "request_id": facts.request_id, "user_id": facts.user_id,
                "method": facts.method, "route": facts.route, "path": facts.path,
                "status": facts.status, "error": facts.error, "bytes_in": facts.bytes_in,
                "bytes_out": resp.sent, "duration": round(request_time.total_seconds(), 6),
                "client": client_address(environ, self._trusted_proxy),
                "user_agent": environ.get("HTTP_USER_AGENT", "")[:USER_AGENT_LENGTH] or None,
            }))

    def _trusted_proxy(self, address) -> bool:
        """Whether gunicorn's ``forwarded_allow_ips`` (``FORWARDED_ALLOW_IPS``) name ``address``."""
        if "*" in self.cfg.forwarded_allow_ips:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.cfg.forwarded_allow_networks())
