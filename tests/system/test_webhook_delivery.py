"""Delivering webhooks to a real HTTP receiver on loopback: signed as the webhooks guide says,
retried with a capped backoff while the receiver is away, in order per attachment, at least once
when the worker is killed mid-delivery, once each with several workers, within a deadline for the
whole delivery, without one subscription's slow receiver holding up another's, and pruned once
delivered. Time passes through the worker's clock; nothing sleeps, but for the one deadline
that a real socket measures in real time."""
import calendar
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import requests

from affix.app import connect_catalog, open_catalog
from affix.app.webhooks.delivery import DeliveryPolicy, WebhookWorker, post
from affix.storage.database import release_connections
from affix.storage.models import utc_now
from affix.storage.outbox import Outbox
from support.cli import affix
from support.client import uploaded
from support.clocks import Clock
from support.defaults import FROZEN_NOW
from support.http import assert_uploaded, upload
from support.net import REQUEST_TIMEOUT
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix
from support.waiting import wait_for
from support.webhook_receiver import HOLD_TIMEOUT, WebhookReceiver
from support.webhooks import (
    SECRET, events_by_attachment, outbox, outbox_entries, documented_verify, subscribe,
)
from support.work_packages import created

pytestmark = pytest.mark.system

ALL = ["attachment.created", "attachment.claimed", "attachment.deleted"]
SECOND = datetime.timedelta(seconds=1)
# more rounds than any test needs: a worker that never finishes fails the test instead of
# hanging it
MAX_ROUNDS = 100


def running_receiver():
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.release()
    receiver.stop()


@pytest.fixture
def receiver():
    yield from running_receiver()


@pytest.fixture
def slow_receiver():
    """The receiver of another subscription, one that makes its deliveries wait."""
    yield from running_receiver()


def unix(moment) -> int:
    return calendar.timegm(moment.utctimetuple())


def deliver_all(worker):
    """Run the worker until it finds nothing due; how many rounds delivered something."""
    for rounds in range(MAX_ROUNDS):
        if not worker.deliver_due():
            return rounds
    pytest.fail(f"the worker still had events due after {MAX_ROUNDS} rounds")


def delete(client, people, login, attachment_id):
    response = client.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                      headers=people.auth(login))
    assert response.status_code == 204


def test_events_arrive_signed_in_order_and_verify_with_the_documented_code(
        client, people, catalog, receiver):
    subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    attachment_id = uploaded(client, people, "ada", name="roof.txt")
    created(client, people, "ada", attachment_ids=[attachment_id])
    delete(client, people, "ada", attachment_id)
    clock = Clock(datetime.datetime(2026, 12, 1, 6, 30))
    verify = documented_verify()

    # one round per event: an attachment's next event waits for the one before it
    assert deliver_all(WebhookWorker(catalog, clock=clock)) == 3

    entries = outbox_entries(catalog)
    assert [(delivery.status, delivery.body) for delivery in receiver.deliveries] == [
        (204, entry.body.encode()) for entry in entries]
    for delivery, entry in zip(receiver.deliveries, entries):
        headers = delivery.headers
        assert (headers["Content-Type"], headers["Affix-Webhook-Id"],
                headers["Affix-Webhook-Event"], headers["Affix-Webhook-Timestamp"]) == (
            "application/json", entry.event_id, entry.event, str(unix(clock.now)))
        assert json.loads(delivery.body)["id"] == entry.event_id
        now = unix(clock.now)
        assert verify(SECRET, headers, delivery.body, now=now)
        assert not verify(SECRET, headers, delivery.body + b" ", now=now)
        assert not verify("another secret entirely", headers, delivery.body, now=now)
        # a delivery captured and replayed more than five minutes later
        assert not verify(SECRET, headers, delivery.body, now=now + 301)
        assert verify(SECRET, headers, delivery.body, now=now + 300)
    assert [entry.event for entry in entries] == ALL
    assert [(entry.attempts, entry.delivered_at, entry.lease_until, entry.last_error)
            for entry in entries] == [(1, clock.now, None, None)] * 3


