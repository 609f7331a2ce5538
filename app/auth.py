"""Authentication by API key: ``Basic`` with user name ``apikey``, or ``Bearer``."""
import base64
import binascii
import hashlib
import hmac
import secrets

import falcon

from app.errors import ApiError

REALM = 'Basic realm="affix"'


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def issue_api_key(catalog, user, now) -> str:
    """Create a key for ``user`` and return it; only its hash is stored, so this is the one
    time anybody sees it."""
    key = secrets.token_hex(32)
    catalog.ApiKey.create(user=user, key_hash=hash_api_key(key), created_at=now)
    return key


def _unauthenticated():
    return ApiError(
        falcon.HTTP_401, "Unauthenticated",
        "You need to be authenticated to access this resource.",
        headers={"WWW-Authenticate": REALM},
    )


def _wrong_credentials():
    return ApiError(
        falcon.HTTP_401, "Unauthenticated", "You did not provide the correct credentials.",
        headers={"WWW-Authenticate": REALM},
    )


def presented_key(authorization):
    """The API key in an Authorization header value; None when there is no header, and
    the wrong-credentials error for any header that carries no usable key."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return credentials
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _wrong_credentials() from None
        user_name, separator, password = decoded.partition(":")
        if separator and user_name == "apikey" and password:
            return password
    raise _wrong_credentials()


class Authenticator:
    """Falcon middleware: resolves ``req.context.user`` before any resource that needs it."""

    def __init__(self, catalog):
        self.catalog = catalog

    def process_resource(self, req, resp, resource, params):
        req.context.user = None
        if resource is None or not getattr(resource, "auth_required", True):
            return
        key = presented_key(req.get_header("Authorization"))
        if key is None:
            raise _unauthenticated()
        digest = hash_api_key(key)
        api_key = (
            self.catalog.ApiKey.select(self.catalog.ApiKey, self.catalog.User)
            .join(self.catalog.User)
            .where(self.catalog.ApiKey.key_hash == digest)
            .first()
        )
        # the lookup is by hash; comparing the hashes again in constant time keeps the decision
        # itself free of timing differences
        if api_key is None or not hmac.compare_digest(api_key.key_hash, digest):
            raise _wrong_credentials()
        if api_key.user.locked:
            raise _wrong_credentials()
        req.context.user = api_key.user
