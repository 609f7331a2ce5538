"""The metrics an app counts, in this process (falcon.testing); system/test_metrics_served.py
scrapes a real gunicorn of two workers. A request "on the metrics listener" names a real loopback
socket as ``gunicorn.socket``, which is how gunicorn tells the app where a connection came in."""
import dataclasses
import datetime
import os
import re

import importlib.metadata

import falcon.testing
import pytest

from affix import SCANNED, create_app
from affix.app.settings import Settings, SettingsError
from affix.plugins.clamav import ScanOptions
from affix.storage.outbox import Outbox
from support.cli import affix
from support.clocks import Clock
from support.client import post, upload, uploaded
from support.defaults import FROZEN_NOW
from support.errors import UNAVAILABLE, assert_error
from support.inspectors import Inspecting, Recorder
from support import tus
from support.scrape import metrics_listener, scrape_in_process
from support.webhooks import outbox_entries, subscribe
from support.work_packages import created

UPLOADS = "/api/v3/attachments"
ATTACHMENT = "/api/v3/attachments/{attachment_id:id}"


@pytest.fixture
def listener():
    with metrics_listener() as listener:
        yield listener


@pytest.fixture
def clock():
    return Clock(FROZEN_NOW)


@pytest.fixture
def metered(settings, plugin_manager, listener, clock):
    """(client, settings) of an app whose metrics listener is ``listener``."""
    port = listener.getsockname()[1]
    settings = dataclasses.replace(settings, metrics_bind=f"127.0.0.1:{port}")
    app = create_app(settings, plugin_manager=plugin_manager, clock=clock)
    return falcon.testing.TestClient(app), settings


@pytest.fixture
def client(metered):
    # conftest's people and stored share this app's database
    return metered[0]


def test_requests_are_counted_by_route_template_and_status(client, people, listener):
    first = uploaded(client, people, "ada", content=b"a" * 100)
    uploaded(client, people, "ada", content=b"b" * 2500,
             path=f"/api/v3/work_packages/{created(client, people, 'ada')}/attachments")
    assert client.simulate_get(f"{UPLOADS}/{first}", headers=people.auth("ada")).status == (
        falcon.HTTP_200)
    assert client.simulate_get(f"{UPLOADS}/{first + 1000}",
                               headers=people.auth("ada")).status_code == 404
    assert client.simulate_get(f"{UPLOADS}/{first}").status_code == 401
    assert client.simulate_get("/api/v3/no/such/path/secret-text").status_code == 404
    assert upload(client, people, "eve").status_code == 403

    scraped = scrape_in_process(client, listener)

    requests = {
        ("POST", UPLOADS, "200"): 1,
        ("POST", "/api/v3/work_packages", "201"): 1,
        ("POST", "/api/v3/work_packages/{container_id:id}/attachments", "200"): 1,
        ("GET", ATTACHMENT, "200"): 1,
        ("GET", ATTACHMENT, "404"): 1,
        ("GET", ATTACHMENT, "401"): 1,
        ("GET", "unmatched", "404"): 1,
        ("POST", UPLOADS, "403"): 1,
    }
    counted = {
        (labels["method"], labels["route"], labels["status"]): value
        for (name, label_set), value in scraped.samples.items()
        if name == "affix_http_requests_total" for labels in [dict(label_set)]
    }
    assert counted == requests
    # the paths the clients wrote are never a label value
    assert not any(re.search(r"/\d|secret", route) for route in scraped.label_values("route"))
    assert scraped.value("affix_http_request_duration_seconds_count",
                         method="GET", route=ATTACHMENT) == 3
    assert scraped.value("affix_http_requests_in_progress") == 0
    assert {reason: scraped.value("affix_refusals_total", reason=reason)
            for reason in scraped.label_values("reason")} == {
        "NotFound": 2, "Unauthenticated": 1, "MissingPermission": 1}
    assert scraped.value("affix_upload_size_bytes_count") == 2
    assert scraped.value("affix_upload_size_bytes_sum") == 2600
    assert scraped.value("affix_upload_size_bytes_bucket", le="1024.0") == 1
    assert scraped.value("affix_upload_size_bytes_bucket", le="16384.0") == 2
    assert scraped.value("affix_upload_duration_seconds_count") == 2
    assert scraped.value("affix_backend_errors_total", backend="database") == 0
    assert scraped.value("affix_backend_errors_total", backend="storage") == 0


def test_a_resumable_upload_is_counted_once_with_its_whole_size_from_creation_to_finish(
        client, people, listener, clock):
    auth = people.auth("ada")
    path = tus.created(client, auth, 3000)
    clock.now = FROZEN_NOW + datetime.timedelta(seconds=40)
    assert tus.patch(client, auth, path, 0, b"a" * 1000).status_code == 204
    clock.now = FROZEN_NOW + datetime.timedelta(seconds=90)
    assert tus.patch(client, auth, path, 1000, b"b" * 2000).status_code == 204
    # the client's retry of its last PATCH, whose answer it never saw, stores nothing again
    assert tus.patch(client, auth, path, 1000, b"b" * 2000).status_code == 204
    # created with all its bytes: stored by its creation, at once
    assert tus.create(client, auth, 5, body=b"whole").status_code == 201

    scraped = scrape_in_process(client, listener)

    assert scraped.value("affix_upload_size_bytes_count") == 2
    assert scraped.value("affix_upload_size_bytes_sum") == 3005
    assert scraped.value("affix_upload_duration_seconds_count") == 2
    # a resumable upload takes from its creation to the PATCH that finished it
    assert scraped.value("affix_upload_duration_seconds_sum") == 90
    assert scraped.value("affix_upload_duration_seconds_bucket", le="60.0") == 1
    assert scraped.value("affix_upload_duration_seconds_bucket", le="300.0") == 2


