"""Reading the header lines of multipart parts fast, for streaming-form-data.

streaming-form-data 2.1 reads every header line of every part with the email package:
``Parser(policy=HTTP).parsestr(line)``, then asks the message whether it has a
``Content-Disposition`` (its type, its ``name`` and ``filename`` parameters) or a
``Content-Type``. The email package's header registry makes that most of the CPU a small
upload costs. :class:`PartHeaderParser` answers the same questions for the header lines clients
actually send (``form-data`` with a quoted or plain ``name`` and ``filename``, a plain
``Content-Type``, any other header) by one regular expression each, and hands every other line
to the email package as before, so that its answers are the email package's answers: a
differential test holds the two side by side on generated lines.

The parser's constructor reads the request's Content-Type with the email package too, a tenth
of a small upload's CPU: :func:`parse_content_boundary` reads the one affix gives it
(``multipart/form-data; boundary="..."``, app/uploads/multipart.py) by a regular expression,
and hands any other to the email package's reading.

It is the change one would send upstream, carried here as narrowly as the library allows: the
compiled parser module's own global ``Parser`` and the Python parser module's
``parse_content_boundary`` are replaced, and only on the streaming-form-data versions they were
tested with (:data:`TESTED_VERSIONS`).
"""
import email.parser
import email.policy
import importlib.metadata
import re
from typing import Any

from streaming_form_data import _parser as compiled_parser
from streaming_form_data import parser as parser_module

# the versions pyproject.toml allows, the same as the deferred imports'
from affix.app.uploads.deferred_imports import TESTED_VERSIONS

# RFC 9110 token characters
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# a parameter's plain value: token characters but those RFC 2231 gives a meaning (* ' %)
_PLAIN = r"[!#$&+.^_`|~0-9A-Za-z-]+"
# a quoted-string of printable ASCII without escapes, quotes, or anything the email package
# reads in a way of its own (encoded words, RFC 2231 continuations)
_QUOTED = r'"(?:(?!=\?)[ !#-\[\]-~])*"'
_LINE = re.compile(rf"({_TOKEN}):[ \t]*(\S(?:[^\r\n]*\S)?)\r\n\Z")
_DISPOSITION = re.compile(
    rf"form-data((?:[ \t]*;[ \t]*(?:name|filename)=(?:{_PLAIN}|{_QUOTED}))*)\Z",
    re.IGNORECASE)
_PARAMETER = re.compile(rf"[ \t]*;[ \t]*(name|filename)=({_PLAIN}|{_QUOTED})", re.IGNORECASE)
_CONTENT_TYPE = re.compile(
    rf"({_TOKEN}/{_TOKEN})((?:[ \t]*;[ \t]*{_PLAIN}=(?:{_PLAIN}|{_QUOTED}))*)\Z")
_HANDLED = ("content-disposition", "content-type")
# a quoted boundary of the characters RFC 2046 allows but the space (which the email package
# folds) and without "=?" (which it may read as an encoded word)
_FORM_DATA_TYPE = re.compile(
    r'multipart/form-data; boundary="((?:(?!=\?)[0-9A-Za-z\'()+_,\-./:=?])+)"')
_STOCK_PARSE_CONTENT_BOUNDARY = parser_module.parse_content_boundary


class _Disposition:
    __slots__ = ("params",)

    def __init__(self, params):
        self.params = params


class _PartHeader:
    """One header line, answering what streaming-form-data asks of an email message."""

    __slots__ = ("_name", "_disposition", "_content_type")

    def __init__(self, name, disposition=None, content_type=None):
        self._name = name
        self._disposition = disposition
        self._content_type = content_type

    def __contains__(self, name):
        return name == self._name

    def __getitem__(self, name):
        return self._disposition if name == self._name == "content-disposition" else None

    def get_content_disposition(self):
        return "form-data" if self._disposition is not None else None

    def get_content_type(self):
        return self._content_type or "text/plain"


def _unquoted(value: str) -> str:
    return value[1:-1] if value.startswith('"') else value


def read_header_line(line: str):
    """The :class:`_PartHeader` of ``line``, or None when it is one for the email package."""
    header = _LINE.match(line)
    if header is None:
        return None
    name, value = header.group(1).lower(), header.group(2)
    if name == "content-disposition":
        disposition = _DISPOSITION.match(value)
        if disposition is None:
            return None
        params = {}
        for parameter in _PARAMETER.finditer(disposition.group(1)):
            key = parameter.group(1).lower()
            if key in params:
                # the email package keeps the first of two: a client that sends two is odd
                return None
            params[key] = _unquoted(parameter.group(2))
        return _PartHeader(name, disposition=_Disposition(params))
    if name == "content-type":
        content_type = _CONTENT_TYPE.match(value)
        if content_type is None:
            return None
        return _PartHeader(name, content_type=content_type.group(1).lower())
    return _PartHeader(name)


class PartHeaderParser:
    """What streaming-form-data's parser module calls ``Parser(policy=HTTP)``."""

    def __init__(self, policy=email.policy.HTTP):
        self.policy = policy

    def parsestr(self, text):
        header = read_header_line(text)
        if header is None:
            return email.parser.Parser(policy=self.policy).parsestr(text)
        return header


def parse_content_boundary(headers, *,
                           stock_reading=_STOCK_PARSE_CONTENT_BOUNDARY) -> bytes:
    """What streaming-form-data's ``parse_content_boundary`` answers for ``headers``: read
    here, or by ``stock_reading``, streaming-form-data's own."""
    if len(headers) == 1:
        (name, value), = headers.items()
        if name.lower() == "content-type" and isinstance(value, str):
            form_data_type = _FORM_DATA_TYPE.fullmatch(value)
            if form_data_type is not None:
                return form_data_type.group(1).encode("ascii")
    return stock_reading(headers)


def install(*, tested_versions: tuple[str, ...] = TESTED_VERSIONS,
            compiled: Any = compiled_parser, python: Any = parser_module) -> bool:
    """Put :class:`PartHeaderParser` in the place of the email parser in streaming-form-data's
    compiled parser module (``compiled``), and :func:`parse_content_boundary` in the place of
    its Python parser module's own (``python``), when the installed version is one of
    ``tested_versions`` and the modules still use the email package that way; whether it
    did."""
    if importlib.metadata.version("streaming-form-data") not in tested_versions:
        return False
    if getattr(compiled, "Parser", None) not in (email.parser.Parser, PartHeaderParser):
        return False
    if getattr(compiled, "HTTP", None) is not email.policy.HTTP:
        return False
    if getattr(python, "parse_content_boundary", None) not in (
            _STOCK_PARSE_CONTENT_BOUNDARY, parse_content_boundary):
        return False
    compiled.Parser = PartHeaderParser
    python.parse_content_boundary = parse_content_boundary
    return True
