"""ClamAV with a real clamd: scanning while uploading (stream mode) and after (``affix scan``),
clamd down or frozen, accepting unscanned files, the rescan, a large file at constant memory.

clamd knows one signature, the EICAR test file's (tests/support/clamd.py)."""
import dataclasses
import io
import json
import tracemalloc
import urllib.parse

import falcon.testing
import pytest
import requests

from affix.app import create_app
from affix.app.attachments.scanning import ScanReport, scan_waiting
from affix.app.webhooks.delivery import WebhookEvents
from affix.plugins import hookimpl
from affix.plugins.clamav import ClamdScanner, ScanOptions, refusal
from affix.plugins.manager import Events, create_plugin_manager
from affix.storage.outbox import Outbox
from affix.storage.stores import open_blob_store
from support import direct_uploads, http, tus
from support.tus import partial
from support.cli import affix
from support.clamd import FINDING, eicar, running_clamd, unreachable_clamd
from support.client import get, upload
from support.content import md5, random_bytes
from support.defaults import FROZEN_NOW
from support.errors import assert_error
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.s3 import s3_environ
from support.servers import HIGH_LIMIT, running_server
from support.webhooks import outbox, outbox_entries, subscribe
from support.work_packages import created

pytestmark = pytest.mark.system

INFECTED = refusal(FINDING)
UNCHECKED = "The file could not be checked. Please try again later."
QUARANTINED_MESSAGE = ("The file eicar.com is quarantined: the virus scanner found malware "
                       "in it.")
# how long a test lets a frozen clamd keep an upload waiting
SHORT_TIMEOUT = 1.0


def scanning_client(settings, plugin_manager, **options):
    settings = dataclasses.replace(settings, scan=ScanOptions(**options))
    return falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))


def rows(catalog):
    """(file name, status, finding) of every attachment."""
    with catalog.database.connection_context():
        return [(row.file_name, row.status, row.scan_finding)
                for row in catalog.Attachment.select().order_by(catalog.Attachment.id)]


def scan_environ(environ, mode, clamd, **variables):
    return {**environ, "AFFIX_SCAN_MODE": mode, "AFFIX_CLAMD": clamd, **variables}


# --- stream mode -------------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["socket_path", "tcp_address"])
def test_stream_mode_refuses_eicar_and_stores_nothing(
        settings, plugin_manager, people, stored, earlier, clamd, address):
    client = scanning_client(settings, plugin_manager, mode="stream",
                             clamd=getattr(clamd, address))

    response = upload(client, people, "bob", name="eicar.com", content=eicar())

    assert_error(response, 422, "PropertyConstraintViolation", INFECTED, "file")
    assert stored.snapshot() == earlier


@pytest.mark.parametrize("address", ["socket_path", "tcp_address"])
def test_stream_mode_stores_a_clean_file_as_scanned(
        settings, plugin_manager, people, catalog, clamd, address):
    client = scanning_client(settings, plugin_manager, mode="stream",
                             clamd=getattr(clamd, address))
    subscription = subscribe(catalog, "http://127.0.0.1:9/hooks",
                             ["attachment.created", "attachment.scanned"], FROZEN_NOW)

    response = upload(client, people, "bob", name="clean.txt", content=b"nothing bad here")

    assert response.status_code == 200
    assert response.json["status"] == "scanned"
    assert rows(catalog) == [("clean.txt", "scanned", None)]
    # both written with the row: it was scanned as it arrived
    assert outbox(catalog) == [
        (subscription, "attachment.created", response.json["id"], False),
        (subscription, "attachment.scanned", response.json["id"], False)]
    download = get(client, people, "bob", f"/api/v3/attachments/{response.json['id']}/download")
    assert (download.status_code, download.content) == (200, b"nothing bad here")


def test_stream_mode_refuses_eicar_uploaded_into_a_work_package(
        settings, plugin_manager, people, stored, clamd):
    client = scanning_client(settings, plugin_manager, mode="stream", clamd=clamd.socket_path)
    work_package = created(client, people, "ada")

    response = upload(client, people, "ada", name="eicar.com", content=eicar(),
                      path=f"/api/v3/work_packages/{work_package}/attachments")

    assert_error(response, 422, "PropertyConstraintViolation", INFECTED, "file")
    assert stored.snapshot() == ([], {})


