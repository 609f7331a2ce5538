"""Authentication by API key: ``Basic`` with user name ``apikey``, or ``Bearer``."""
import base64
import binascii
import datetime
import hashlib
import hmac
import secrets

from affix.app.errors import Unauthenticated
from affix.plugins import hookimpl


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# How stale a key's recorded last use may be: authenticating writes it only when the recorded
# one is older, so a key in constant use costs one write per interval rather than one a request
LAST_USE_PRECISION = datetime.timedelta(minutes=5)


def issue_api_key(catalog, user, now, expires_at=None) -> str:
    """Create a key for ``user`` (refused from ``expires_at`` on; None: never) and return it;
    only its hash is stored, so this is the one time anybody sees it."""
    key = secrets.token_hex(32)
    catalog.ApiKey.create(user=user, key_hash=hash_api_key(key), created_at=now,
                          expires_at=expires_at)
    return key


def _unauthenticated():
    return Unauthenticated("You need to be authenticated to access this resource.")


def _wrong_credentials():
    return Unauthenticated("You did not provide the correct credentials.")


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
    """Falcon middleware: resolves ``req.context.user`` before any resource but a public one
    (``auth_required = False``), and any method but the public ones of a resource (its
    ``public_methods``).

    The host's identity comes first (plugins on ``affix_authenticate``, such as the trusted
    ``REMOTE_USER``), then affix's own API keys. An identity nobody vouches for falls through
    to the API key and then to 401: there is never a default user.

    Nothing of a key or a user is kept between requests: each reads them afresh, so a key
    revoked or a user locked (``affix apikey revoke``, ``affix user lock``) is refused by every
    worker of every node from the next request on.
    """

    def __init__(self, *, catalog, host_identity, clock):
        self.catalog = catalog
        # request -> login named by the host, or None
        self.host_identity = host_identity
        self.clock = clock

    def process_resource(self, req, resp, resource, params):
        req.context.user = None
        if (resource is None or getattr(resource, "auth_required", True) is False
                or req.method in getattr(resource, "public_methods", ())):
            # no route (the 404 needs nobody's identity), a public document, or a public
            # method of a resource (tus's discovery)
            return
        user = self._host_user(req) or self._api_key_user(req)
        if user.locked:
            raise _wrong_credentials()
        req.context.user = user

    def _host_user(self, req):
        login = self.host_identity(req)
        if login is None:
            return None
        User = self.catalog.User
        user = User.get_or_none(User.login == login)
        if user is None:
            # a user the host knows is created on first sight; get_or_create settles the race
            # of two first requests
            with self.catalog.write_transaction():
                user, _ = User.get_or_create(login=login, defaults={"name": login})
        return user

    def _api_key_user(self, req):
        key = presented_key(req.get_header("Authorization"))
        if key is None:
            raise _unauthenticated()
        digest = hash_api_key(key)
        user = self.catalog.user_of_key(digest)
        # the lookup is by hash; comparing the hashes again in constant time keeps the decision
        # itself free of timing differences
        if user is None or not hmac.compare_digest(user.key_hash, digest):
            raise _wrong_credentials()
        now = self.clock()
        if user.expires_at is not None and user.expires_at <= now:
            # as for a key that never was: nothing tells the caller the key once worked
            raise _wrong_credentials()
        if not user.locked and (user.last_used_at is None
                                or now - user.last_used_at >= LAST_USE_PRECISION):
            self.catalog.record_key_use(user.key_id, now)
        return user


class TrustRemoteUser:
    """The built-in, opt-in plugin (``AFFIX_TRUST_REMOTE_USER``) that believes the
    ``REMOTE_USER`` an authenticating proxy or the host app put in the WSGI environ.

    Only for deployments where nothing but that proxy or host can reach affix: whoever can set
    the variable is whoever they say.
    """

    @hookimpl
    def affix_authenticate(self, request):
        return request.env.get("REMOTE_USER")
