"""HAL errors: every error affix answers is ``application/hal+json`` in OpenProject's shape."""
import json
import logging

import falcon
import peewee

from affix.app.http.request_facts import record_error, record_failed_backend
from affix.storage.blob_store import StoreFull, StoreUnavailable

HAL_JSON = "application/hal+json"
URN_PREFIX = "urn:openproject-org:api:v3:errors:"

log = logging.getLogger(__name__)


class ApiError(falcon.HTTPError):
    """An error with an OpenProject error identifier and a message meant for the client."""

    def __init__(self, status, identifier, message, *, attribute=None, headers=None,
                 embedded_errors=None):
        super().__init__(status, title=identifier, description=message, headers=headers)
        self.identifier = identifier
        self.message = message
        self.attribute = attribute
        self.embedded_errors = embedded_errors

    def to_hal(self) -> dict:
        body = {
            "_type": "Error",
            "errorIdentifier": URN_PREFIX + self.identifier,
            "message": self.message,
        }
        if self.attribute is not None:
            body["_embedded"] = {"details": {"attribute": self.attribute}}
        if self.embedded_errors:
            body["_embedded"] = {"errors": [error.to_hal() for error in self.embedded_errors]}
        return body


def is_refusal(error: BaseException) -> bool:
    """Whether ``error`` refuses what the client asked for (a 4xx: a permission, a policy, a
    plugin's or the virus scanner's no, a size), so that asking again is refused again. Any
    other failure passes (a 503 from a database, a store or a scanner out of reach, a full
    store, a crash): what the client sent is worth keeping for its retry."""
    return isinstance(error, falcon.HTTPError) and 400 <= error.status_code < 500


def invalid_request_body(message):
    return ApiError(falcon.HTTP_400, "InvalidRequestBody", message)


def property_violation(attribute, message):
    return ApiError(falcon.HTTP_422, "PropertyConstraintViolation", message, attribute=attribute)


def property_violations(errors):
    """One 422 for one property error, MultipleErrors wrapping each for several."""
    if len(errors) == 1:
        return errors[0]
    return ApiError(
        falcon.HTTP_422, "MultipleErrors", "Multiple field constraints have been violated.",
        embedded_errors=errors,
    )


def not_found(message="The requested resource could not be found."):
    return ApiError(falcon.HTTP_404, "NotFound", message)


def missing_permission():
    return ApiError(
        falcon.HTTP_403, "MissingPermission", "You are not authorized to access this resource."
    )


# Falcon raises its own errors for routing and protocol problems; they get OpenProject's
# identifiers and messages here so that no error escapes the HAL shape.
_FALCON_STATUS_ERRORS = {
    # falcon's own 400s come from parsing JSON bodies
    400: ("InvalidRequestBody", "The request could not be parsed as JSON."),
    404: ("NotFound", "The requested resource could not be found."),
    405: ("NotImplemented", "The requested HTTP method is not allowed for this resource."),
    411: ("InvalidRequestBody", "The request needs a Content-Length or chunked encoding."),
    413: ("PropertyConstraintViolation", "The request body is too large."),
    415: ("TypeNotSupported", "Expected CONTENT-TYPE to be application/json."),
}


def _as_api_error(error: falcon.HTTPError) -> ApiError:
    if isinstance(error, ApiError):
        return error
    identifier, message = _FALCON_STATUS_ERRORS.get(
        error.status_code, ("InternalServerError", "An internal error has occurred.")
    )
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
    raise ApiError(
        falcon.HTTP_500, "InternalServerError", "An internal error has occurred."
    ) from error


def handle_store_full(req, resp, error, params):
    """A full disk is the operator's to fix, and the client's to retry later: 507."""
    log.error("storage full in %s: %s", _where(req), error)
    record_failed_backend(req, "storage")
    raise ApiError(
        falcon.HTTP_507, "InsufficientStorage",
        "There is not enough storage space left to store the file.",
    ) from error


def _unavailable(req, error, what, backend):
    log.error("%s unavailable in %s: %s", what, _where(req), error)
    record_failed_backend(req, backend)
    return ApiError(
        falcon.HTTP_503, "ServiceUnavailable",
        "The service is temporarily unavailable. Please try again later.",
        headers={"Retry-After": "5"},
    )


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
    app.add_error_handler(StoreFull, handle_store_full)
    app.add_error_handler(StoreUnavailable, handle_store_unavailable)
    app.add_error_handler((peewee.OperationalError, peewee.InterfaceError), handle_database_error)
