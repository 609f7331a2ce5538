"""Webhook subscriptions and the outbox of their deliveries (tables of migration 4).

An event is written here in the transaction of the change it reports, one row for each
subscription that wants it, so that a committed change always has its deliveries waiting and a
rolled-back one has none. Workers take due rows under a lease (and, on PostgreSQL, a row lock
that other workers skip), so that several of them never deliver the same row at once, and never
an attachment's event before the earlier events of that attachment, for that subscription,
were delivered.
"""
import datetime
from collections.abc import Callable, Iterable

import peewee

from affix.storage.migrations import dialect
from affix.storage.models import BaseModel, Catalog, bind_model, quote

# the statements of every transaction that writes an event, written once: peewee would build
# them anew each time, at several times the cost of running them
SUBSCRIPTIONS_SQL = 'SELECT "id", "events" FROM "webhook_subscriptions"'
ENQUEUED_COLUMNS = ("subscription_id", "event_id", "event", "attachment_id", "body", "created_at",
                    "attempts", "next_attempt_at")


class Subscription(BaseModel):
    url = peewee.TextField()
    # HMAC keys are needed in plain to sign: stored as given
    secret = peewee.CharField(max_length=255)
    # the event names, separated by spaces
    events = peewee.TextField()
    created_at = peewee.DateTimeField()
    # set by Outbox.subscriptions, not columns: its undelivered events, and the error of the
    # oldest of them that failed
    waiting: int
    last_error: str | None

    class Meta:
        table_name = "webhook_subscriptions"

class OutboxEntry(BaseModel):
    # no foreign key: the database would lock the subscription's row for every event
    # written (one hot row for every upload), and fail an upload whose event was written
    # while the subscription was being removed. Such an event is left without its
    # subscription: never delivered, and pruned.
    subscription_id = peewee.BigIntegerField()
    # the same for every subscription's copy of one event: what receivers de-duplicate on
    event_id = peewee.CharField(max_length=36)
    event = peewee.CharField(max_length=100)
    attachment_id = peewee.BigIntegerField()
    # the exact bytes every attempt sends (UTF-8), so that a retry signs what the first
    # attempt signed
    body = peewee.TextField()
    created_at = peewee.DateTimeField()
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField()
    # a worker has it until then; after that it is due again (that worker died)
    lease_until = peewee.DateTimeField(null=True)
    delivered_at = peewee.DateTimeField(null=True)
    last_error = peewee.TextField(null=True)
    # set by Outbox.claim_due, not a column
    subscription: Subscription

    class Meta:
        table_name = "webhook_outbox"


