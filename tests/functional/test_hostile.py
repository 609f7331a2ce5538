"""Hostile clients: inputs made to cost affix time, memory or its data, each answered with a
clear HAL error that leaves everything stored as it was. The defects a first attack found are
here by number (issue "Hardening"); the rest of each one's class beside it. (10, a full database
disk, needs a real small disk: system/test_full_disks.py.)"""
import contextlib
import dataclasses
import datetime
import fcntl
import io
import json
import os
import threading

import falcon.testing
import pytest

from affix import create_app
from affix.app.cli.commands import main
from affix.app.settings import Settings
from affix.storage.database import WriteLockTimeout, WriterQueue, open_database
from affix.storage.models import Catalog
from support.bodies import upload_body
from support.content import png_bytes
from support.defaults import FROZEN_NOW
from support.errors import (
    DOES_NOT_EXIST, NO_SUCH_ATTACHMENT, NOT_FOUND, UNAVAILABLE, assert_error,
)

NOT_JSON = "The request could not be parsed as JSON."
TOO_LARGE = "The request body is too large."


def upload(client, people, name="kept.txt", content=b"kept", login="bob"):
    """The id of a containerless upload of ``login``."""
    body, content_type = upload_body(json.dumps({"fileName": name}).encode(), content)
    response = client.simulate_post("/api/v3/attachments", body=body, headers={
        **people.auth(login), "Content-Type": content_type})
    assert response.status_code == 200, response.json
    return response.json["id"]


def attachment_links(ids):
    return [{"href": f"/api/v3/attachments/{attachment_id}"} for attachment_id in ids]


def create_work_package(client, people, links, login="bob", project="/api/v3/projects/1"):
    return client.simulate_post("/api/v3/work_packages", headers=people.auth(login), json={
        "subject": "Hostile", "_links": {"project": {"href": project}, "attachments": links}})


@pytest.fixture
def builder(people, catalog):
    """bob may also create and see work packages in the project "demo"."""
    people.add("walt", name="Walt Worker", permissions=[
        "add_work_packages", "edit_work_packages", "view_work_packages"])
    return people


def everything(catalog, stored):
    """What a refused request must leave as it was: work packages, attachments' containers,
    rows and files."""
    with catalog.database.connection_context():
        work_packages = [(w.id, w.subject) for w in catalog.WorkPackage.select()]
        containers = {a.id: (a.container_type, a.container_id)
                      for a in catalog.Attachment.select()}
    return work_packages, containers, stored.snapshot()


# --- 1. one request's work under the write lock is bounded ------------------------------------

def test_a_claim_listing_more_than_a_thousand_attachments_is_refused_before_any_work(
        client, builder, catalog, stored):
    attachment_id = upload(client, builder, login="walt")
    before = everything(catalog, stored)

    response = create_work_package(client, builder, attachment_links([attachment_id] * 1001),
                                   login="walt")

    assert_error(response, 422, "PropertyConstraintViolation",
                 "Attachments can list at most 1000 attachments.", "attachments")
    assert everything(catalog, stored) == before


def test_an_attachment_listed_a_thousand_times_is_claimed_once(client, builder, catalog, stored):
    attachment_id = upload(client, builder, login="walt")

    response = create_work_package(client, builder, attachment_links([attachment_id] * 1000),
                                   login="walt")

    assert response.status_code == 201, response.json
    [element] = response.json["_embedded"]["attachments"]["_embedded"]["elements"]
    assert element["id"] == attachment_id
    assert everything(catalog, stored)[:2] == ([(1, "Hostile")], {attachment_id: (
        "WorkPackage", 1)})


def test_a_refused_claim_is_found_out_before_the_work_package_is_made(
        client, builder, catalog, stored):
    mine = upload(client, builder, login="walt")
    theirs = upload(client, builder, login="bob")
    before = everything(catalog, stored)

    response = create_work_package(client, builder, attachment_links([mine, theirs]),
                                   login="walt")

    assert_error(response, 422, "PropertyConstraintViolation", DOES_NOT_EXIST, "attachments")
    assert everything(catalog, stored) == before


