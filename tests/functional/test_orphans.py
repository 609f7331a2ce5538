"""Blobs without a row (a crash between committing a blob and writing its row): found by
``storage.orphans``, removed by ``affix gc`` only once older than the cutoff, never a blob that
a row references, never one in staging."""
import datetime
import errno
import io
import os
from pathlib import Path

import pytest

from affix.app.cli.commands import main
from affix.storage.models import utc_now
from affix.storage.orphans import find_orphans, remove_orphans
from affix.storage.stores import open_blob_store
from support.bodies import upload_body

TWO_DAYS = datetime.timedelta(days=2)


def age(path: Path, delta):
    """Date the file's modification ``delta`` back from now."""
    moment = (datetime.datetime.now(datetime.UTC) - delta).timestamp()
    os.utime(path, (moment, moment))


def orphan(blob_store, content) -> str:
    """A committed blob that no row references, as a crash leaves it."""
    staged = blob_store.stage()
    staged.write(content)
    return staged.commit()


def upload(client, people, content=b"hello"):
    body, content_type = upload_body(file=content)
    response = client.simulate_post("/api/v3/attachments", headers=people.auth("ada"),
                                    body=body, content_type=content_type)
    assert response.status_code == 200, response.json


@pytest.fixture
def blob_store(settings, app):
    return open_blob_store(settings.storage_url)


@pytest.fixture
def scene(client, people, stored, blob_store):
    """An old attachment, an old orphan, a young orphan and an old file in staging."""
    upload(client, people)
    [(_, _, _, _, kept)] = stored.rows()
    old_orphan = orphan(blob_store, b"old orphan")
    young_orphan = orphan(blob_store, b"young orphan")
    # what an upload cut short by a crash leaves in staging
    in_staging = blob_store.staging / "cut-short"
    in_staging.write_bytes(b"an upload cut short")
    for key in (kept, old_orphan):
        age(blob_store.path_of(key), TWO_DAYS)
    age(in_staging, TWO_DAYS)
    return {"kept": kept, "old": old_orphan, "young": young_orphan,
            "staging": in_staging.relative_to(stored.blob_root).as_posix()}


def test_only_old_blobs_without_a_row_are_removed(catalog, blob_store, stored, scene):
    before = stored.snapshot()
    cutoff = utc_now() - datetime.timedelta(days=1)
    with catalog.database.connection_context():
        assert find_orphans(catalog, blob_store, cutoff) == [scene["old"]]
        assert stored.snapshot() == before
        assert remove_orphans(catalog, blob_store, cutoff) == [scene["old"]]
        assert find_orphans(catalog, blob_store, cutoff) == []
    rows, files = before
    del files[scene["old"]]
    assert stored.snapshot() == (rows, files)
    assert set(files) == {scene["kept"], scene["young"], scene["staging"]}


def test_lookups_in_batches_find_every_referenced_blob(catalog, blob_store, stored, people,
                                                      client):
    for number in range(5):
        upload(client, people, f"file {number}".encode())
    orphans = sorted(orphan(blob_store, f"orphan {n}".encode()) for n in range(3))
    future = utc_now() + datetime.timedelta(minutes=1)
    with catalog.database.connection_context():
        # more keys than one batch holds: every batch's rows count
        assert find_orphans(catalog, blob_store, future, batch_size=2) == orphans


def cli_environ(settings):
    return {"AFFIX_DATA_DIR": str(settings.data_dir), "AFFIX_DATABASE_URL": settings.database_url,
            "AFFIX_STORAGE_URL": settings.storage_url}


def test_affix_gc_dry_run_lists_and_keeps(settings, stored, scene):
    before = stored.snapshot()
    out = io.StringIO()
    assert main(["gc", "--dry-run"], environ=cli_environ(settings), out=out) == 0
    assert out.getvalue() == (
        f"would remove {scene['old']}\n"
        "would remove 1 blob without an attachment, older than 1440 minutes\n")
    assert stored.snapshot() == before


def test_affix_gc_removes_and_says_what(settings, stored, scene):
    out = io.StringIO()
    assert main(["gc", "--min-age", "60"], environ=cli_environ(settings), out=out) == 0
    # the file in staging was last written two days ago: no upload lasts that long
    assert out.getvalue() == (
        f"removed {scene['old']}\n"
        "removed 1 blob without an attachment, older than 60 minutes\n"
        "removed 1 partial upload left in staging, older than 60 minutes\n")
    assert set(stored.files()) == {scene["kept"], scene["young"]}

    out = io.StringIO()
    assert main(["gc", "--min-age", "0"], environ=cli_environ(settings), out=out) == 0
    # the young orphan goes once the cutoff passes it
    assert out.getvalue() == (
        f"removed {scene['young']}\n"
        "removed 1 blob without an attachment, older than 0 minutes\n")
    assert set(stored.files()) == {scene["kept"]}
    assert len(stored.rows()) == 1


@pytest.mark.on_cue("blob_store")
def test_a_blob_the_store_fails_to_delete_is_left_to_gc(
        client, people, catalog, services, stored, caplog):
    upload(client, people, b"doomed")
    [(attachment_id, _, _, _, key)] = stored.rows()

    def failing_delete(storage_key):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    services.blob_store.replace("delete", failing_delete)
    response = client.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                      headers=people.auth("ada"))
    services.blob_store.restore("delete")
    # the attachment is gone, as asked; its bytes wait for gc
    assert response.status_code == 204
    assert stored.rows() == []
    assert list(stored.files()) == [key]
    assert f"could not delete blob {key}; affix gc will" in caplog.text
    with catalog.database.connection_context():
        assert remove_orphans(catalog, services.blob_store.part,
                              utc_now() + datetime.timedelta(minutes=1)) \
            == [key]
    assert stored.files() == {}
