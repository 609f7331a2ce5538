"""What the services refuse, in OpenProject's terms and without HTTP: the domain errors.

Each kind carries the OpenProject error identifier a client is answered with and the status that
answer has, as a plain number; the HTTP layer turns every one into its HAL error in one place
(:mod:`affix.app.http.errors`). Nothing here knows of requests or responses, so that the services
raising them speak no HTTP.
"""


class DomainError(Exception):
    """A refusal or a failure with a message meant for the client. ``attribute`` names the
    property at fault (a property error), ``errors`` the several errors this one stands for."""

    identifier = "InternalServerError"
    status = 500
    # seconds a client should wait before asking again, for a passing failure
    retry_after: int | None = None

    def __init__(self, message, *, attribute=None, errors=()):
        super().__init__(message)
        self.message = message
        self.attribute = attribute
        self.errors = list(errors)


class InvalidRequestBody(DomainError):
    identifier, status = "InvalidRequestBody", 400


class InvalidQuery(DomainError):
    identifier, status = "InvalidQuery", 400


class Unauthenticated(DomainError):
    identifier, status = "Unauthenticated", 401


class MissingPermission(DomainError):
    identifier, status = "MissingPermission", 403


class NotFound(DomainError):
    identifier, status = "NotFound", 404


class MissingContentType(DomainError):
    identifier, status = "MissingContentType", 406


class UpdateConflict(DomainError):
    identifier, status = "UpdateConflict", 409


class PreconditionFailed(DomainError):
    identifier, status = "PreconditionFailed", 412


class ContentTooLarge(DomainError):
    """More bytes than the upload may have, said before they were sent (tus's 413)."""

    identifier, status = "PropertyConstraintViolation", 413


class TypeNotSupported(DomainError):
    identifier, status = "TypeNotSupported", 415


class PropertyConstraintViolation(DomainError):
    identifier, status = "PropertyConstraintViolation", 422


class MultipleErrors(DomainError):
    identifier, status = "MultipleErrors", 422


class Locked(DomainError):
    identifier, status = "Locked", 423


class ChecksumMismatch(DomainError):
    """tus's checksum extension answers a digest that does not match with its own 460."""

    identifier, status = "ChecksumMismatch", 460


class ServiceUnavailable(DomainError):
    identifier, status, retry_after = "ServiceUnavailable", 503, 5


class InsufficientStorage(DomainError):
    identifier, status = "InsufficientStorage", 507


def is_refusal(error: BaseException) -> bool:
    """Whether ``error`` refuses what the client asked for (a 4xx: a permission, a policy, a
    plugin's or the virus scanner's no, a size), so that asking again is refused again. Any
    other failure passes (a 503 from a database, a store or a scanner out of reach, a full
    store, a crash): what the client sent is worth keeping for its retry."""
    return isinstance(error, DomainError) and 400 <= error.status < 500


def invalid_request_body(message) -> InvalidRequestBody:
    return InvalidRequestBody(message)


def property_violation(attribute, message) -> PropertyConstraintViolation:
    return PropertyConstraintViolation(message, attribute=attribute)


def property_violations(errors) -> DomainError:
    """One 422 for one property error, MultipleErrors wrapping each for several."""
    if len(errors) == 1:
        return errors[0]
    return MultipleErrors("Multiple field constraints have been violated.", errors=errors)


def not_found(message="The requested resource could not be found.") -> NotFound:
    return NotFound(message)


NOT_AUTHORIZED = "You are not authorized to access this resource."


def missing_permission(permissions, message=NOT_AUTHORIZED) -> MissingPermission:
    """403 naming what the user lacks, so that whoever grants roles knows what to grant: the
    permission, or the several of which any one would do."""
    names = sorted(permissions)
    needed = names[0] if len(names) == 1 else f"one of {', '.join(names)}"
    return MissingPermission(f"{message} Missing permission: {needed}.")


def not_permitted(message) -> MissingPermission:
    """403 that no permission would lift (a file in quarantine): the message says why."""
    return MissingPermission(message)
