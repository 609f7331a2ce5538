"""``/health`` and ``/health/ready``: without a key, cheap, and ready only when the database,
its schema and the blob store are."""
import peewee
import pytest

from affix.storage.migrations import LATEST_VERSION, MIGRATIONS, VERSION_TABLE
from support.errors import hal_error

NOT_READY = "ServiceUnavailable"


def test_alive_answers_without_a_key_and_without_the_database(client, settings):
    response = client.simulate_get("/health")

    assert (response.status_code, response.json) == (200, {"status": "ok"})
    assert response.headers["content-type"] == "application/hal+json"


@pytest.mark.on_cue("catalog")
def test_alive_answers_while_the_database_is_out_of_reach(client, services):
    def refuse(*args, **kwargs):
        raise AssertionError("/health asked the database for a connection")

    services.catalog.database.replace("connect", refuse)

    assert client.simulate_get("/health").status_code == 200


def test_ready_when_database_schema_and_store_are(client):
    response = client.simulate_get("/health/ready")

    assert (response.status_code, response.json) == (
        200, {"status": "ready", "schemaVersion": LATEST_VERSION})


@pytest.mark.on_cue("catalog")
def test_not_ready_says_the_database_is_out_of_reach(client, services):
    def refuse(*args, **kwargs):
        raise peewee.OperationalError("unable to open database file")

    # as between two requests of a served worker: no connection open
    services.catalog.database.close()
    services.catalog.database.replace("connect", refuse)
    response = client.simulate_get("/health/ready")
    services.catalog.database.restore("connect")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    # the part that is not ready, in the body the probe logs, not only in affix's log
    assert response.json == hal_error(
        NOT_READY, "Not ready: the database does not answer (unable to open database file).")


def test_not_ready_with_a_schema_behind_this_affix(client, catalog):
    with catalog.database.connection_context():
        catalog.database.execute_sql(
            f'DELETE FROM "{VERSION_TABLE}" WHERE "version" = {LATEST_VERSION}')

    response = client.simulate_get("/health/ready")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json == hal_error(
        # the version before the latest: the numbers need not be contiguous
        NOT_READY, f"Not ready: the database schema is at version {MIGRATIONS[-2].version}, this "
                   f"affix needs {LATEST_VERSION} (affix migrate).")


def test_not_ready_without_its_staging_folder(client, stored):
    staging = stored.blob_root / ".staging"
    staging.rmdir()
    try:
        response = client.simulate_get("/health/ready")
    finally:
        staging.mkdir()

    assert response.status_code == 503
    assert response.json == hal_error(
        NOT_READY, f"Not ready: the blob store is out of reach ({staging} is not a folder "
                   "affix can write to).")
