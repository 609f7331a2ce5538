"""Prometheus metrics (``prometheus_client``), served on a listener of their own.

Every registry and metric is made by :func:`create_app` for its app: nothing is registered in
``prometheus_client``'s global ``REGISTRY``. Under ``affix serve`` the app runs in several
gunicorn worker processes, each counting its own requests: there, prometheus_client's
multiprocess mode keeps each worker's values in a file of the metrics folder (made empty at each
start, see :func:`use_multiprocess_folder`), and a scrape, whichever worker answers it, adds up
every worker's files, including those of workers that have died since (their counts stay
counted; a dead worker's requests in progress are dropped by :func:`mark_worker_dead`, which
gunicorn's ``child_exit`` calls).

A metric is an attribute of :class:`Metrics`, counted from a request's
:class:`~affix.app.http.request_facts.RequestFacts` in :meth:`Metrics.observe`; a count the facts do
not carry (a scan verdict, say) is a new attribute here, counted where it happens.
"""
import datetime
import importlib.metadata
import logging
import os
from pathlib import Path

import peewee
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client import multiprocess, values
from prometheus_client.core import GaugeMetricFamily

from affix.app.uploads.inspection import OUTCOMES
from affix.app.attachments.lifecycle import WAITING_FOR_SCAN
from affix.storage.models import QUARANTINED

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# prometheus_client reads its multiprocess folder from this variable
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
KiB, MiB = 1024, 1024 * 1024
UPLOAD_SIZE_BUCKETS = (KiB, 16 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB,
                       1024 * MiB)
UPLOAD_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
UNMATCHED_ROUTE = "unmatched"


class Metrics:
    """affix's metrics, registered in ``registry``; None in multiprocess mode, where the values
    live in the metrics folder and a :class:`~prometheus_client.multiprocess.MultiProcessCollector`
    reads them for a scrape."""

    def __init__(self, registry):
        self.requests = Counter(
            "affix_http_requests", "Requests answered, by route template and status.",
            ["method", "route", "status"], registry=registry)
        self.request_duration = Histogram(
            "affix_http_request_duration_seconds",
            "Time the app took to answer, by route template (sending a body not included).",
            ["method", "route"], registry=registry)
        self.in_progress = Gauge(
            "affix_http_requests_in_progress", "Requests being answered now.",
            registry=registry, multiprocess_mode="livesum")
        self.upload_size = Histogram(
            "affix_upload_size_bytes", "Sizes of the files stored by uploads.",
            buckets=UPLOAD_SIZE_BUCKETS, registry=registry)
        self.upload_duration = Histogram(
            "affix_upload_duration_seconds",
            "Time an upload took, from its request (a resumable upload's creation, a direct "
            "upload's preparation) to stored.",
            buckets=UPLOAD_DURATION_BUCKETS, registry=registry)
        self.refusals = Counter(
            "affix_refusals", "Requests refused (4xx), by HAL error identifier.",
            ["reason"], registry=registry)
        self.backend_errors = Counter(
            "affix_backend_errors",
            "Requests answered 503 or 507 because the database or the blob store failed.",
            ["backend"], registry=registry)
        self.inspections = Counter(
            "affix_upload_inspections",
            "Uploads inspected while they streamed (a virus scan among them), by outcome.",
            ["outcome"], registry=registry)
        # series known from the start, at 0: a rate over a series that appears at its first
        # error misses that error
        for backend in ("database", "storage"):
            self.backend_errors.labels(backend)
        for outcome in OUTCOMES:
            self.inspections.labels(outcome)
        # (method, route, status): the request counter's and the duration histogram's children
        self._children = {}

    def inspected(self, outcome):
        """Count an inspected upload's ``outcome`` (one of inspection.OUTCOMES)."""
        self.inspections.labels(outcome).inc()

    def started(self):
        self.in_progress.inc()

    def observe(self, facts):
        """Count a finished request."""
        self.in_progress.dec()
        route = facts.route or UNMATCHED_ROUTE
        key = (facts.method, route, facts.status)
        children = self._children.get(key)
        if children is None:
            # looked up once per kind of request: labels() costs more than the counting
            children = self._children[key] = (
                self.requests.labels(*key), self.request_duration.labels(facts.method, route))
        children[0].inc()
        children[1].observe(facts.duration)
        if facts.error is not None and facts.status < 500:
            self.refusals.labels(facts.error).inc()
        if facts.failed_backend is not None:
            self.backend_errors.labels(facts.failed_backend).inc()
        if facts.stored is not None:
            self.upload_size.observe(facts.stored.file_size)
            self.upload_duration.observe(
                facts.duration if facts.upload_seconds is None else facts.upload_seconds)


class BuildInfo:
    """A collector of ``affix_build_info``, always 1, whose label says which affix answers:
    a dashboard sees a rollout, and an alert sees two nodes on different versions."""

    def __init__(self, version):
        self.version = version

    def collect(self):
        info = GaugeMetricFamily("affix_build_info", "The version of affix, as a label.",
                                 labels=["version"])
        info.add_metric([self.version], 1)
        yield info


