"""HAL errors: every error affix answers is ``application/hal+json`` in OpenProject's shape.

The services raise domain errors (:mod:`affix.app.errors`); :func:`api_error_of` is the one
place that maps them to their answers."""
import json
import logging

import falcon
import peewee

from affix.app.errors import (
    ChecksumMismatch, DomainError, InsufficientStorage, ServiceUnavailable, Unauthenticated,
)
from affix.app.http.request_facts import record_error, record_failed_backend
from affix.storage.blob_store import StoreFull, StoreUnavailable

HAL_JSON = "application/hal+json"
# the challenge of every 401: affix's own API keys, by ``Basic`` (or ``Bearer``)
REALM = 'Basic realm="affix"'
URN_PREFIX = "urn:openproject-org:api:v3:errors:"

log = logging.getLogger(__name__)


class ApiError(falcon.HTTPError):
    """An answer of the HTTP layer itself, with an OpenProject error identifier and a message
    meant for the client; ``hal`` is its body when it is more than those two (a domain
    error's details)."""

    def __init__(self, status, identifier, message, *, headers=None, hal=None):
        super().__init__(status, title=identifier, description=message, headers=headers)
        self.identifier = identifier
        self.message = message
        self._hal = hal

    def to_hal(self) -> dict:
        return self._hal or {
            "_type": "Error",
            "errorIdentifier": URN_PREFIX + self.identifier,
            "message": self.message,
        }


def hal_error(error: DomainError) -> dict:
    """``error`` in OpenProject's HAL shape: its property, or each error it stands for."""
    body = {
        "_type": "Error",
        "errorIdentifier": URN_PREFIX + error.identifier,
        "message": error.message,
    }
    if error.attribute is not None:
        body["_embedded"] = {"details": {"attribute": error.attribute}}
    if error.errors:
        body["_embedded"] = {"errors": [hal_error(each) for each in error.errors]}
    return body


# statuses of extensions to HTTP, which falcon knows no reason phrase for
_REASONS = {ChecksumMismatch.status: "Checksum Mismatch"}


def api_error_of(error: DomainError) -> ApiError:
    """The one mapping of a domain error to its answer: its status, identifier, message and
    HAL body, and the headers its kind asks for."""
    status = (f"{error.status} {_REASONS[error.status]}" if error.status in _REASONS
              else falcon.code_to_http_status(error.status))
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = REALM
    return ApiError(status, error.identifier, error.message, headers=headers or None,
                    hal=hal_error(error))


def handle_domain_error(req, resp, error, params):
    """A service's refusal or failure, answered as its HAL error."""
    raise api_error_of(error) from error


# Falcon raises its own errors for routing and protocol problems; they get OpenProject's
# identifiers and messages here so that no error escapes the HAL shape.
FALCON_STATUS_ERRORS = {
    # falcon's own 400s come from parsing JSON bodies
    400: ("InvalidRequestBody", "The request could not be parsed as JSON."),
    404: ("NotFound", "The requested resource could not be found."),
    405: ("NotImplemented", "The requested HTTP method is not allowed for this resource."),
    411: ("InvalidRequestBody", "The request needs a Content-Length or chunked encoding."),
    415: ("TypeNotSupported", "Expected CONTENT-TYPE to be application/json."),
}
# any other failure: no detail of it reaches the client
UNEXPECTED_ERROR = ("InternalServerError", "An internal error has occurred.")


def _as_api_error(error: falcon.HTTPError) -> ApiError:
    if isinstance(error, ApiError):
        return error
    identifier, message = FALCON_STATUS_ERRORS.get(error.status_code, UNEXPECTED_ERROR)
    return ApiError(error.status, identifier, message)


def serialize_error(req, resp, error):
    """Falcon error serializer: HAL for every client, whatever it accepts."""
    api_error = _as_api_error(error)
    record_error(req, api_error.identifier)
    resp.content_type = HAL_JSON
    resp.text = json.dumps(api_error.to_hal())


def _where(req) -> str:
    """The request for a log line: its method and its path when a route matched it (a path that
    routed nowhere is the client's text, which could be anything, a key among it)."""
    return f"{req.method} {req.path if req.uri_template is not None else '(no route)'}"


def handle_unexpected(req, resp, error, params):
    """Any exception nobody caught: logged with its trace, answered as a bare HAL 500."""
    log.exception("unhandled error in %s", _where(req))
    raise ApiError(falcon.HTTP_500, *UNEXPECTED_ERROR) from error


def handle_store_full(req, resp, error, params):
    """A full disk is the operator's to fix, and the client's to retry later: 507."""
    log.error("storage full in %s: %s", _where(req), error)
    record_failed_backend(req, "storage")
    raise api_error_of(InsufficientStorage(
        "There is not enough storage space left to store the file.")) from error


def _unavailable(req, error, what, backend):
    log.error("%s unavailable in %s: %s", what, _where(req), error)
    record_failed_backend(req, backend)
    return api_error_of(ServiceUnavailable(
        "The service is temporarily unavailable. Please try again later."))


def handle_database_error(req, resp, error, params):
    """The database locked for too long or out of reach: 503, worth retrying."""
    raise _unavailable(req, error, "database", "database") from error


def handle_store_unavailable(req, resp, error, params):
    """The blob store out of reach or failing on its side: 503, like the database."""
    raise _unavailable(req, error, "blob store", "storage") from error


def install_error_handlers(app):
    """Every error HAL, every failure mapped to what a client can do about it."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(DomainError, handle_domain_error)
    app.add_error_handler(StoreFull, handle_store_full)
    app.add_error_handler(StoreUnavailable, handle_store_unavailable)
    app.add_error_handler((peewee.OperationalError, peewee.InterfaceError), handle_database_error)
