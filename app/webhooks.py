"""Webhooks: the events affix writes to the outbox, how a delivery is signed, and the worker
(``affix webhooks run``) that delivers them, at least once, in order per attachment."""
import calendar
import dataclasses
import datetime
import hashlib
import hmac
import http.client
import json
import logging
import urllib.parse
import uuid

import peewee

from affix.app.representers import timestamp
from affix.storage.models import utc_now
from affix.storage.outbox import Outbox

log = logging.getLogger(__name__)

# what a subscription can ask for; a subscription without --event gets all of them
EVENTS = ("attachment.created", "attachment.claimed", "attachment.deleted",
          "attachment.scanned", "attachment.quarantined")

ID_HEADER = "Affix-Webhook-Id"
EVENT_HEADER = "Affix-Webhook-Event"
TIMESTAMP_HEADER = "Affix-Webhook-Timestamp"
SIGNATURE_HEADER = "Affix-Webhook-Signature"
SIGNATURE_VERSION = "v1"


class WebhookEvents:
    """Writes events to the outbox in the transaction of the change they report: call these
    inside it."""

    def __init__(self, outbox: Outbox, clock):
        self._outbox = outbox
        self._clock = clock

    def created(self, attachment, user):
        self._record("attachment.created", attachment, user)

    def claimed(self, attachment, user):
        self._record("attachment.claimed", attachment, user)

    def deleted(self, attachment, user):
        """``user`` is None when the command line deleted it (affix quarantine delete)."""
        self._record("attachment.deleted", attachment, user)

    def scanned(self, attachment):
        """The virus scanner found nothing in ``attachment``: nobody's change, no user."""
        self._record("attachment.scanned", attachment, None)

    def quarantined(self, attachment):
        """The virus scanner found malware in ``attachment``."""
        self._record("attachment.quarantined", attachment, None)

    def _record(self, event, attachment, user):
        now = self._clock()
        event_id = str(uuid.uuid4())
        self._outbox.enqueue(event, attachment.id, event_id,
                             lambda: event_body(event_id, event, now, attachment, user), now)


def event_body(event_id, event, occurred_at, attachment, user) -> str:
    """The JSON document a subscriber receives (see the README's Webhooks section)."""
    container = None
    if attachment.container_type is not None:
        container = {"type": attachment.container_type, "id": attachment.container_id}
    return json.dumps({
        "id": event_id,
        "type": event,
        "occurredAt": timestamp(occurred_at),
        "userId": None if user is None else user.id,
        "attachment": {
            "id": attachment.id,
            "fileName": attachment.file_name,
            "fileSize": attachment.file_size,
            "contentType": attachment.content_type,
            "digest": {"algorithm": "md5", "hash": attachment.md5},
            "status": attachment.status,
            "authorId": attachment.author_id,
            "createdAt": timestamp(attachment.created_at),
            "container": container,
        },
    }, separators=(",", ":"), ensure_ascii=False)


def signature(secret: str, unix_time: int, body: bytes) -> str:
    """HMAC-SHA256, keyed with the subscription's secret, over the timestamp, a dot and the
    exact body: a captured delivery cannot be replayed later with a new timestamp."""
    signed = str(unix_time).encode() + b"." + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def delivery_headers(entry, body: bytes, now: datetime.datetime) -> dict:
    unix_time = calendar.timegm(now.utctimetuple())
    return {
        "Content-Type": "application/json",
        "User-Agent": "affix-webhooks",
        ID_HEADER: entry.event_id,
        EVENT_HEADER: entry.event,
        TIMESTAMP_HEADER: str(unix_time),
        SIGNATURE_HEADER: signature(entry.subscription.secret, unix_time, body),
    }


class DeliveryFailed(Exception):
    """The receiver did not take the delivery; the message says why, for the outbox."""