def test_eicar_inside_a_larger_file_is_not_the_test_file(
        settings, plugin_manager, people, catalog, clamd):
    # the one signature is the md5 of the whole test file: a scan really looks at the bytes
    client = scanning_client(settings, plugin_manager, mode="stream", clamd=clamd.socket_path)

    response = upload(client, people, "bob", content=eicar() + b" and more")

    assert response.status_code == 200
    assert rows(catalog) == [("notes.txt", "scanned", None)]


@pytest.mark.parametrize("down", ["unix", "tcp"])
def test_clamd_down_answers_503_and_stores_nothing(
        settings, plugin_manager, people, stored, earlier, tmp_path, down):
    address = unreachable_clamd(tmp_path) if down == "unix" else f"{HOST}:{free_port()}"
    client = scanning_client(settings, plugin_manager, mode="stream", clamd=address)

    response = upload(client, people, "bob", content=b"unscanned")

    assert_error(response, 503, "ServiceUnavailable", UNCHECKED)
    assert stored.snapshot() == earlier


def test_clamd_down_with_unscanned_files_accepted_keeps_them_uploaded_for_affix_scan(
        settings, plugin_manager, people, catalog, tmp_path, clamd, environ):
    client = scanning_client(settings, plugin_manager, mode="stream",
                             clamd=unreachable_clamd(tmp_path), accept_unscanned=True)

    clean = upload(client, people, "bob", name="clean.txt", content=b"clean")
    infected = upload(client, people, "bob", name="eicar.com", content=eicar())

    assert [clean.json["status"], infected.json["status"]] == ["uploaded", "uploaded"]
    # waiting for its scan, only its author may download it
    assert get(client, people, "bob",
               f"/api/v3/attachments/{infected.json['id']}/download").content == eicar()
    assert affix(scan_environ(environ, "stream", clamd.socket_path), "scan") == (
        0, "scanned 2 attachments: 1 clean, 1 quarantined\n")
    assert rows(catalog) == [("clean.txt", "scanned", None),
                             ("eicar.com", "quarantined", FINDING)]
    assert_error(get(client, people, "bob", f"/api/v3/attachments/{infected.json['id']}/download"),
                 403, "MissingPermission", QUARANTINED_MESSAGE)


def test_a_frozen_clamd_times_out_with_503_and_stores_nothing(
        settings, plugin_manager, people, stored, earlier, own_clamd):
    client = scanning_client(settings, plugin_manager, mode="stream",
                             clamd=own_clamd.socket_path, timeout=SHORT_TIMEOUT)

    with own_clamd.stopped():
        response = upload(client, people, "bob", content=b"waits for an answer")

    assert_error(response, 503, "ServiceUnavailable", UNCHECKED)
    assert stored.snapshot() == earlier


def test_a_frozen_clamd_with_unscanned_files_accepted_keeps_the_upload_uploaded(
        settings, plugin_manager, people, catalog, own_clamd):
    client = scanning_client(settings, plugin_manager, mode="stream",
                             clamd=own_clamd.socket_path, timeout=SHORT_TIMEOUT,
                             accept_unscanned=True)

    with own_clamd.stopped():
        response = upload(client, people, "bob", name="late.txt", content=b"scanned later")

    assert response.status_code == 200
    assert rows(catalog) == [("late.txt", "uploaded", None)]


