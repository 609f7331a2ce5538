"""``/health`` and ``/health/ready``: for load balancers, orchestrators and service managers.

Both answer without a key. ``/health`` says the process serves requests and asks nothing of the
database or the store, so that a slow database never gets a healthy process restarted.
``/health/ready`` says whether this node can serve affix's API now: the database answers, its
schema is the one this affix needs, and the blob store is reachable; 503 with the reason
otherwise, so that a balancer sends no traffic to a node that would fail it.
"""
import falcon
import peewee

from affix.app.http.errors import ApiError
from affix.storage.blob_store import StorageError
from affix.storage.migrations import LATEST_VERSION, schema_version


def _not_ready(reason):
    return ApiError(falcon.HTTP_503, "ServiceUnavailable", f"Not ready: {reason}",
                    headers={"Retry-After": "5"})


class HealthResource:
    auth_required = False
    # the database session middleware leaves the database alone for this resource
    uses_database = False

    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


class ReadinessResource:
    auth_required = False
    # connected here, where a failure is a reason in the body; the session middleware's
    # would be the generic 503 of every other route (it still closes the connection)
    uses_database = False
    # connected here, where a failure is a reason in the body; the session middleware's
    # would be the generic 503 of every other route (it still closes the connection)
    uses_database = False

    def __init__(self, database, blob_store):
        self.database = database
        self.blob_store = blob_store

    def on_get(self, req, resp):
        try:
            self.database.connect(reuse_if_open=True)
            version = schema_version(self.database)
        except (peewee.OperationalError, peewee.InterfaceError) as error:
            raise _not_ready(f"the database does not answer ({error}).") from error
        if version != LATEST_VERSION:
            raise _not_ready(f"the database schema is at version {version}, this affix needs "
                             f"{LATEST_VERSION} (affix migrate).")
        try:
            self.blob_store.check_reachable()
        except StorageError as error:
            raise _not_ready(f"the blob store is out of reach ({error}).") from error
        resp.media = {"status": "ready", "schemaVersion": version}