def post(url, headers, body, timeout):
    """POST ``body``; returns when the receiver answered 2xx, raises DeliveryFailed otherwise.
    A redirect is a failure too: a receiver that moved is told about by changing the
    subscription, and following it would send the body where nobody subscribed it to."""
    parts = urllib.parse.urlsplit(url)
    connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                        else http.client.HTTPConnection)
    connection = connection_class(parts.netloc, timeout=timeout)
    try:
        connection.request("POST", urllib.parse.urlunsplit(("", "", parts.path or "/",
                                                            parts.query, "")),
                           body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryFailed(f"{type(error).__name__}: {error}") from None
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}")


@dataclasses.dataclass(frozen=True)
class DeliveryPolicy:
    # seconds a receiver has to answer one delivery
    timeout: float = 10
    # entries one worker leases at a time, delivered one after the other
    batch: int = 10
    first_retry: datetime.timedelta = datetime.timedelta(seconds=5)
    max_backoff: datetime.timedelta = datetime.timedelta(hours=1)
    # delivered entries are kept this long (for `affix webhooks list` and for looking into)
    keep_delivered: datetime.timedelta = datetime.timedelta(days=7)
    prune_every: datetime.timedelta = datetime.timedelta(minutes=10)

    @property
    def lease(self) -> datetime.timedelta:
        """Longer than a whole batch can take: a live worker never loses its lease."""
        return datetime.timedelta(seconds=2 * self.batch * self.timeout)

    def backoff(self, failures: int) -> datetime.timedelta:
        """The wait after the ``failures``-th failed attempt: doubling, at most max_backoff."""
        doublings = min(failures - 1, 32)
        return min(self.max_backoff, self.first_retry * 2 ** doublings)


class WebhookWorker:
    """Delivers the outbox. Several workers (on several machines) may run at once."""

    def __init__(self, catalog, policy=DeliveryPolicy(), *, clock=utc_now, send=post):
        self._database = catalog.database
        self._outbox = Outbox(catalog)
        self._policy = policy
        self._clock = clock
        self._send = send
        self._pruned_at = None

    def deliver_due(self, stopping=None) -> int:
        """Prune when it is time, then lease the due entries and try each once; how many were
        tried. Once ``stopping`` is set, the batch ends after the delivery under way and the
        entries not tried are handed back for any worker, rather than waiting out the lease."""
        now = self._clock()
        lease_until = now + self._policy.lease
        with self._database.connection_context():
            if self._pruned_at is None or now - self._pruned_at >= self._policy.prune_every:
                pruned = self._outbox.prune(now - self._policy.keep_delivered)
                if pruned:
                    log.info("pruned %d delivered webhook events", pruned)
                self._pruned_at = now
            entries = self._outbox.claim_due(now, lease_until, self._policy.batch)
        for tried, entry in enumerate(entries):
            if stopping is not None and stopping.is_set():
                with self._database.connection_context():
                    self._outbox.release([left.id for left in entries[tried:]], lease_until)
                return tried
            self._attempt(entry)
        return len(entries)

    def _attempt(self, entry):
        body = entry.body.encode()
        try:
            self._send(entry.subscription.url, delivery_headers(entry, body, self._clock()), body,
                       self._policy.timeout)
        except DeliveryFailed as failure:
            retry_at = self._clock() + self._policy.backoff(entry.attempts + 1)
            log.warning("webhook %s of %s to %s failed (%s); next attempt at %s",
                        entry.event_id, entry.event, entry.subscription.url, failure, retry_at)
            with self._database.connection_context():
                self._outbox.failed(entry.id, retry_at, str(failure))
            return
        with self._database.connection_context():
            self._outbox.delivered(entry.id, self._clock())

    def run(self, stopping, poll_interval):
        """Deliver until ``stopping`` (a threading.Event, or StopSignals) is set, looking for new
        events every ``poll_interval`` seconds when there is nothing to do. A database that is
        away (a restart) is waited for, not given up on."""
        while not stopping.is_set():
            try:
                delivered = self.deliver_due(stopping)
            except (peewee.OperationalError, peewee.InterfaceError) as error:
                log.warning("the database failed (%s); trying again", error)
                delivered = 0
            if not delivered:
                stopping.wait(poll_interval)
