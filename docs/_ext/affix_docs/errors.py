"""The error reference: every identifier with its status, from the domain errors
(:mod:`affix.app.errors`, mapped by :func:`~affix.app.http.errors.api_error_of`) and from the
HTTP layer's own answers (:data:`~affix.app.http.errors.FALCON_STATUS_ERRORS`)."""
import inspect
from typing import NamedTuple

from falcon import code_to_http_status

from affix.app.errors import DomainError
from affix.app.http.errors import (
    FALCON_STATUS_ERRORS, UNEXPECTED_ERROR, URN_PREFIX, api_error_of,
)

from affix_docs.markdown import code, table

# the source of an answer no domain error gives: Falcon's own errors, and any other failure
HTTP_LAYER = "the HTTP layer"


class Answer(NamedTuple):
    identifier: str
    # as the response's status line has it: "413 Content Too Large"
    status: str
    # Markdown: the domain error's class (of affix.app.errors), or the HTTP layer
    source: str
    # the HTTP layer's message, or what the domain error's docstring says of it
    notes: str


def _kinds(kind=DomainError) -> list:
    found = [kind]
    for subclass in kind.__subclasses__():
        found += _kinds(subclass)
    return found


def answers() -> list:
    """Each answer affix can give, by status, then identifier."""
    found = []
    for kind in _kinds():
        # the answer the one mapping gives to an error of this kind
        status = str(api_error_of(kind("")).status)
        own_doc = kind.__dict__.get("__doc__") if kind is not DomainError else None
        found.append(Answer(kind.identifier, status, code(kind.__name__),
                            inspect.cleandoc(own_doc) if own_doc else ""))
    for code_number, (identifier, message) in FALCON_STATUS_ERRORS.items():
        found.append(Answer(identifier, code_to_http_status(code_number), HTTP_LAYER, message))
    identifier, message = UNEXPECTED_ERROR
    found.append(Answer(identifier, code_to_http_status(500), HTTP_LAYER, message))
    return sorted(found, key=lambda answer: (answer.status, answer.identifier))


def reference() -> str:
    rows = [(code(answer.identifier), answer.status, answer.source, answer.notes)
            for answer in answers()]
    return (f"Each identifier is sent as {code(URN_PREFIX + '<identifier>')}.\n\n"
            + table(("identifier", "status", "raised by", "notes"), rows))