def test_a_receiver_away_for_a_while_gets_everything_in_order_when_it_is_back(
        client, people, catalog, environ, receiver):
    subscription = subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    claimed = uploaded(client, people, "ada", name="claimed.txt")
    created(client, people, "ada", attachment_ids=[claimed])
    deleted = uploaded(client, people, "ada", name="deleted.txt")
    delete(client, people, "ada", deleted)
    start = datetime.datetime(2026, 12, 1, 6, 30)
    clock = Clock(start)
    policy = DeliveryPolicy(first_retry=5 * SECOND, max_backoff=20 * SECOND)
    worker = WebhookWorker(catalog, policy, clock=clock)

    def waiting():
        return [(entry.event, entry.attachment_id, entry.attempts, entry.next_attempt_at,
                 entry.last_error) for entry in outbox_entries(catalog)
                if entry.delivered_at is None]

    receiver.status = 503
    # each attachment's first event is tried; its second waits for it
    assert worker.deliver_due() == 2
    assert waiting() == [
        ("attachment.created", claimed, 1, start + 5 * SECOND, "HTTP 503"),
        ("attachment.claimed", claimed, 0, FROZEN_NOW, None),
        ("attachment.created", deleted, 1, start + 5 * SECOND, "HTTP 503"),
        ("attachment.deleted", deleted, 0, FROZEN_NOW, None),
    ]
    # nothing is due before its time
    clock.advance(4 * SECOND)
    assert worker.deliver_due() == 0
    # 5 s, 10 s, 20 s, then 20 s again: doubling up to the cap
    for failures, wait in ((2, 10), (3, 20), (4, 20)):
        clock.now = waiting()[0][3]
        assert worker.deliver_due() == 2
        assert [row[2:] for row in waiting()[::2]] == [
            (failures, clock.now + wait * SECOND, "HTTP 503")] * 2
    receiver.stop()
    clock.advance(20 * SECOND)
    assert worker.deliver_due() == 2
    assert [row[2:] for row in waiting()[::2]] == [
        (5, clock.now + 20 * SECOND, "ConnectionRefusedError: [Errno 111] Connection refused")
    ] * 2
    assert affix(environ, "webhooks", "list") == (0, (
        f"{subscription} {receiver.url} {', '.join(ALL)}: 4 waiting, "
        "last error: ConnectionRefusedError: [Errno 111] Connection refused\n"))

    receiver.status = 204
    receiver.start()
    clock.advance(20 * SECOND)
    assert deliver_all(worker) == 2

    assert waiting() == []
    assert events_by_attachment(receiver.answered(204)) == {
        claimed: ["attachment.created", "attachment.claimed"],
        deleted: ["attachment.created", "attachment.deleted"],
    }
    # before it succeeded, every attempt was of each attachment's first event
    assert {json.loads(delivery.body)["type"] for delivery in receiver.answered(503)} == {
        "attachment.created"}
    assert len(receiver.answered(503)) == 8