# falcon.testing's WSGI checker warns of any method HTTP/1.1 does not define
@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")
def test_a_method_nobody_uses_is_counted_as_other(client, people, listener):
    assert client.simulate_request("PROPFIND", UPLOADS,
                                   headers=people.auth("ada")).status_code == 405

    scraped = scrape_in_process(client, listener)

    assert scraped.value("affix_http_requests_total", method="other", route=UPLOADS,
                         status="405") == 1
    assert scraped.label_values("method") == {"other"}


def test_the_metrics_are_never_on_the_api_listener(client, people):
    # no gunicorn.socket: the request came in on the API's listener
    response = client.simulate_get("/metrics", headers=people.auth("ada"))

    assert_error(response, 404, "NotFound", "The requested resource could not be found.")


def test_the_metrics_listener_serves_nothing_but_the_metrics(client, people, listener, stored):
    before = stored.snapshot()

    for method, path in [("GET", "/api/v3"), ("GET", "/health"), ("POST", UPLOADS),
                         ("GET", "/metrics/")]:
        response = client.simulate_request(method, path, headers=people.auth("ada"),
                                           extras={"gunicorn.socket": listener})
        assert (response.status_code, response.text) == (
            404, "Not found: metrics are at /metrics.\n")
    assert stored.snapshot() == before
    # the scrape itself is no request of the API
    assert scrape_in_process(client, listener).value(
        "affix_http_requests_total", method="GET", route="/api/v3", status="200") is None


def test_no_metrics_without_the_setting(app, listener):
    # conftest's app: no AFFIX_METRICS_BIND, so a request on any listener is the API's
    response = falcon.testing.TestClient(app).simulate_get(
        "/metrics", extras={"gunicorn.socket": listener})

    assert_error(response, 404, "NotFound", "The requested resource could not be found.")


def test_awaiting_cleanup_counts_unclaimed_uploads_older_than_the_grace_period(
        metered, people, listener, clock):
    client, settings = metered
    grace_period = datetime.timedelta(minutes=settings.grace_period_minutes)
    old = [uploaded(client, people, "ada") for _ in range(3)]
    created(client, people, "ada", attachment_ids=old[:1])
    clock.now = FROZEN_NOW + datetime.timedelta(minutes=30)
    uploaded(client, people, "ada")

    def awaiting_at(moment):
        clock.now = moment
        return scrape_in_process(client, listener).value("affix_attachments_awaiting_cleanup")

    assert awaiting_at(FROZEN_NOW + grace_period) == 0
    # the claimed one never waits for cleanup; the later upload is not old enough yet
    assert awaiting_at(FROZEN_NOW + grace_period + datetime.timedelta(seconds=1)) == 2
    assert awaiting_at(FROZEN_NOW + grace_period + datetime.timedelta(minutes=31)) == 3


def test_the_build_is_a_metric_of_its_own(client, listener):
    scraped = scrape_in_process(client, listener)

    assert scraped.value("affix_build_info",
                         version=importlib.metadata.version("affix")) == 1


def test_the_webhook_backlog_and_its_failing_deliveries_are_counted(
        client, people, listener, catalog):
    subscribe(catalog, "http://127.0.0.1:9/hooks", ["attachment.created"], FROZEN_NOW)
    for _ in range(3):
        uploaded(client, people, "ada")
    delivered, failed, _ = outbox_entries(catalog)
    with catalog.database.connection_context():
        # what `affix webhooks run` records after each attempt
        Outbox(catalog).delivered(delivered.id, FROZEN_NOW)
        Outbox(catalog).failed(failed.id, FROZEN_NOW + datetime.timedelta(minutes=1),
                               "connection refused")

    scraped = scrape_in_process(client, listener)

    assert scraped.value("affix_webhook_deliveries_waiting") == 2
    assert scraped.value("affix_webhook_deliveries_failing") == 1


def test_inspected_uploads_are_counted_by_outcome(metered, people, listener, plugin_manager,
                                                   stored):
    client, _ = metered
    plugin_manager.register(Inspecting(
        Recorder(SCANNED), Recorder(None), Recorder("Not this one."), Recorder(fails_in="feed"),
        Recorder(fails_in="verdict")))
    statuses = [upload(client, people, "ada", content=content).status_code
                for content in (b"clean", b"fine", b"refused", b"feed fails", b"verdict fails")]
    plugin_manager.register(Inspecting(fails=True), name="broken")
    statuses.append(upload(client, people, "ada", content=b"the hook fails").status_code)

    scraped = scrape_in_process(client, listener)

    assert statuses == [200, 200, 422, 503, 503, 503]
    assert {outcome: scraped.value("affix_upload_inspections_total", outcome=outcome)
            for outcome in ("scanned", "accepted", "refused", "failed")} == {
        "scanned": 1, "accepted": 1, "refused": 1, "failed": 3}
    assert sorted(size for _, _, size, _, _ in stored.rows()) == [len(b"fine"), len(b"clean")]