class DatabaseCounts:
    """A collector that asks the database at scrape time how many rows wait for something:
    one indexed COUNT per gauge of ``gauges`` (name, help text, and the rows as a query made
    for the moment of the scrape). A count the database does not answer is left out of the
    scrape, whose other metrics still arrive: they matter most when the database is in
    trouble."""

    def __init__(self, catalog, gauges, clock):
        self.catalog = catalog
        self.gauges = gauges
        self.clock = clock

    def collect(self):
        now = self.clock()
        for name, documentation, rows in self.gauges:
            try:
                with self.catalog.database.connection_context():
                    count = rows(now).count()
            except (peewee.OperationalError, peewee.InterfaceError) as error:
                log.warning("metrics: the database did not answer %s: %s", name, error)
                continue
            yield GaugeMetricFamily(name, documentation, value=count)


def attachment_gauges(catalog, settings) -> list:
    """Gauges of :class:`DatabaseCounts`: the cleanup backlog (the index on the container
    starts with the column that is NULL for an unclaimed attachment), and, while scanning is on,
    the scan backlog and the quarantine (the index on the status)."""
    Attachment = catalog.Attachment
    grace_period = datetime.timedelta(minutes=settings.grace_period_minutes)
    gauges = [(
        "affix_attachments_awaiting_cleanup",
        "Unclaimed attachments older than the grace period (AFFIX_GRACE_PERIOD), which affix "
        "cleanup removes.",
        lambda now: Attachment.select().where(
            Attachment.container_type.is_null() & (Attachment.created_at < now - grace_period)),
    )]
    if settings.scan.enabled:
        gauges += [(
            "affix_attachments_awaiting_scan",
            "Attachments affix scan has yet to scan: uploaded unscanned, or marked for a rescan.",
            lambda now: Attachment.select().where(Attachment.status.in_(WAITING_FOR_SCAN)),
        ), (
            "affix_attachments_quarantined",
            "Attachments a virus scan found malware in, kept away from everyone.",
            lambda now: Attachment.select().where(Attachment.status == QUARANTINED),
        )]
    return gauges


def webhook_gauges(outbox) -> list:
    """Gauges of :class:`DatabaseCounts` for the webhooks' outbox (the index on
    ``delivered_at`` first): deliveries happen in ``affix webhooks run``, a process without
    metrics of its own, so what they left behind is counted here, from the table."""
    Entry = outbox.OutboxEntry
    waiting = Entry.delivered_at.is_null()
    return [(
        "affix_webhook_deliveries_waiting",
        "Webhook events not delivered yet: due now, or waiting for their retry.",
        lambda now: Entry.select().where(waiting),
    ), (
        "affix_webhook_deliveries_failing",
        "Webhook events not delivered yet whose last attempt failed (they are retried).",
        lambda now: Entry.select().where(waiting & (Entry.attempts > 0)),
    )]


def create_metrics(catalog, outbox, settings, clock, multiprocess_folder=None):
    """The app's :class:`Metrics` and the WSGI app that serves them, for scrapes; ``outbox``
    is the webhooks' (:class:`~affix.storage.outbox.Outbox`)."""
    scraped = CollectorRegistry()
    if multiprocess_folder is None:
        metrics = Metrics(scraped)
    else:
        if not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError("metrics of several processes need use_multiprocess_folder() "
                               "before the workers start")
        metrics = Metrics(None)
        multiprocess.MultiProcessCollector(scraped, path=str(multiprocess_folder))
    scraped.register(BuildInfo(importlib.metadata.version("affix")))
    scraped.register(DatabaseCounts(
        catalog, attachment_gauges(catalog, settings) + webhook_gauges(outbox), clock))
    return metrics, metrics_endpoint(make_wsgi_app(scraped))


def metrics_endpoint(exposition):
    """``/metrics`` (prometheus_client's exposition, which negotiates the format and the
    compression), and 404 for every other path."""

    def serve(environ, start_response):
        if environ.get("PATH_INFO") == METRICS_PATH:
            return exposition(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not found: metrics are at /metrics.\n"]

    return serve


def listener_port(environ):
    """The local port of the connection a request came in on, under gunicorn (None
    elsewhere): read from the socket, never from the Host header the client wrote."""
    connection = environ.get("gunicorn.socket")
    if connection is None:
        return None
    address = connection.getsockname()
    return address[1] if isinstance(address, tuple) else None


def serve_metrics_apart(api, metrics_app, metrics_port):
    """A WSGI app that answers requests that came in on the metrics listener (its port,
    ``AFFIX_METRICS_BIND``) with ``metrics_app`` and all others with ``api``: the metrics never
    on the API's port, the API never on the metrics'."""

    def dispatch(environ, start_response):
        if listener_port(environ) == metrics_port:
            return metrics_app(environ, start_response)
        return api(environ, start_response)

    return dispatch


def use_multiprocess_folder(folder: Path):
    """Make ``folder`` prometheus_client's multiprocess folder for this process and the
    workers it forks, emptied of an earlier run's files. prometheus_client chooses how it keeps
    values when it is imported, from the environment; affix decides at serve time, so the
    choice is made again here, before any metric exists."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_VARIABLE] = str(folder)
    values.ValueClass = values.get_value_class()


def mark_worker_dead(folder, pid):
    """gunicorn's ``child_exit``: a dead worker's requests in progress no longer count."""
    multiprocess.mark_process_dead(pid, str(folder))

