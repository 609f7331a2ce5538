"""Webhooks: the events affix writes to the outbox, how a delivery is signed, and the worker
(``affix webhooks run``) that delivers them, at least once, in order per attachment, each
within a deadline, each subscription in a lane of its own."""
import calendar
import concurrent.futures
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import http.client
import io
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
import uuid

import peewee

from affix.app.http.representers import timestamp
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
# the body of an answer is read only to see it end, in pieces of this size
ANSWER_READ_SIZE = 64 * 1024


class WebhookEvents:
    """Writes events to the outbox in the transaction of the change they report: call these
    inside it."""

    def __init__(self, *, outbox: Outbox, clock):
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
    """The JSON document a subscriber receives (see docs/guides/webhooks.md)."""
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


class Deadline:
    """One delivery's time in all, from connecting to the last byte of the answer."""

    def __init__(self, seconds):
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def remaining(self) -> float:
        """What is left of it, as the timeout of the next socket operation."""
        left = self._ends - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


class _DeadlineReader(io.RawIOBase):
    """The answer's bytes, each read given only what is left of the deadline: a timeout per
    read alone would let a receiver that drips its answer stretch the delivery forever."""

    def __init__(self, sock, deadline):
        self._sock = sock
        # the socket's own reader, which keeps the socket open until it is closed itself
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self):
        return True

    def readinto(self, buffer):
        self._sock.settimeout(self._deadline.remaining())
        return self._raw.readinto(buffer)

    def close(self):
        self._raw.close()
        super().close()


class _ReadableWithin:
    """What the response is built on instead of the socket: http.client asks it only for a
    reader."""

    def __init__(self, sock, deadline):
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode):
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _DeliveryConnection(http.client.HTTPConnection):
    """A connection whose every socket operation (connect, send, each read of the answer) gets
    only what is left of one deadline."""

    def __init__(self, netloc, deadline):
        super().__init__(netloc)
        self._deadline = deadline

    def connect(self):
        # not socket.create_connection: it gives each of the host's addresses the whole
        # timeout. Looking the name up is the system resolver's, within its own timeouts.
        failure = OSError(f"no address for {self.host}")
        for family, kind, protocol, _, address in socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, protocol)
            try:
                sock.settimeout(self._deadline.remaining())
                sock.connect(address)
            except OSError as error:
                sock.close()
                failure = error
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
            return
        raise failure

    def send(self, data):
        if self.sock is not None:
            self.sock.settimeout(self._deadline.remaining())
        super().send(data)

    def response_class(self, sock, *args, **kwargs):
        return http.client.HTTPResponse(_ReadableWithin(sock, self._deadline), *args, **kwargs)