def test_uploads_nobody_inspects_are_not_counted(client, people, listener):
    uploaded(client, people, "ada")

    scraped = scrape_in_process(client, listener)

    assert {outcome: scraped.value("affix_upload_inspections_total", outcome=outcome)
            for outcome in ("scanned", "accepted", "refused", "failed")} == {
        "scanned": 0, "accepted": 0, "refused": 0, "failed": 0}


def test_with_scanning_on_the_scan_backlog_and_the_quarantine_are_counted(
        settings, plugin_manager, listener, clock, people, catalog):
    port = listener.getsockname()[1]
    scanning = dataclasses.replace(settings, metrics_bind=f"127.0.0.1:{port}",
                                   scan=ScanOptions(mode="after", clamd="127.0.0.1:1"))
    client = falcon.testing.TestClient(
        create_app(scanning, plugin_manager=plugin_manager, clock=clock))
    ids = [uploaded(client, people, "ada") for _ in range(5)]
    Attachment = catalog.Attachment
    with catalog.database.connection_context():
        for attachment_id, status in zip(ids, ["scanned", "quarantined", "rescan"]):
            Attachment.update(status=status).where(Attachment.id == attachment_id).execute()

    scraped = scrape_in_process(client, listener)

    # two uploaded, one marked for a rescan
    assert scraped.value("affix_attachments_awaiting_scan") == 3
    assert scraped.value("affix_attachments_quarantined") == 1


def test_without_scanning_there_is_no_scan_backlog(client, people, listener):
    uploaded(client, people, "ada")

    scraped = scrape_in_process(client, listener)

    assert scraped.value("affix_attachments_awaiting_scan") is None
    assert scraped.value("affix_attachments_quarantined") is None
    assert scraped.value("affix_attachments_awaiting_cleanup") == 0


@pytest.mark.sqlite_only("the database file is replaced by a folder, which SQLite cannot open")
def test_a_database_out_of_reach_is_counted_and_the_scrape_still_answers(
        metered, people, listener):
    client, settings = metered
    database_file = settings.database_url.removeprefix("sqlite:///")
    moved = database_file + ".away"
    os.rename(database_file, moved)
    os.mkdir(database_file)
    try:
        response = post(client, people, ("x", "multipart/form-data; boundary=b"))
        scraped = scrape_in_process(client, listener)
    finally:
        os.rmdir(database_file)
        os.rename(moved, database_file)

    assert_error(response, 503, "ServiceUnavailable", UNAVAILABLE)
    assert scraped.value("affix_backend_errors_total", backend="database") == 1
    assert scraped.value("affix_backend_errors_total", backend="storage") == 0
    # 503 is no refusal of the client's request
    assert scraped.label_values("reason") == set()
    # asked of the database at scrape time, it is left out rather than failing the scrape
    assert scraped.value("affix_attachments_awaiting_cleanup") is None


@pytest.mark.parametrize("raw, problem", [
    ("9464", "AFFIX_METRICS_BIND must be HOST:PORT (127.0.0.1:9464), not '9464'"),
    (":9464", "AFFIX_METRICS_BIND must be HOST:PORT (127.0.0.1:9464), not ':9464'"),
    ("127.0.0.1:http", "AFFIX_METRICS_BIND must be HOST:PORT (127.0.0.1:9464), not "
                       "'127.0.0.1:http'"),
    ("127.0.0.1:0", "AFFIX_METRICS_BIND must be HOST:PORT (127.0.0.1:9464), not '127.0.0.1:0'"),
    ("127.0.0.1:65536", "AFFIX_METRICS_BIND must be HOST:PORT (127.0.0.1:9464), not "
                        "'127.0.0.1:65536'"),
])
def test_an_unusable_metrics_bind_is_refused(raw, problem):
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({"AFFIX_METRICS_BIND": raw})
    assert str(refused.value) == problem


def test_metrics_are_off_unless_asked_for():
    assert Settings.from_environ({}).metrics_bind is None
    assert Settings.from_environ({"AFFIX_METRICS_BIND": " "}).metrics_bind is None
    assert Settings.from_environ(
        {"AFFIX_METRICS_BIND": "[::1]:9464"}).metrics_bind == "[::1]:9464"


def test_serve_refuses_metrics_on_the_apis_port(environ, capsys):
    status, _ = affix({**environ, "AFFIX_METRICS_BIND": "127.0.0.1:8000"},
                      "serve", "--bind", "0.0.0.0:8000")

    assert status == 1
    assert capsys.readouterr().err == (
        "affix: error: AFFIX_METRICS_BIND (127.0.0.1:8000) needs a port of its own, not the one "
        "of --bind 0.0.0.0:8000\n")