def test_a_worker_killed_mid_delivery_loses_nothing(
        tmp_path, databases, server, environ, receiver):
    assert affix(environ, "webhooks", "add", receiver.url, "--secret", SECRET)[0] == 0
    contents = {f"file-{number}.txt": f"content {number}".encode() for number in range(3)}
    ids = [assert_uploaded(upload(server, name, content), name, content)
           for name, content in contents.items()]
    response = requests.delete(server.url(f"/api/v3/attachments/{ids[0]}"), headers=server.auth,
                               timeout=REQUEST_TIMEOUT)
    assert response.status_code == 204
    catalog = server.stored.catalog
    events = [(entry.event_id, entry.event, entry.attachment_id)
              for entry in outbox_entries(catalog)]
    assert [event[1:] for event in events] == [
        ("attachment.created", ids[0]), ("attachment.created", ids[1]),
        ("attachment.created", ids[2]), ("attachment.deleted", ids[0])]

    # the first two are answered; the worker dies waiting for the answer to the third
    receiver.hold(after=2)
    worker = subprocess.Popen(
        [sys.executable, "-m", "affix.app.cli.commands", "webhooks", "run",
         "--poll-interval", "0.05"],
        cwd=REPO_ROOT, env=environ_without_affix(**environ), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        receiver.wait_for_deliveries(3)
        mid_delivery = outbox_entries(catalog)[2]
        assert (mid_delivery.event_id, mid_delivery.delivered_at) == (events[2][0], None)
        assert mid_delivery.lease_until > utc_now()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.communicate(timeout=COMMAND_TIMEOUT)
    assert worker.returncode == -signal.SIGKILL
    receiver.release()
    # the next worker finds the dead one's lease run out
    later = Clock(utc_now() + DeliveryPolicy().lease + SECOND)
    next_worker = open_catalog(databases.settings(tmp_path / "data"))
    deliver_all(WebhookWorker(next_worker, clock=later))
    release_connections(next_worker.database)

    arrived = [delivery.headers["Affix-Webhook-Id"] for delivery in receiver.deliveries]
    # every event at least once; the one under way when the worker died twice, the same
    assert arrived == [events[0][0], events[1][0], events[2][0], events[2][0], events[3][0]]
    assert receiver.deliveries[2].body == receiver.deliveries[3].body
    assert events_by_attachment(receiver.deliveries) == {
        ids[0]: ["attachment.created", "attachment.deleted"],
        ids[1]: ["attachment.created"], ids[2]: ["attachment.created", "attachment.created"]}
    assert [row[3] for row in outbox(catalog)] == [True] * 4
    # signed by the worker process with the real time, verified as a receiver would
    verify = documented_verify()
    assert all(verify(SECRET, delivery.headers, delivery.body)
               for delivery in receiver.deliveries[:3])


@contextlib.contextmanager
def webhook_worker(environ, *options):
    """``affix webhooks run`` with ``options``, once it says it is delivering; killed at the
    end if it is still running."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "affix.app.cli.commands", "webhooks", "run", *options],
        cwd=REPO_ROOT, env=environ_without_affix(**environ), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert worker.stdout.readline() == "affix: delivering webhooks\n"
        yield worker
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.communicate()


def stopped(worker, signal_number, meanwhile=lambda: None):
    """``worker``'s exit status and output once ``signal_number`` stopped it; ``meanwhile`` runs
    between the signal and the wait for the exit."""
    worker.send_signal(signal_number)
    meanwhile()
    stdout, stderr = worker.communicate(timeout=COMMAND_TIMEOUT)
    return worker.returncode, stdout, stderr


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_affix_webhooks_run_stops_on_sigterm_and_ctrl_c(environ, signal_number):
    # a poll interval far longer than the command timeout: only the signal can end the wait
    with webhook_worker(environ, "--poll-interval", "3600") as worker:
        assert stopped(worker, signal_number) == (0, "", "")


def test_a_stop_mid_delivery_ends_the_worker_once_that_delivery_is_recorded(
        environ, receiver, client, people, catalog):
    assert affix(environ, "webhooks", "add", receiver.url, "--secret", SECRET)[0] == 0
    first, second = (uploaded(client, people, "ada", name=name) for name in ("1.txt", "2.txt"))
    receiver.hold()
    with webhook_worker(environ, "--poll-interval", "0.05") as worker:
        receiver.wait_for_deliveries(1)
        assert stopped(worker, signal.SIGTERM, meanwhile=receiver.release) == (0, "", "")
    # the one under way was answered and recorded; the next, leased in the same batch, was
    # not tried but handed back: due at once for the next worker, not in 200 seconds
    assert events_by_attachment(receiver.deliveries) == {first: ["attachment.created"]}
    assert [(entry.attachment_id, entry.delivered_at is not None, entry.lease_until,
             entry.attempts) for entry in outbox_entries(catalog)] == [
        (first, True, None, 1), (second, False, None, 0)]


def test_a_worker_hands_back_only_its_own_undelivered_leases(client, people, catalog,
                                                              receiver):
    subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    ids = [uploaded(client, people, "ada", name=f"{number}.txt") for number in range(3)]
    outbox_of = Outbox(catalog)
    first_lease = FROZEN_NOW + DeliveryPolicy().lease
    with catalog.database.connection_context():
        first_batch = outbox_of.claim_due(FROZEN_NOW, first_lease, 2, 1)
        outbox_of.delivered(first_batch[0].id, FROZEN_NOW)
        # the first worker stalls past its lease: a second takes what is left
        later = first_lease + SECOND
        second_lease = later + DeliveryPolicy().lease
        second_batch = outbox_of.claim_due(later, second_lease, 2, 1)
        # the first worker, back, hands back its batch: nothing of it is its own any more
        outbox_of.release([entry.id for entry in first_batch], first_lease)
    leases = [(entry.attachment_id, entry.delivered_at is not None, entry.lease_until)
              for entry in outbox_entries(catalog)]
    assert [entry.attachment_id for entry in second_batch] == ids[1:]
    assert leases == [(ids[0], True, None), (ids[1], False, second_lease),
                      (ids[2], False, second_lease)]
    with catalog.database.connection_context():
        outbox_of.release([entry.id for entry in second_batch], second_lease)
    assert [entry.lease_until for entry in outbox_entries(catalog)] == [None, None, None]


def test_several_workers_deliver_each_event_once_in_order(
        client, people, catalog, settings, receiver):
    subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    ids = [uploaded(client, people, "ada", name=f"{number}.txt") for number in range(6)]
    for attachment_id in ids:
        delete(client, people, "ada", attachment_id)
    clock = Clock(datetime.datetime(2026, 12, 1, 6, 30))
    # two events at a time each: the workers must share the work to get it done
    policy = DeliveryPolicy(batch=2)
    # each with a catalogue and connections of its own, as worker processes have
    catalogs = [connect_catalog(settings) for _ in range(3)]
    workers = [WebhookWorker(each, policy, clock=clock) for each in catalogs]
    failures = []

    def work(worker):
        try:
            for _ in range(MAX_ROUNDS):
                if all(row[3] for row in outbox(catalog)):
                    return
                worker.deliver_due()
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            failures.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for each in catalogs:
        release_connections(each.database)

    assert failures == []
    assert [row[3] for row in outbox(catalog)] == [True] * 12
    arrived = [delivery.headers["Affix-Webhook-Id"] for delivery in receiver.deliveries]
    assert sorted(arrived) == sorted(entry.event_id for entry in outbox_entries(catalog))
    assert events_by_attachment(receiver.deliveries) == {
        attachment_id: ["attachment.created", "attachment.deleted"] for attachment_id in ids}


def test_delivered_events_are_pruned_after_keep_delivered(client, people, catalog, receiver):
    subscription = subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    first = uploaded(client, people, "ada", name="first.txt")
    start = datetime.datetime(2026, 12, 1, 6, 30)
    clock = Clock(start)
    hour = datetime.timedelta(hours=1)
    worker = WebhookWorker(catalog, DeliveryPolicy(keep_delivered=hour), clock=clock)
    deliver_all(worker)
    second = uploaded(client, people, "ada", name="second.txt")

    clock.advance(hour - SECOND)
    deliver_all(worker)
    assert outbox(catalog) == [(subscription, "attachment.created", first, True),
                               (subscription, "attachment.created", second, True)]

    # pruning is done every ten minutes
    clock.advance(DeliveryPolicy().prune_every)
    deliver_all(worker)
    assert outbox(catalog) == [(subscription, "attachment.created", second, True)]


def test_an_event_written_as_its_subscription_was_removed_is_never_delivered_and_is_pruned(
        client, people, catalog, receiver):
    removed = subscribe(catalog, receiver.url + "/removed", ALL, FROZEN_NOW)
    kept = subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    attachment_id = uploaded(client, people, "ada")
    # what an upload committing just after `affix webhooks remove` leaves: its event, for a
    # subscription that is gone
    with catalog.database.connection_context():
        catalog.database.execute_sql(
            f'DELETE FROM "webhook_subscriptions" WHERE "id" = {removed}')
    assert outbox(catalog) == [(removed, "attachment.created", attachment_id, False),
                               (kept, "attachment.created", attachment_id, False)]

    deliver_all(WebhookWorker(catalog, clock=Clock(datetime.datetime(2026, 12, 1, 6, 30))))

    assert [(delivery.path, delivery.status, json.loads(delivery.body)["type"])
            for delivery in receiver.deliveries] == [("/hooks/affix", 204, "attachment.created")]
    assert outbox(catalog) == [(kept, "attachment.created", attachment_id, True)]


def test_an_answer_dripped_past_the_deadline_fails_and_is_hung_up_on(
        client, people, catalog, receiver):
    subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    uploaded(client, people, "ada")
    start = datetime.datetime(2026, 12, 1, 6, 30)
    clock = Clock(start)
    # a real socket measures the deadline in real time, so it is small here: 0.5 s, against
    # an answer of some 60 bytes dripped a byte every 0.05 s. Each byte comes well within the
    # deadline; the whole answer (3 s) comes long after it.
    worker = WebhookWorker(catalog, DeliveryPolicy(timeout=0.5), clock=clock)
    receiver.status = 200
    receiver.drip(0.05)

    assert worker.deliver_due() == 1

    [entry] = outbox_entries(catalog)
    assert (entry.delivered_at, entry.attempts, entry.next_attempt_at, entry.lease_until,
            entry.last_error) == (
        None, 1, start + 5 * SECOND, None, "TimeoutError: no complete answer within 0.5 s")
    # the worker closed its connection: the rest of the answer had nobody to go to
    [dripped] = receiver.deliveries
    wait_for(lambda: dripped.cut, "the receiver to find the connection closed")
    assert dripped.status is None

    # retried as any failure is, and delivered once the receiver answers in time
    receiver.drip(None)
    clock.advance(5 * SECOND)
    assert worker.deliver_due() == 1
    assert [(delivery.status, delivery.body) for delivery in receiver.deliveries] == [
        (None, entry.body.encode()), (200, entry.body.encode())]
    [entry] = outbox_entries(catalog)
    assert (entry.delivered_at, entry.attempts, entry.last_error) == (clock.now, 2, None)


def test_a_receiver_that_keeps_a_delivery_waiting_delays_no_other_subscription(
        client, people, catalog, receiver, slow_receiver):
    slow = subscribe(catalog, slow_receiver.url, ALL, FROZEN_NOW)
    healthy = subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    first = uploaded(client, people, "ada", name="first.txt")
    slow_receiver.hold()
    stopping = threading.Event()
    # a deadline past the hold: only releasing the slow receiver ends its delivery
    worker = WebhookWorker(catalog, DeliveryPolicy(timeout=HOLD_TIMEOUT + 1),
                           clock=Clock(datetime.datetime(2026, 12, 1, 6, 30)))
    running = threading.Thread(target=worker.run, args=(stopping, 0.01))
    running.start()
    try:
        slow_receiver.wait_for_deliveries(1)
        receiver.wait_for_deliveries(1)
        # an event written while the slow receiver still holds the first is not held up either
        second = uploaded(client, people, "ada", name="second.txt")
        receiver.wait_for_deliveries(2)
        wait_for(lambda: [row[3] for row in outbox(catalog) if row[0] == healthy] == [True] * 2,
                 "the healthy subscription's deliveries to be recorded")
        assert [delivery.status for delivery in slow_receiver.deliveries] == [None]
    finally:
        stopping.set()
        slow_receiver.release()
        running.join()

    assert events_by_attachment(receiver.answered(204)) == {
        first: ["attachment.created"], second: ["attachment.created"]}
    # the slow delivery, once answered, was recorded; the slow subscription's second event
    # waited for its lane and was never leased
    assert events_by_attachment(slow_receiver.answered(204)) == {first: ["attachment.created"]}
    assert [(entry.subscription_id, entry.attachment_id, entry.delivered_at is not None,
             entry.lease_until, entry.attempts) for entry in outbox_entries(catalog)] == [
        (slow, first, True, None, 1), (healthy, first, True, None, 1),
        (slow, second, False, None, 0), (healthy, second, True, None, 1)]


def test_a_worker_starts_no_delivery_its_lease_could_run_out_in(
        client, people, catalog, settings, receiver):
    subscribe(catalog, receiver.url, ALL, FROZEN_NOW)
    ids = [uploaded(client, people, "ada", name=f"{number}.txt") for number in range(2)]
    start = datetime.datetime(2026, 12, 1, 6, 30)
    clock = Clock(start)
    policy = DeliveryPolicy(batch=2)
    lease_ends = start + policy.lease
    other_catalog = connect_catalog(settings)
    other = WebhookWorker(other_catalog, policy, clock=clock)
    sent = []

    def stalling_post(url, headers, body, timeout):
        sent.append(json.loads(body)["attachment"]["id"])
        if len(sent) == 2:
            # the second delivery takes its whole deadline: meanwhile the lease runs out and
            # the other worker takes what it finds due
            clock.now = lease_ends + SECOND
            deliver_all(other)
        post(url, headers, body, timeout)
        if len(sent) == 1:
            # the first delivery (or a pause of the worker) left less than a deadline of
            # the lease
            clock.now = lease_ends - datetime.timedelta(seconds=policy.timeout / 2)

    worker = WebhookWorker(catalog, policy, clock=clock, send=stalling_post)
    assert worker.deliver_due() == 1
    # the second was handed back, due at once for any worker
    assert [(entry.attachment_id, entry.delivered_at, entry.lease_until, entry.attempts)
            for entry in outbox_entries(catalog)] == [
        (ids[0], clock.now, None, 1), (ids[1], None, None, 0)]
    assert deliver_all(other) == 1
    release_connections(other_catalog.database)

    assert sent == ids[:1]
    assert [delivery.headers["Affix-Webhook-Id"] for delivery in receiver.deliveries] == [
        entry.event_id for entry in outbox_entries(catalog)]
    assert [row[3] for row in outbox(catalog)] == [True, True]