class _TLSDeliveryConnection(_DeliveryConnection):
    """The same over TLS, the handshake within the deadline too (http.client's own HTTPS
    connection would give it the time that was left before connecting)."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, netloc, deadline):
        super().__init__(netloc, deadline)
        self._tls = ssl.create_default_context()

    def connect(self):
        super().connect()
        self.sock.settimeout(self._deadline.remaining())
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self.host)


def post(url, headers, body, timeout):
    """POST ``body``; returns when the receiver answered 2xx, the whole answer within
    ``timeout`` seconds of starting to connect, and raises DeliveryFailed otherwise. The
    connection is closed either way. A redirect is a failure too: a receiver that moved is
    told about by changing the subscription, and following it would send the body where nobody
    subscribed it to."""
    parts = urllib.parse.urlsplit(url)
    connection_class = _TLSDeliveryConnection if parts.scheme == "https" else _DeliveryConnection
    connection = None
    try:
        connection = connection_class(parts.netloc, Deadline(timeout))
        connection.request("POST", urllib.parse.urlunsplit(("", "", parts.path or "/",
                                                            parts.query, "")),
                           body=body, headers=headers)
        with connection.getresponse() as response:
            while response.read(ANSWER_READ_SIZE):
                pass
            status = response.status
    except TimeoutError:
        raise DeliveryFailed(f"TimeoutError: no complete answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryFailed(f"{type(error).__name__}: {error}") from None
    finally:
        if connection is not None:
            connection.close()
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}")


@dataclasses.dataclass(frozen=True)
class DeliveryPolicy:
    # seconds one delivery may take in all, from connecting to the last byte of the answer
    timeout: float = 10
    # entries of one subscription leased at a time, delivered one after the other
    batch: int = 10
    # subscriptions one worker delivers to at once, each in a thread of its own (its lane)
    lanes: int = 8
    first_retry: datetime.timedelta = datetime.timedelta(seconds=5)
    max_backoff: datetime.timedelta = datetime.timedelta(hours=1)
    # delivered entries are kept this long (for `affix webhooks list` and for looking into)
    keep_delivered: datetime.timedelta = datetime.timedelta(days=7)
    prune_every: datetime.timedelta = datetime.timedelta(minutes=10)

    @property
    def deadline(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.timeout)

    @property
    def lease(self) -> datetime.timedelta:
        """Twice what a lane's batch can take, each delivery ending by its deadline: a live
        worker never loses its lease."""
        return 2 * self.batch * self.deadline

    def backoff(self, failures: int) -> datetime.timedelta:
        """The wait after the ``failures``-th failed attempt: doubling, at most max_backoff."""
        doublings = min(failures - 1, 32)
        return min(self.max_backoff, self.first_retry * 2 ** doublings)


class WebhookWorker:
    """Delivers the outbox. Each subscription's due entries go to a lane of their own, a thread
    that delivers them one after the other: a receiver that is slow or away holds up its own
    subscription's events, and no other's. Several workers (on several machines) may run at
    once."""

    def __init__(self, catalog, policy=DeliveryPolicy(), *, clock=utc_now, send=post):
        self._database = catalog.database
        self._outbox = Outbox(catalog)
        self._policy = policy
        self._clock = clock
        self._send = send
        self._pruned_at = None

    def deliver_due(self) -> int:
        """One round: lease the due entries of as many subscriptions as there are lanes,
        deliver them, and return once every lane is done; how many entries were tried."""
        never = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(self._policy.lanes) as lanes:
            tried = [lanes.submit(self._deliver, batch, lease_until, never)
                     for batch, lease_until in self._lease(busy=())]
        return sum(lane.result() for lane in tried)

    def _lease(self, busy):
        """Prune when it is time, then lease the due entries of subscriptions not ``busy``, in
        a lane of this worker already: (one subscription's entries, their lease) for each."""
        now = self._clock()
        lease_until = now + self._policy.lease
        with self._database.connection_context():
            if self._pruned_at is None or now - self._pruned_at >= self._policy.prune_every:
                pruned = self._outbox.prune(now - self._policy.keep_delivered)
                if pruned:
                    log.info("pruned %d delivered webhook events", pruned)
                self._pruned_at = now
            entries = self._outbox.claim_due(now, lease_until, self._policy.batch,
                                             self._policy.lanes - len(busy), busy)
        batches = {}
        for entry in entries:
            batches.setdefault(entry.subscription_id, []).append(entry)
        return [(batch, lease_until) for batch in batches.values()]

    def _deliver(self, entries, lease_until, stopping) -> int:
        """A lane: try one subscription's leased entries in order, once each; how many were
        tried. The rest are handed back, due at once for any worker, once ``stopping`` is set,
        and when less of the lease is left than a delivery may take: past it, another worker
        may lease them, and they would be delivered twice."""
        for tried, entry in enumerate(entries):
            short = self._clock() + self._policy.deadline > lease_until
            if short or stopping.is_set():
                if short:
                    log.warning("the lease of %d webhook events ran short; handed back",
                                len(entries) - tried)
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
        events every ``poll_interval`` seconds, or as soon as a lane is free, when there is
        nothing to lease. Once stopping, each lane ends after the delivery under way and hands
        back the rest of its entries. A database that is away (a restart) is waited for, not
        given up on."""
        busy = {}  # subscription id -> its lane
        with concurrent.futures.ThreadPoolExecutor(
                self._policy.lanes, thread_name_prefix="affix-webhooks") as lanes:
            while not stopping.is_set():
                for subscription_id, lane in list(busy.items()):
                    if lane.done():
                        del busy[subscription_id]
                        with _waiting_out_database_failures():
                            lane.result()
                batches = []
                if len(busy) < self._policy.lanes:
                    with _waiting_out_database_failures():
                        batches = self._lease(busy)
                for batch, lease_until in batches:
                    busy[batch[0].subscription_id] = lanes.submit(
                        self._deliver, batch, lease_until, stopping)
                if batches:
                    continue
                if busy:
                    # not stopping.wait: the lanes ask it too, and would wait with it
                    concurrent.futures.wait(busy.values(), poll_interval,
                                            concurrent.futures.FIRST_COMPLETED)
                else:
                    stopping.wait(poll_interval)


@contextlib.contextmanager
def _waiting_out_database_failures():
    """A failed database (a restart) ends what it interrupted; the next round tries again."""
    try:
        yield
    except (peewee.OperationalError, peewee.InterfaceError) as error:
        log.warning("the database failed (%s); trying again", error)
