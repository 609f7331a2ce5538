"""Webhooks as a test sees them: subscribing, the outbox read back, the README's own
verification of a signature, and the events a receiver was sent."""
import json
import re

from affix.storage.outbox import Outbox

from .processes import REPO_ROOT

# a secret of the tests' own, given to `affix webhooks add --secret` or to Outbox.subscribe
SECRET = "a-receivers-shared-secret"
# the code block of the README that a receiver copies, after this line
VERIFY_SNIPPET_AFTER = "**Verifying a delivery**"


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


def readme_verify():
    """The README's ``verify(secret, headers, body, now=None)``, run exactly as written."""
    readme = (REPO_ROOT / "README.md").read_text()
    after = readme[readme.index(VERIFY_SNIPPET_AFTER):]
    code = re.search(r"```python\n(.*?)```", after, re.DOTALL).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the README's own code)
    return namespace["verify"]


def events_by_attachment(deliveries) -> dict:
    """attachment id -> the event types delivered for it, in the order they arrived."""
    arrived = {}
    for delivery in deliveries:
        document = json.loads(delivery.body)
        arrived.setdefault(document["attachment"]["id"], []).append(document["type"])
    return arrived