# --- 5. ids of any length in hrefs and paths ---------------------------------------------------

HUGE = "9" * 5000


def test_a_huge_attachment_id_in_a_claim_is_an_unknown_attachment(
        client, builder, catalog, stored):
    before = everything(catalog, stored)

    response = create_work_package(client, builder, attachment_links([HUGE]), login="walt")

    assert_error(response, 422, "PropertyConstraintViolation", DOES_NOT_EXIST, "attachments")
    assert everything(catalog, stored) == before


def test_a_huge_project_id_in_a_href_is_an_unknown_project(client, builder, catalog, stored):
    before = everything(catalog, stored)

    response = create_work_package(client, builder, [], login="walt",
                                   project=f"/api/v3/projects/{HUGE}")

    assert_error(response, 422, "PropertyConstraintViolation", "Project does not exist.",
                 "project")
    assert everything(catalog, stored) == before


@pytest.mark.parametrize("path, message", [
    (f"/api/v3/attachments/{HUGE}", NO_SUCH_ATTACHMENT),
    (f"/api/v3/attachments/{HUGE}/content", NO_SUCH_ATTACHMENT),
    (f"/api/v3/work_packages/{HUGE}", "The specified work package does not exist."),
    (f"/api/v3/work_packages/{HUGE}/attachments", NOT_FOUND),
    (f"/api/v3/projects/{HUGE}", "The specified project does not exist."),
    (f"/api/v3/users/{HUGE}", "The specified user does not exist."),
])
def test_a_huge_id_in_a_path_is_404(client, people, path, message):
    response = client.simulate_get(path, headers=people.auth("ada"))

    assert_error(response, 404, "NotFound", message)


@pytest.mark.parametrize("spelling", ["01", "+1", "\uff11", " 1", "1 ", "1.0", "0x1"])
def test_only_the_canonical_spelling_of_an_id_routes(client, people, spelling):
    attachment_id = upload(client, people)
    assert attachment_id == 1
    assert client.simulate_get("/api/v3/attachments/1",
                               headers=people.auth("bob")).status_code == 200

    response = client.simulate_get(f"/api/v3/attachments/{spelling}",
                                   headers=people.auth("bob"))

    assert response.status_code == 404
    assert response.json["errorIdentifier"] == "urn:openproject-org:api:v3:errors:NotFound"


# --- 6. JSON nested deep, and JSON bodies of any size -------------------------------------------

def nested(depth) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth, message", [
    # as deep as the metadata part's 64 KiB allow
    (30_000, NOT_JSON),
    (1000, NOT_JSON),
    (33, "The JSON document is nested more than 32 levels deep."),
])
def test_deeply_nested_metadata_is_400_and_stores_nothing(client, people, stored, depth,
                                                          message):
    upload(client, people)
    before = stored.snapshot()
    metadata = f'{{"fileName": "deep.txt", "description": {nested(depth - 1)}}}'
    body, content_type = upload_body(metadata.encode(), b"deep")

    response = client.simulate_post("/api/v3/attachments", body=body, headers={
        **people.auth("bob"), "Content-Type": content_type})

    assert_error(response, 400, "InvalidRequestBody", message)
    assert stored.snapshot() == before


@pytest.mark.parametrize("depth, message", [
    (100_000, NOT_JSON),
    (1000, NOT_JSON),
    (33, "The JSON document is nested more than 32 levels deep."),
])
def test_a_deeply_nested_json_body_is_400_and_changes_nothing(
        client, builder, catalog, stored, depth, message):
    before = everything(catalog, stored)
    body = f'{{"subject": "Deep", "_links": {{"project": {{"href": "/api/v3/projects/1"}}}}, ' \
           f'"extra": {nested(depth - 1)}}}'

    response = client.simulate_post("/api/v3/work_packages", body=body, headers={
        **builder.auth("walt"), "Content-Type": "application/json"})

    assert_error(response, 400, "InvalidRequestBody", message)
    assert everything(catalog, stored) == before


