"""Inspecting an upload as it streams: the ``affix_inspect_upload`` hook, for uploads without a
container and into one; refusals (422) and failures (503) leave nothing stored; the plugin
guide's SHA-256 plugin, as written."""
import hashlib
import logging
import types

import pytest

from affix import SCANNED, hookimpl
from support.bodies import upload_body
from support.client import post, upload
from support.content import md5, random_bytes
from support.defaults import SMALL_LIMIT
from support.errors import assert_error
from support.inspectors import Inspecting, Recorder
from support.processes import REPO_ROOT
from support.work_packages import created

UNCHECKED = "The file could not be checked. Please try again later."


class Events:
    def __init__(self):
        self.scanned = []

    @hookimpl
    def affix_attachment_scanned(self, attachment):
        self.scanned.append((attachment.id, attachment.status))


def statuses(catalog):
    with catalog.database.connection_context():
        return [row.status for row in catalog.Attachment.select().order_by(catalog.Attachment.id)]


def test_an_inspector_sees_every_byte_in_order_and_judges_the_whole_upload(
        client, people, plugin_manager, stored):
    recorder = Recorder()
    plugin = Inspecting(recorder)
    plugin_manager.register(plugin)
    content = random_bytes(SMALL_LIMIT)

    response = upload(client, people, "bob", name="data.bin", content=content)

    assert response.status_code == 200
    assert response.json["status"] == "uploaded"
    assert plugin.asked == [("bob", None)]
    assert b"".join(recorder.chunks) == content
    (judged,) = recorder.judged
    assert (judged.file_name, judged.size, judged.md5, judged.container_type) == (
        "data.bin", len(content), md5(content), None)
    assert recorder.closed == 1
    assert [row[1:4] for row in stored.rows()] == [("data.bin", len(content), md5(content))]


def test_an_upload_into_a_container_is_inspected_too(client, people, plugin_manager):
    work_package = created(client, people, "ada")
    recorder = Recorder()
    plugin = Inspecting(recorder)
    plugin_manager.register(plugin)

    response = upload(client, people, "ada", content=b"into a work package",
                      path=f"/api/v3/work_packages/{work_package}/attachments")

    assert response.status_code == 200
    assert plugin.asked == [("ada", "WorkPackage")]
    assert b"".join(recorder.chunks) == b"into a work package"
    assert recorder.judged[0].container_type == "WorkPackage"
    assert recorder.closed == 1


def test_an_empty_file_is_judged_without_a_chunk(client, people, plugin_manager):
    recorder = Recorder()
    plugin_manager.register(Inspecting(recorder))

    response = upload(client, people, "bob", content=b"")

    assert response.status_code == 200
    assert recorder.chunks == []
    assert recorder.judged[0].size == 0


def test_a_refusal_answers_422_with_the_message_and_stores_nothing(
        client, people, plugin_manager, stored, earlier):
    accepting, refusing = Recorder(), Recorder("Not this one.")
    plugin_manager.register(Inspecting(accepting), name="accepting")
    plugin_manager.register(Inspecting(refusing), name="refusing")

    response = upload(client, people, "bob", content=b"refused")

    assert_error(response, 422, "PropertyConstraintViolation", "Not this one.", "file")
    assert stored.snapshot() == earlier
    assert (accepting.closed, refusing.closed) == (1, 1)


@pytest.mark.parametrize("fails_in", ["feed", "verdict"])
def test_an_inspector_that_fails_answers_503_and_stores_nothing(
        client, people, plugin_manager, stored, earlier, caplog, fails_in):
    recorder = Recorder(fails_in=fails_in)
    plugin_manager.register(Inspecting(recorder))

    with caplog.at_level(logging.ERROR):
        response = upload(client, people, "bob", content=b"could not be checked")

    assert_error(response, 503, "ServiceUnavailable", UNCHECKED)
    assert response.headers["retry-after"] == "5"
    assert stored.snapshot() == earlier
    assert recorder.closed == 1
    assert (f"upload inspector support.inspectors.Recorder failed in {fails_in}"
            in caplog.messages)


def test_a_hook_that_fails_answers_503_before_reading_the_body(
        client, people, plugin_manager, stored, earlier, caplog):
    plugin_manager.register(Inspecting(fails=True), name="broken")

    with caplog.at_level(logging.ERROR):
        response = upload(client, people, "bob", content=b"never read")

    assert_error(response, 503, "ServiceUnavailable", UNCHECKED)
    assert stored.snapshot() == earlier
    assert "plugin 'broken' failed in affix_inspect_upload" in caplog.messages


def test_an_upload_cut_short_closes_its_inspector_unjudged(
        client, people, plugin_manager, stored, earlier):
    recorder = Recorder()
    plugin_manager.register(Inspecting(recorder))
    body, content_type = upload_body(b'{"fileName": "cut.txt"}', b"cut short")
    cut = body[:body.index(b"cut short") + 3]

    response = post(client, people, (cut, content_type), login="bob")

    assert_error(response, 400, "InvalidRequestBody",
                 "The request body ended before the closing boundary.")
    assert (recorder.judged, recorder.closed) == ([], 1)
    assert stored.snapshot() == earlier


def test_a_scanners_verdict_makes_the_upload_scanned_and_tells_plugins(
        client, people, plugin_manager, catalog):
    events = Events()
    plugin_manager.register(events)
    plugin_manager.register(Inspecting(Recorder(SCANNED)))

    response = upload(client, people, "bob", content=b"clean")

    assert response.status_code == 200
    assert response.json["status"] == "scanned"
    assert statuses(catalog) == ["scanned"]
    assert events.scanned == [(response.json["id"], "scanned")]


# --- the plugin guide's SHA-256 plugin -----------------------------------------------------------

SHA256_PLUGIN = REPO_ROOT / "docs" / "examples" / "plugins" / "sha256_plugin.py"


def test_the_documented_sha256_plugin_is_fourteen_lines_of_code():
    lines = [line for line in SHA256_PLUGIN.read_text().splitlines() if line.strip()]
    assert len(lines) == 14


def test_the_documented_sha256_plugin_works_as_written(
        client, people, plugin_manager, stored, earlier):
    plugin = types.ModuleType("sha256_plugin")
    exec(SHA256_PLUGIN.read_text(), plugin.__dict__)
    plugin.BLOCKED_SHA256.add(hashlib.sha256(b"known bad").hexdigest())
    plugin_manager.register(plugin)

    refused = upload(client, people, "bob", content=b"known bad")
    accepted = upload(client, people, "bob", content=b"anything else")

    assert_error(refused, 422, "PropertyConstraintViolation", "This file is blocked.", "file")
    assert accepted.status_code == 200
    assert [row[1:4] for row in stored.rows()] == [
        *[row[1:4] for row in earlier[0]], ("notes.txt", 13, md5(b"anything else"))]