def test_a_tus_upload_clamd_missed_at_its_end_is_finished_by_the_retried_patch(
        settings, plugin_manager, people, catalog, stored, own_clamd):
    client = scanning_client(settings, plugin_manager, mode="stream",
                             clamd=own_clamd.socket_path, timeout=SHORT_TIMEOUT)
    auth = people.auth("bob")
    path = tus.created(client, auth, 10, filename="notes.txt")
    assert tus.patch(client, auth, path, 0, b"hello").status_code == 204
    with own_clamd.stopped():
        response = tus.patch(client, auth, path, 5, b"world")
    assert_error(response, 503, "ServiceUnavailable", UNCHECKED)
    assert response.headers["retry-after"] == "5"
    # every byte kept: the upload at its end, its attachment prepared, none yet
    assert rows(catalog) == [("notes.txt", "prepared", None)]
    [(attachment_id, *_)] = stored.rows()
    assert tus.uploads(catalog) == [(tus.token_of(path), 10, 10, attachment_id)]
    assert [data for name, data in stored.files().items()] == [b"helloworld"]
    asked = tus.head(client, auth, path)
    assert (asked.headers["upload-offset"], asked.headers.get("link")) == ("10", None)

    # clamd back, the client sends its last PATCH again
    retried = tus.patch(client, auth, path, 5, b"world")
    assert retried.status_code == 204, retried.json
    assert tus.attachment_of(retried.headers["link"]) == attachment_id
    assert rows(catalog) == [("notes.txt", "scanned", None)]
    assert [row[:4] for row in stored.rows()] == [
        (attachment_id, "notes.txt", 10, md5(b"helloworld"))]
    assert tus.partial_files(stored.blob_root) == {}


def test_eicar_sent_by_tus_is_refused_at_its_end_leaving_nothing(
        settings, plugin_manager, people, catalog, stored, clamd):
    client = scanning_client(settings, plugin_manager, mode="stream", clamd=clamd.socket_path)
    auth = people.auth("bob")
    path = tus.created(client, auth, len(eicar()), filename="eicar.com")
    assert tus.patch(client, auth, path, 0, eicar()[:10]).status_code == 204
    assert_error(tus.patch(client, auth, path, 10, eicar()[10:]), 422,
                 "PropertyConstraintViolation", INFECTED, "file")
    assert tus.uploads(catalog) == []
    assert stored.snapshot() == ([], {})
    assert tus.head(client, auth, path).status_code == 404


def test_eicar_split_into_partial_uploads_is_refused_when_joined_leaving_nothing(
        settings, plugin_manager, people, catalog, stored, clamd):
    client = scanning_client(settings, plugin_manager, mode="stream", clamd=clamd.socket_path)
    auth = people.auth("bob")
    # neither half is malware on its own: only the joined file is
    halves = [partial(client, auth, eicar()[:34]), partial(client, auth, eicar()[34:])]

    assert_error(tus.final(client, auth, *halves, filename="eicar.com"), 422,
                 "PropertyConstraintViolation", INFECTED, "file")
    assert stored.snapshot() == ([], {})
    assert tus.partial_files(stored.blob_root) == {}
    # the partial uploads were joined: their rows say so until they expire, and no final
    # upload names them again
    assert [row[2] is not None for row in tus.concat_states(catalog)] == [True, True]
    assert_error(tus.final(client, auth, *halves, filename="eicar.com"), 400,
                 "InvalidRequestBody", f"Upload-Concat names {halves[0]}, which is part of "
                 "another final upload already.")
    assert stored.snapshot() == ([], {})


@pytest.fixture
def short_clamd():
    """A clamd that takes streams of at most 32 KiB."""
    with running_clamd(StreamMaxLength="32K") as running:
        yield running


def test_a_stream_clamd_refuses_to_take_whole_answers_503_never_clean(
        settings, plugin_manager, people, stored, earlier, short_clamd):
    client = scanning_client(settings, plugin_manager, mode="stream",
                             clamd=short_clamd.socket_path)

    response = upload(client, people, "bob", content=random_bytes(48 * 1024))

    assert_error(response, 503, "ServiceUnavailable", UNCHECKED)
    assert stored.snapshot() == earlier