class Outbox:
    """The webhook tables of one catalogue's database, and what affix does with them. Every
    method runs on the caller's connection; those that write take a transaction of their own,
    except :meth:`enqueue`, which must run inside the caller's."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.database = catalog.database
        self.Subscription = bind_model(Subscription, self.database, catalog.bound)
        self.OutboxEntry = bind_model(OutboxEntry, self.database, catalog.bound)
        columns = ", ".join(quote(name) for name in ENQUEUED_COLUMNS)
        params = ", ".join(self.database.param for _ in ENQUEUED_COLUMNS)
        self._enqueue_sql = f'INSERT INTO "webhook_outbox" ({columns}) VALUES ({params})'

    def subscribe(self, url: str, secret: str, events: Iterable[str],
                  now: datetime.datetime) -> Subscription:
        with self.catalog.write_transaction():
            return self.Subscription.create(
                url=url, secret=secret, events=" ".join(events), created_at=now)

    def subscriptions(self) -> list[Subscription]:
        """Every subscription, oldest first, each with ``waiting`` (its undelivered events)
        and ``last_error`` (of the oldest of them that failed, or None)."""
        Entry = self.OutboxEntry
        waiting: dict[int, tuple[int, str | None]] = {}
        undelivered = (Entry.select(Entry.subscription_id, Entry.last_error)
                       .where(Entry.delivered_at.is_null()).order_by(Entry.id))
        for entry in undelivered:
            count, error = waiting.get(entry.subscription_id, (0, None))
            waiting[entry.subscription_id] = (count + 1, error or entry.last_error)
        subscriptions = list(self.Subscription.select().order_by(self.Subscription.id))
        for subscription in subscriptions:
            subscription.waiting, subscription.last_error = waiting.get(subscription.id, (0, None))
        return subscriptions

    def receivers(self) -> list[tuple[int, str]]:
        """(id, URL) of every subscription, oldest first, read without the outbox's rows."""
        Subscription = self.Subscription
        return [(subscription.id, subscription.url) for subscription in
                Subscription.select(Subscription.id, Subscription.url).order_by(Subscription.id)]

    def unsubscribe(self, subscription_id: int) -> int | None:
        """Remove a subscription and its undelivered events; how many of those there were, or
        None when there is no such subscription."""
        Entry = self.OutboxEntry
        with self.catalog.write_transaction():
            subscription = self.catalog.get(self.Subscription, subscription_id)
            if subscription is None:
                return None
            waiting = (Entry.select().where((Entry.subscription_id == subscription.id)
                                            & Entry.delivered_at.is_null()).count())
            Entry.delete().where(Entry.subscription_id == subscription.id).execute()
            subscription.delete_instance()
        return waiting

    def enqueue(self, event: str, attachment_id: int, event_id: str, body: Callable[[], str],
                now: datetime.datetime) -> int:
        """Write ``event`` for every subscription that wants it, in the caller's transaction;
        how many rows that made. ``body`` is called for the body only when someone wants it."""
        wanting = [subscription_id for subscription_id, events
                   in self.database.execute_sql(SUBSCRIPTIONS_SQL).fetchall()
                   if event in events.split()]
        if wanting:
            text = body()
            moment = self.OutboxEntry.created_at.db_value(now)
            for subscription_id in wanting:
                self.database.execute_sql(self._enqueue_sql, (
                    subscription_id, event_id, event, attachment_id, text, moment, 0, moment))
        return len(wanting)

    def claim_due(self, now: datetime.datetime, lease_until: datetime.datetime,
                  per_subscription: int, subscriptions: int,
                  excluding: Iterable[int] = ()) -> list[OutboxEntry]:
        """Lease to the caller until ``lease_until`` due entries, oldest first, each with its
        ``subscription``: of at most ``subscriptions`` subscriptions, none of ``excluding``,
        at most ``per_subscription`` of each, out of the oldest that many in all. An entry is
        due when it is undelivered, its retry time has come, no live lease holds it, and no
        earlier entry of the same subscription and attachment is undelivered (so at most one
        entry per attachment and subscription is ever out at a time)."""
        if subscriptions < 1:
            return []
        Entry, Subscription = self.OutboxEntry, self.Subscription
        Earlier = Entry.alias()
        earlier_waiting = Earlier.select(peewee.SQL("1")).where(
            (Earlier.subscription_id == Entry.subscription_id)
            & (Earlier.attachment_id == Entry.attachment_id)
            & Earlier.delivered_at.is_null() & (Earlier.id < Entry.id))
        query = (Entry.select()
                 .where(Entry.delivered_at.is_null() & (Entry.next_attempt_at <= now)
                        & Entry.subscription_id.in_(Subscription.select(Subscription.id))
                        & Entry.subscription_id.not_in(list(excluding))
                        & (Entry.lease_until.is_null() | (Entry.lease_until <= now))
                        & ~peewee.fn.EXISTS(earlier_waiting))
                 .order_by(Entry.id).limit(per_subscription * subscriptions))
        if dialect(self.database) == "postgresql":
            # another worker's claim in progress holds its rows: skip them rather than wait
            query = query.for_update(skip_locked=True)
        with self.catalog.write_transaction():
            entries: list[OutboxEntry] = []
            taken: dict[int, int] = {}
            for entry in query:
                count = taken.get(entry.subscription_id, 0)
                if count < per_subscription and (count or len(taken) < subscriptions):
                    taken[entry.subscription_id] = count + 1
                    entries.append(entry)
            if entries:
                (Entry.update(lease_until=lease_until)
                 .where(Entry.id.in_([entry.id for entry in entries])).execute())
            subscriptions_by_id = {
                subscription.id: subscription for subscription in Subscription.select()
                .where(Subscription.id.in_(set(taken)))}
        for entry in entries:
            entry.subscription = subscriptions_by_id[entry.subscription_id]
        return entries

    def release(self, entry_ids: Iterable[int], lease_until: datetime.datetime) -> None:
        """Hand back entries leased until ``lease_until`` and not tried: due at once for any
        worker. A lease that ran out and was taken by another worker is not this one's."""
        Entry = self.OutboxEntry
        with self.catalog.write_transaction():
            (Entry.update(lease_until=None)
             .where(Entry.id.in_(entry_ids) & (Entry.lease_until == lease_until)
                    & Entry.delivered_at.is_null()).execute())

    def delivered(self, entry_id: int, now: datetime.datetime) -> None:
        Entry = self.OutboxEntry
        with self.catalog.write_transaction():
            (Entry.update(delivered_at=now, lease_until=None, attempts=Entry.attempts + 1,
                          last_error=None)
             .where(Entry.id == entry_id).execute())

    def failed(self, entry_id: int, retry_at: datetime.datetime, error: str) -> None:
        """An attempt failed: due again at ``retry_at``. A copy another worker delivered in
        the meantime (this worker's lease ran out) stays delivered."""
        Entry = self.OutboxEntry
        with self.catalog.write_transaction():
            (Entry.update(next_attempt_at=retry_at, lease_until=None,
                          attempts=Entry.attempts + 1, last_error=error)
             .where((Entry.id == entry_id) & Entry.delivered_at.is_null()).execute())

    def prune(self, delivered_before: datetime.datetime) -> int:
        """Forget the entries delivered before ``delivered_before``, and those whose
        subscription is gone; how many."""
        Entry = self.OutboxEntry
        with self.catalog.write_transaction():
            pruned: int = Entry.delete().where(
                (Entry.delivered_at < delivered_before)
                | Entry.subscription_id.not_in(self.Subscription.select(self.Subscription.id))
            ).execute()
        return pruned