@pytest.fixture
def small_json_client(settings, plugin_manager, app):
    """A second app on the conftest database that reads JSON bodies of up to 1 KiB."""
    return falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, max_json_size=1024), plugin_manager=plugin_manager,
        clock=lambda: FROZEN_NOW))


def test_a_json_body_over_the_limit_is_413_before_it_is_read(
        small_json_client, builder, catalog, stored):
    attachment_id = upload(small_json_client, builder, login="walt")
    before = everything(catalog, stored)
    body = json.dumps({"subject": "x" * 1024, "_links": {
        "project": {"href": "/api/v3/projects/1"},
        "attachments": attachment_links([attachment_id])}})

    response = small_json_client.simulate_post(
        "/api/v3/work_packages", body=body,
        headers={**builder.auth("walt"), "Content-Type": "application/json"})

    assert_error(response, 413, "PropertyConstraintViolation", TOO_LARGE)
    assert everything(catalog, stored) == before


def test_a_json_body_within_the_limit_is_read(small_json_client, builder, catalog):
    response = create_work_package(small_json_client, builder, [], login="walt")

    assert response.status_code == 201, response.json


def test_the_json_limit_is_a_setting_with_a_default():
    assert Settings.from_environ({}).max_json_size == 1024 * 1024
    assert Settings.from_environ({"AFFIX_MAX_JSON_SIZE": "2048"}).max_json_size == 2048


# --- beyond the first attack: more of the same classes ---------------------------------------

def test_a_number_of_thousands_of_digits_in_json_is_400_not_a_conversion_error(
        client, people, stored):
    upload(client, people)
    before = stored.snapshot()
    body, content_type = upload_body(
        ('{"fileName": "n.txt", "description": ' + "9" * 5000 + "}").encode(), b"n")

    response = client.simulate_post("/api/v3/attachments", body=body, headers={
        **people.auth("bob"), "Content-Type": content_type})

    assert_error(response, 400, "InvalidRequestBody", NOT_JSON)
    assert stored.snapshot() == before


def test_a_json_body_of_forty_thousand_keys_is_read_once_and_refused_plainly(
        client, builder, catalog, stored):
    before = everything(catalog, stored)
    links = {"project": {"href": "/api/v3/projects/1"}, "attachments": {
        f"k{number}": number for number in range(40_000)}}

    response = client.simulate_post("/api/v3/work_packages", json={
        "subject": "Wide", "_links": links}, headers=builder.auth("walt"))

    assert_error(response, 422, "PropertyConstraintViolation",
                 "Attachments must be a list of links.", "attachments")
    assert everything(catalog, stored) == before


def test_an_upload_of_thousands_of_parts_is_refused_at_the_first_unexpected_one(
        client, people, stored):
    upload(client, people)
    before = stored.snapshot()
    boundary = "many"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="extra{number}"\r\n\r\nx\r\n'
        .encode() for number in range(5000)) + f"--{boundary}--\r\n".encode()

    response = client.simulate_post("/api/v3/attachments", body=body, headers={
        **people.auth("bob"), "Content-Type": f"multipart/form-data; boundary={boundary}"})

    assert_error(response, 400, "InvalidRequestBody",
                 "The part 'extra0' is not expected: send exactly the parts 'metadata' and "
                 "'file'.")
    assert stored.snapshot() == before


# --- 4. Range headers with numbers of any length ----------------------------------------------

@pytest.mark.parametrize("header, status, content", [
    (f"bytes=0-{HUGE}", 206, png_bytes()),
    (f"bytes=-{HUGE}", 206, png_bytes()),
    (f"bytes=0{HUGE}-", 416, None),
    (f"bytes={'0' * 5000}1-2", 206, png_bytes()[1:3]),
])
def test_a_range_with_huge_numbers_is_answered_by_what_it_means(
        client, people, header, status, content):
    body, content_type = upload_body(b'{"fileName": "cat.png"}', png_bytes())
    client.simulate_post("/api/v3/attachments", body=body, headers={
        **people.auth("bob"), "Content-Type": content_type})

    response = client.simulate_get("/api/v3/attachments/1/content", headers={
        **people.auth("bob"), "Range": header})

    assert response.status_code == status
    if content is not None:
        assert response.content == content
    else:
        assert response.headers["content-range"] == f"bytes */{len(png_bytes())}"


