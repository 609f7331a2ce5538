"""Webhooks as a test sees them: subscribing, the outbox read back, the documented
verification of a signature, and the events a receiver was sent."""
import json
import runpy

from affix.storage.outbox import Outbox

from .processes import REPO_ROOT

# a secret of the tests' own, given to `affix webhooks add --secret` or to Outbox.subscribe
SECRET = "a-receivers-shared-secret"
# the file the webhooks guide includes, which a receiver copies
VERIFY_EXAMPLE = REPO_ROOT / "docs" / "examples" / "webhooks" / "verify.py"


def subscribe(catalog, url, events, now, secret=SECRET) -> int:
    with catalog.database.connection_context():
        return Outbox(catalog).subscribe(url, secret, events, now).id


def outbox(catalog):
    """Every outbox row, oldest first, as (subscription id, event, attachment id, delivered)."""
    Entry = Outbox(catalog).OutboxEntry
    with catalog.database.connection_context():
        return [(entry.subscription_id, entry.event, entry.attachment_id,
                 entry.delivered_at is not None)
                for entry in Entry.select().order_by(Entry.id)]


def outbox_entries(catalog):
    """The outbox's rows themselves, oldest first."""
    Entry = Outbox(catalog).OutboxEntry
    with catalog.database.connection_context():
        return list(Entry.select().order_by(Entry.id))


def documented_verify():
    """The webhooks guide's ``verify(secret, headers, body, now=None)``, run as it stands."""
    return runpy.run_path(str(VERIFY_EXAMPLE))["verify"]


def events_by_attachment(deliveries) -> dict:
    """attachment id -> the event types delivered for it, in the order they arrived."""
    arrived = {}
    for delivery in deliveries:
        document = json.loads(delivery.body)
        arrived.setdefault(document["attachment"]["id"], []).append(document["type"])
    return arrived