def test_affix_scan_leaves_a_file_clamd_will_not_take_whole_waiting_and_goes_on(
        settings, plugin_manager, people, catalog, short_clamd, environ, capsys):
    client = scanning_client(settings, plugin_manager, mode="after",
                             clamd=short_clamd.socket_path)
    large = upload(client, people, "bob", name="large.bin", content=random_bytes(48 * 1024))
    upload(client, people, "bob", name="small.txt", content=b"small")

    status, out = affix(scan_environ(environ, "after", short_clamd.socket_path), "scan")

    assert (status, out) == (1, "scanned 1 attachment: 1 clean, 0 quarantined\n")
    assert capsys.readouterr().err == (
        f"affix: error: 1 attachment could not be scanned and keep waiting "
        f"({large.json['id']}): clamd at {short_clamd.socket_path} answered 'INSTREAM size "
        "limit exceeded. ERROR'\n")
    assert rows(catalog) == [("large.bin", "uploaded", None), ("small.txt", "scanned", None)]


def test_a_large_clean_file_streams_through_clamd_at_constant_memory(
        settings, plugin_manager, people, catalog, clamd):
    size = 48 * 1024 * 1024
    settings = dataclasses.replace(settings, max_attachment_size=size)
    app = create_app(dataclasses.replace(
        settings, scan=ScanOptions(mode="stream", clamd=clamd.socket_path)),
        plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW)
    chunk = random_bytes(1024 * 1024)
    boundary = "large-file"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            '{"fileName": "large.bin"}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="large.bin"\r\n\r\n').encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    class Body(io.RawIOBase):
        """The body, made as it is read: never whole in memory."""

        def __init__(self):
            self.parts = iter([head, *[chunk] * (size // len(chunk)), tail])
            self.pending = b""

        def read(self, wanted=-1):
            while len(self.pending) < wanted:
                part = next(self.parts, None)
                if part is None:
                    break
                self.pending += part
            data, self.pending = self.pending[:wanted], self.pending[wanted:]
            return data

    environ = falcon.testing.create_environ(
        method="POST", path="/api/v3/attachments",
        headers={**people.auth("bob"),
                 "Content-Type": f"multipart/form-data; boundary={boundary}",
                 "Content-Length": str(len(head) + size + len(tail))})
    environ["wsgi.input"] = Body()
    start_response = falcon.testing.StartResponseMock()

    tracemalloc.start()
    try:
        b"".join(app(environ, start_response))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert start_response.status == "200 OK"
    assert rows(catalog) == [("large.bin", "scanned", None)]
    # a few chunks of 1 MiB in flight, whatever the file's size
    assert peak < 8 * 1024 * 1024


# --- after mode: affix scan, the rescan --------------------------------------------------------

def test_after_mode_stores_first_and_affix_scan_quarantines_eicar(
        settings, plugin_manager, people, catalog, clamd, environ):
    client = scanning_client(settings, plugin_manager, mode="after", clamd=clamd.socket_path)

    clean = upload(client, people, "bob", name="clean.txt", content=b"clean")
    infected = upload(client, people, "bob", name="eicar.com", content=eicar())
    assert [clean.json["status"], infected.json["status"]] == ["uploaded", "uploaded"]

    status, out = affix(scan_environ(environ, "after", clamd.socket_path), "scan")

    assert (status, out) == (0, "scanned 2 attachments: 1 clean, 1 quarantined\n")
    assert rows(catalog) == [("clean.txt", "scanned", None),
                             ("eicar.com", "quarantined", FINDING)]
    for login in ("bob", "ada"):
        assert_error(get(client, people, login,
                         f"/api/v3/attachments/{infected.json['id']}/download"),
                     403, "MissingPermission", QUARANTINED_MESSAGE)
    # nothing is left waiting
    assert affix(scan_environ(environ, "after", clamd.socket_path), "scan") == (
        0, "scanned 0 attachments: 0 clean, 0 quarantined\n")


def test_affix_scan_with_clamd_down_fails_and_leaves_everything_waiting(
        settings, plugin_manager, people, catalog, tmp_path, environ, capsys):
    client = scanning_client(settings, plugin_manager, mode="after",
                             clamd=unreachable_clamd(tmp_path))
    upload(client, people, "bob", name="waiting.txt", content=b"waiting")

    status, out = affix(scan_environ(environ, "after", unreachable_clamd(tmp_path)), "scan")

    assert (status, out) == (1, "")
    assert capsys.readouterr().err == (
        f"affix: error: clamd at {unreachable_clamd(tmp_path)} cannot be reached: [Errno 2] "
        "No such file or directory; stopped after 0 clean and 0 quarantined: run affix scan "
        "again to go on\n")
    assert rows(catalog) == [("waiting.txt", "uploaded", None)]


def test_affix_scan_refuses_to_run_with_scanning_off(environ, capsys):
    assert affix(environ, "scan") == (1, "")
    assert capsys.readouterr().err == (
        "affix: error: virus scanning is off: set AFFIX_SCAN_MODE (stream or after) and "
        "AFFIX_CLAMD\n")


def test_rescan_marks_every_scanned_attachment_and_scans_it_again(
        settings, plugin_manager, people, catalog, clamd, environ):
    client = scanning_client(settings, plugin_manager, mode="stream", clamd=clamd.socket_path)
    for number in range(3):
        upload(client, people, "bob", name=f"{number}.txt", content=b"clean %d" % number)

    status, out = affix(scan_environ(environ, "stream", clamd.socket_path),
                        "scan", "--rescan", "--batch-size", "2")

    assert (status, out) == (0, "marked 3 scanned attachments for rescan\n"
                                "scanned 3 attachments: 3 clean, 0 quarantined\n")
    assert rows(catalog) == [(f"{number}.txt", "scanned", None) for number in range(3)]


class Crash(BaseException):
    """What a crash looks like to the code it stops: nothing after it runs."""


class CrashingAfter:
    """Tells of scans, and crashes the scan after the first ``survives`` of them."""

    def __init__(self, survives):
        self.survives = survives
        self.scanned = []
        self.quarantined = []

    @hookimpl
    def affix_attachment_scanned(self, attachment):
        self.scanned.append(attachment.id)
        if len(self.scanned) == self.survives:
            raise Crash()

    @hookimpl
    def affix_attachment_quarantined(self, attachment, finding):
        self.quarantined.append((attachment.id, finding))


def test_a_rescan_stopped_by_a_crash_goes_on_where_it_stopped(
        settings, plugin_manager, people, catalog, clamd, environ):
    client = scanning_client(settings, plugin_manager, mode="after", clamd=clamd.socket_path)
    ids = [upload(client, people, "bob", name=f"{number}.txt", content=b"clean %d" % number)
           .json["id"] for number in range(4)]
    ids.append(upload(client, people, "bob", name="eicar.com", content=eicar()).json["id"])
    with catalog.database.connection_context():
        catalog.Attachment.update(status="rescan").execute()
    blob_store = open_blob_store(settings.storage_url)
    scanner = ClamdScanner(clamd.socket_path, 30)
    subscription = subscribe(catalog, "http://127.0.0.1:9/hooks",
                             ["attachment.scanned", "attachment.quarantined"], FROZEN_NOW)
    webhooks = WebhookEvents(outbox=Outbox(catalog), clock=lambda: FROZEN_NOW)
    first = CrashingAfter(survives=2)

    with catalog.database.connection_context(), pytest.raises(Crash):
        scan_waiting(catalog, blob_store, scanner, events_for(first), webhooks, batch_size=2)
    assert [status for _, status, _ in rows(catalog)] == [
        "scanned", "scanned", "rescan", "rescan", "rescan"]

    second = CrashingAfter(survives=None)
    report = ScanReport()
    with catalog.database.connection_context():
        scan_waiting(catalog, blob_store, scanner, events_for(second), webhooks, batch_size=2,
                     report=report)

    assert (first.scanned, second.scanned, second.quarantined) == (
        ids[:2], ids[2:4], [(ids[4], FINDING)])
    assert report == ScanReport(scanned=2, quarantined=1, gone=0)
    assert rows(catalog)[-1] == ("eicar.com", "quarantined", FINDING)
    # each verdict's webhook was written with it, the crash's included: no verdict twice
    assert outbox(catalog) == [
        *((subscription, "attachment.scanned", each, False) for each in ids[:4]),
        (subscription, "attachment.quarantined", ids[4], False)]
    assert [json.loads(entry.body)["userId"] for entry in outbox_entries(catalog)] == [None] * 5


def events_for(plugin):
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    return Events(manager)


def test_affix_quarantine_lists_and_deletes_what_a_scan_found(
        settings, plugin_manager, people, catalog, clamd, environ, stored):
    client = scanning_client(settings, plugin_manager, mode="after", clamd=clamd.socket_path)
    upload(client, people, "bob", name="clean.txt", content=b"clean")
    infected = upload(client, people, "bob", name="eicar.com", content=eicar()).json["id"]
    scanning = scan_environ(environ, "after", clamd.socket_path)
    affix(scanning, "scan")

    assert affix(scanning, "quarantine", "list") == (
        0, f"{infected}\teicar.com\t68\tbob\t2014-05-21T08:51:20Z\t-\t{FINDING}\n"
           "1 quarantined attachment\n")
    assert affix(scanning, "quarantine", "delete", str(infected)) == (
        0, f"deleted attachment {infected} (eicar.com)\ndeleted 1 quarantined attachment\n")
    assert rows(catalog) == [("clean.txt", "scanned", None)]
    assert list(stored.files().values()) == [b"clean"]
    assert affix(scanning, "quarantine", "list") == (0, "0 quarantined attachments\n")
    assert md5(b"clean") == stored.rows()[0][3]


@pytest.fixture
def s3_settings(tmp_path, databases, s3_bucket):
    return databases.settings(tmp_path / "data", storage_url=s3_bucket.url(),
                              s3=s3_bucket.options)


def s3_scan_environ(environ, clamd, s3_bucket):
    return {**scan_environ(environ, "after", clamd.socket_path),
            **s3_environ(s3_bucket.endpoint_url), "AFFIX_STORAGE_URL": s3_bucket.url()}


def test_affix_scan_reads_from_s3_and_the_quarantine_deletes_there(
        s3_settings, plugin_manager, people, catalog, clamd, environ, s3_bucket):
    client = scanning_client(s3_settings, plugin_manager, mode="after", clamd=clamd.socket_path)
    upload(client, people, "bob", name="clean.txt", content=b"clean")
    infected = upload(client, people, "bob", name="eicar.com", content=eicar()).json["id"]
    scanning = s3_scan_environ(environ, clamd, s3_bucket)

    assert affix(scanning, "scan") == (0, "scanned 2 attachments: 1 clean, 1 quarantined\n")
    assert affix(scanning, "quarantine", "delete", str(infected)) == (
        0, f"deleted attachment {infected} (eicar.com)\ndeleted 1 quarantined attachment\n")
    assert rows(catalog) == [("clean.txt", "scanned", None)]
    assert list(s3_bucket.objects().values()) == [b"clean"]


def test_a_direct_upload_clamd_missed_at_its_completion_is_completed_by_the_retry(
        s3_settings, plugin_manager, people, catalog, own_clamd, s3_bucket):
    client = scanning_client(s3_settings, plugin_manager, mode="stream",
                             clamd=own_clamd.socket_path, timeout=SHORT_TIMEOUT)
    upload = direct_uploads.prepared(client, people, "bob", "notes.txt", b"helloworld")
    assert direct_uploads.send_to_store(upload, b"helloworld").status_code == 201
    staged_key = upload["_links"]["addAttachment"]["form_fields"]["key"]
    with own_clamd.stopped():
        response = direct_uploads.complete(client, people, "bob", upload)
    assert_error(response, 503, "ServiceUnavailable", UNCHECKED)
    assert response.headers["retry-after"] == "5"
    # the upload waits for its author's retry, its staged object kept, no copy of it left
    assert rows(catalog) == [("notes.txt", "prepared", None)]
    assert s3_bucket.objects() == {staged_key: b"helloworld"}

    # clamd back, the author completes it again
    retried = direct_uploads.complete(client, people, "bob", upload)
    assert retried.status_code == 200, retried.json
    assert (retried.json["id"], retried.json["status"]) == (upload["id"], "scanned")
    assert retried.json["digest"]["hash"] == md5(b"helloworld")
    assert retried.json["contentType"] == "text/plain"
    assert rows(catalog) == [("notes.txt", "scanned", None)]
    assert list(s3_bucket.objects().values()) == [b"helloworld"]
    assert staged_key not in s3_bucket.objects()


def test_eicar_uploaded_directly_is_refused_at_its_completion_leaving_nothing(
        s3_settings, plugin_manager, people, catalog, clamd, s3_bucket):
    client = scanning_client(s3_settings, plugin_manager, mode="stream", clamd=clamd.socket_path)
    upload = direct_uploads.prepared(client, people, "bob", "eicar.com", eicar())
    assert direct_uploads.send_to_store(upload, eicar()).status_code == 201
    assert_error(direct_uploads.complete(client, people, "bob", upload), 422,
                 "PropertyConstraintViolation", INFECTED, "file")
    assert rows(catalog) == []
    assert s3_bucket.objects() == {}


def storage_keys(catalog):
    with catalog.database.connection_context():
        return [row.storage_key
                for row in catalog.Attachment.select().order_by(catalog.Attachment.id)]


def test_a_quarantine_keeps_the_bytes_under_a_new_key(
        settings, plugin_manager, people, catalog, clamd, environ, stored):
    client = scanning_client(settings, plugin_manager, mode="after", clamd=clamd.socket_path)
    upload(client, people, "bob", name="clean.txt", content=b"clean")
    upload(client, people, "bob", name="eicar.com", content=eicar())
    [clean_key, infected_key] = storage_keys(catalog)

    affix(scan_environ(environ, "after", clamd.socket_path), "scan")

    [kept_clean_key, quarantine_key] = storage_keys(catalog)
    assert kept_clean_key == clean_key
    # a download that read the row before the scan finds nothing at the key it read
    assert quarantine_key != infected_key
    assert stored.files() == {clean_key: b"clean", quarantine_key: eicar()}


class DeletingWhileScanning:
    """clamd, and the attachment's author deleting it while clamd reads it."""

    def __init__(self, scanner, delete):
        self.scanner = scanner
        self.delete = delete

    def scan_file(self, file):
        assert self.delete().status_code == 204
        return self.scanner.scan_file(file)


def test_malware_deleted_while_scanned_leaves_no_quarantined_copy(
        settings, plugin_manager, people, catalog, clamd, stored):
    client = scanning_client(settings, plugin_manager, mode="after", clamd=clamd.socket_path)
    infected = upload(client, people, "bob", name="eicar.com", content=eicar()).json["id"]
    scanner = DeletingWhileScanning(
        ClamdScanner(clamd.socket_path, 30),
        lambda: client.simulate_delete(f"/api/v3/attachments/{infected}",
                                       headers=people.auth("bob")))
    webhooks = WebhookEvents(outbox=Outbox(catalog), clock=lambda: FROZEN_NOW)
    report = ScanReport()

    with catalog.database.connection_context():
        scan_waiting(catalog, open_blob_store(settings.storage_url), scanner,
                     events_for(CrashingAfter(survives=None)), webhooks, report=report)

    assert report == ScanReport(gone=1)
    assert stored.snapshot() == ([], {})


def pre_signed_link(client, people, login, attachment_id) -> str:
    response = get(client, people, login, f"/api/v3/attachments/{attachment_id}/download")
    assert response.status_code == 302, response.json
    return response.headers["location"]


def fetched(url) -> tuple:
    answer = requests.get(url, timeout=REQUEST_TIMEOUT)
    return answer.status_code, answer.content


def assert_cut_off(links, s3_bucket):
    """No link serves the bytes anymore: the object each names is gone. (moto answers a
    pre-signed GET of a missing key that overrides response headers with 403
    SignatureDoesNotMatch; S3 answers 403 AccessDenied or 404 NoSuchKey.)"""
    named = {urllib.parse.unquote(urllib.parse.urlsplit(link).path)
             .removeprefix(f"/{s3_bucket.name}/") for link in links}
    assert named.isdisjoint(s3_bucket.objects())
    for link in links:
        status, body = fetched(link)
        assert (status, eicar() in body) == (403, False), body


def test_a_quarantine_cuts_off_the_pre_signed_links_handed_out(
        s3_settings, plugin_manager, people, catalog, clamd, environ, s3_bucket):
    client = scanning_client(s3_settings, plugin_manager, mode="after", clamd=clamd.socket_path)
    infected = upload(client, people, "bob", name="eicar.com", content=eicar()).json
    # before its scan, its author downloads it (and is given a link in every answer)
    links = [pre_signed_link(client, people, "bob", infected["id"]),
             infected["_links"]["downloadLocation"]["href"]]
    assert [fetched(link) for link in links] == [(200, eicar())] * 2

    assert affix(s3_scan_environ(environ, clamd, s3_bucket), "scan") == (
        0, "scanned 1 attachment: 0 clean, 1 quarantined\n")

    assert_cut_off(links, s3_bucket)
    assert_error(get(client, people, "bob", f"/api/v3/attachments/{infected['id']}/download"),
                 403, "MissingPermission", QUARANTINED_MESSAGE)
    # kept for the admins under a key no link names, until affix quarantine delete
    [quarantine_key] = storage_keys(catalog)
    assert s3_bucket.objects() == {f"blobs/{quarantine_key}": eicar()}
    assert all(quarantine_key not in link for link in links)


def test_a_rescan_that_quarantines_cuts_off_the_links_of_every_viewer(
        s3_settings, plugin_manager, people, catalog, clamd, environ, s3_bucket):
    client = scanning_client(s3_settings, plugin_manager, mode="after", clamd=clamd.socket_path)
    work_package_id = created(client, people, "ada")
    attachment_id = upload(client, people, "ada", name="eicar.com", content=eicar(),
                           path=f"/api/v3/work_packages/{work_package_id}/attachments").json["id"]
    # scanned clean once, by signatures that did not know it yet
    with catalog.database.connection_context():
        catalog.Attachment.update(status="scanned").execute()
    # its author, and one who may only look
    viewers = ("ada", "eve")
    links = [pre_signed_link(client, people, login, attachment_id) for login in viewers]
    listing = f"/api/v3/work_packages/{work_package_id}/attachments"
    links += [get(client, people, login, listing).json["_embedded"]["elements"][0]
              ["_links"]["downloadLocation"]["href"] for login in viewers]
    assert {fetched(link) for link in links} == {(200, eicar())}

    assert affix(s3_scan_environ(environ, clamd, s3_bucket), "scan", "--rescan") == (
        0, "marked 1 scanned attachment for rescan\n"
           "scanned 1 attachment: 0 clean, 1 quarantined\n")

    assert_cut_off(links, s3_bucket)
    for login in viewers:
        assert_error(get(client, people, login, f"/api/v3/attachments/{attachment_id}/download"),
                     403, "MissingPermission", QUARANTINED_MESSAGE)
    assert list(s3_bucket.objects().values()) == [eicar()]


# --- over real HTTP ----------------------------------------------------------------------------

def test_affix_serve_scans_chunked_and_sized_uploads_while_they_stream(
        tmp_path, databases, clamd):
    scanning = {"AFFIX_SCAN_MODE": "stream", "AFFIX_CLAMD": clamd.tcp_address}
    with running_server(tmp_path, databases, HIGH_LIMIT, scanning) as server:
        clean = random_bytes(3 * 1024 * 1024)

        refused = [http.upload(server, "eicar.com", eicar(), chunked=chunked)
                   for chunked in (False, True)]
        accepted = http.upload(server, "clean.bin", clean, chunked=True)

        for response in refused:
            assert response.status_code == 422
            assert response.json()["message"] == INFECTED
        attachment_id = http.assert_uploaded(accepted, "clean.bin", clean)
        assert accepted.json()["status"] == "scanned"
        http.assert_downloads_as(server, attachment_id, clean)
        assert [row[1] for row in server.stored.rows()] == ["clean.bin"]