# --- 3. a download whose bytes a deletion took --------------------------------------------------

def test_a_download_whose_blob_is_gone_is_404(client, people, stored):
    attachment_id = upload(client, people)
    [(_, _, _, _, key)] = stored.rows()
    # what a DELETE committed between this download's reading of the row and of the bytes
    # leaves: the row read, the blob gone
    (stored.blob_root / key).unlink()

    response = client.simulate_get(f"/api/v3/attachments/{attachment_id}/content",
                                   headers=people.auth("bob"))

    assert_error(response, 404, "NotFound", NO_SUCH_ATTACHMENT)


def test_of_deletes_racing_for_one_attachment_exactly_one_is_204(client, people, stored):
    upload(client, people, name="first.txt")
    attachment_id = upload(client, people, name="raced.txt")
    racers = 8
    barrier = threading.Barrier(racers, timeout=30)
    statuses = []

    def delete():
        barrier.wait()
        statuses.append(client.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                               headers=people.auth("bob")).status_code)

    threads = [threading.Thread(target=delete) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(statuses) == [204] + [404] * (racers - 1)
    assert [row[1] for row in stored.rows()] == ["first.txt"]
    assert len(stored.files()) == 1


# --- 8. affix gc considers only what affix made -------------------------------------------------

TWO_DAYS = datetime.timedelta(days=2)


def age(path, delta):
    moment = (datetime.datetime.now(datetime.UTC) - delta).timestamp()
    os.utime(path, (moment, moment))


def cli(settings, *argv):
    out = io.StringIO()
    environ = {"AFFIX_DATA_DIR": str(settings.data_dir),
               "AFFIX_DATABASE_URL": settings.database_url,
               "AFFIX_STORAGE_URL": settings.storage_url}
    return main(list(argv), environ=environ, out=out), out.getvalue()


def test_gc_never_takes_a_file_affix_did_not_make(settings, client, people, stored):
    upload(client, people)
    foreign = {
        "notes.txt": b"the operator's notes",
        "ab/not-a-key": b"someone else's file",
        "ab/" + "ab" + "0" * 29: b"one hex digit short of a key",
        "ab/" + "cd" + "0" * 30: b"a key of another fan-out folder",
    }
    for name, content in foreign.items():
        (stored.blob_root / name).parent.mkdir(exist_ok=True)
        (stored.blob_root / name).write_bytes(content)
        age(stored.blob_root / name, TWO_DAYS)
    before = stored.snapshot()

    status, printed = cli(settings, "gc", "--min-age", "0")

    assert (status, printed) == (0, "removed 0 blobs without an attachment, older than 0 "
                                    "minutes\n")
    assert stored.snapshot() == before


def test_a_storage_folder_that_holds_the_database_is_refused(tmp_path, capsys):
    environ = {"AFFIX_DATA_DIR": str(tmp_path), "AFFIX_STORAGE_URL": str(tmp_path)}

    status = main(["gc", "--dry-run"], environ=environ, out=io.StringIO())

    assert status == 2
    assert capsys.readouterr().err == (
        f"affix: error: AFFIX_STORAGE_URL must not hold the database: {tmp_path} holds "
        f"{tmp_path / 'affix.sqlite3'}\n")
    assert list(tmp_path.iterdir()) == []


# --- 2. staging left by a full disk -------------------------------------------------------------

def test_gc_sweeps_staging_older_than_its_cutoff_and_leaves_younger(settings, app, stored):
    staging = stored.blob_root / ".staging"
    (staging / "cut-short").write_bytes(b"an upload a full disk cut short")
    age(staging / "cut-short", TWO_DAYS)
    (staging / "running").write_bytes(b"an upload on its way")

    status, printed = cli(settings, "gc", "--min-age", "60")

    assert (status, printed) == (0, (
        "removed 0 blobs without an attachment, older than 60 minutes\n"
        "removed 1 partial upload left in staging, older than 60 minutes\n"))
    assert sorted(path.name for path in staging.iterdir()) == ["running"]


# --- 1. a writer waits for its turn a bounded time ---------------------------------------------

@contextlib.contextmanager
def writers_lock_held(lock_path):
    """The SQLite writers' lock, held as another process's writer holds it."""
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def test_a_writer_that_cannot_get_its_turn_in_time_gives_up(tmp_path):
    queue = WriterQueue(tmp_path / "db", timeout=0.05)
    with writers_lock_held(queue.lock_path) as holder:
        with pytest.raises(WriteLockTimeout, match=r"waited 0\.05 s for the database's write"):
            with queue.turn():
                pytest.fail("the turn was given while another writer held the lock")
        # the next writer of this process takes over the wait that is still in flight
        fcntl.flock(holder, fcntl.LOCK_UN)
        with queue.turn():
            other = os.open(queue.lock_path, os.O_WRONLY)
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(other)
    queue.close()


def test_a_turn_nobody_waits_for_anymore_goes_straight_back(tmp_path):
    queue = WriterQueue(tmp_path / "db", timeout=0.05)
    with writers_lock_held(queue.lock_path) as holder:
        with pytest.raises(WriteLockTimeout):
            with queue.turn():
                pass
        fcntl.flock(holder, fcntl.LOCK_UN)
        # the queue's thread takes the lock once it is free and gives it back: another
        # process's writer waiting for it gets it
        waiter = os.open(queue.lock_path, os.O_WRONLY)
        taken = threading.Event()
        thread = threading.Thread(target=lambda: (fcntl.flock(waiter, fcntl.LOCK_EX),
                                                  taken.set()))
        thread.start()
        thread.join(30)
        assert taken.is_set()
        os.close(waiter)
    queue.close()


def test_a_queue_closed_while_its_wait_is_in_flight_leaves_the_descriptor_reusing_its_number_alone(
        tmp_path, monkeypatch):
    failures = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    queue = WriterQueue(tmp_path / "db", timeout=0.05)
    with writers_lock_held(queue.lock_path) as holder:
        with pytest.raises(WriteLockTimeout):
            with queue.turn():
                pass
        [waiting] = [thread for thread in threading.enumerate()
                     if thread.name == "affix-writers-flock"]
        queue.close()
        # a file opened now gets the number the queue's closed descriptor had, and a lock
        bystander_path = tmp_path / "bystander"
        bystander = os.open(bystander_path, os.O_WRONLY | os.O_CREAT)
        fcntl.flock(bystander, fcntl.LOCK_EX)
        fcntl.flock(holder, fcntl.LOCK_UN)
        waiting.join(30)
    assert not waiting.is_alive()
    assert failures == []
    other = os.open(bystander_path, os.O_WRONLY)
    with pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(other)
    os.close(bystander)


@pytest.mark.sqlite_only("the writers' queue is SQLite's")
def test_an_upload_that_waits_too_long_for_the_write_lock_is_503_and_stores_nothing(
        settings, plugin_manager, people, stored):
    # the schema is there (conftest's catalog made it): a handle whose writers wait briefly
    impatient = Catalog(open_database(settings.database_url, write_wait_seconds=0.05))
    client = falcon.testing.TestClient(create_app(
        settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW, catalog=impatient))
    upload(client, people)
    before = stored.snapshot()
    database_path = settings.database_url[len("sqlite:///"):]

    with writers_lock_held(f"{database_path}-writers"):
        body, content_type = upload_body(b'{"fileName": "late.txt"}', b"late")
        response = client.simulate_post("/api/v3/attachments", body=body, headers={
            **people.auth("bob"), "Content-Type": content_type})

    assert_error(response, 503, "ServiceUnavailable", UNAVAILABLE)
    assert response.headers["retry-after"] == "5"
    assert stored.snapshot() == before
