"""Full disks, for real (a small tmpfs, mounted: CI runs as root): an upload refused for want of
room leaves nothing, whether the disk is full before it, fills up under it, or has no room for
the first blob's folder; and a full database disk is 503, with the reason in the log. (A quota
or a failing disk played in process: functional/test_upload.py.)"""
import contextlib
import json
import logging
import os

import falcon.testing
import pytest

from affix.app import create_app, open_catalog
from affix.storage.local import STAGING_DIR
from affix.storage.partials import PARTIALS_DIR
from support.bodies import upload_body
from support.client import post, uploaded
from support.defaults import FROZEN_NOW, SMALL_LIMIT
from support.disks import small_disk
from support.errors import FULL, UNAVAILABLE, assert_error
from support.people import make_people
from support.state import Stored


# --- a full disk under the blobs -----------------------------------------------------------------

# room for a fan-out folder and one small blob, not for an upload of SMALL_LIMIT bytes
SMALL_DISK = 16 * 1024


@contextlib.contextmanager
def app_on_small_disk(tmp_path, databases, plugin_manager, disk_size, max_attachment_size,
                      inodes=None):
    """(client, people, stored) of an app whose blobs live on a real filesystem of
    ``disk_size`` bytes (and ``inodes`` files and folders: see ``small_disk``)."""
    with small_disk(tmp_path / "disk", disk_size, inodes) as disk:
        settings = databases.settings(tmp_path / "data", storage_url=str(disk),
                                      max_attachment_size=max_attachment_size)
        client = falcon.testing.TestClient(
            create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
        catalog = open_catalog(settings)
        try:
            yield client, make_people(catalog), Stored(catalog, disk)
        finally:
            catalog.database.close()


def test_a_full_disk_refuses_the_upload_and_leaves_nothing(tmp_path, databases, plugin_manager):
    with app_on_small_disk(tmp_path, databases, plugin_manager, SMALL_DISK,
                           SMALL_LIMIT) as (client, people, stored):
        kept = post(client, people, upload_body(b'{"fileName": "small.txt"}', b"fits"))
        assert kept.status_code == 200, kept.json
        earlier = stored.snapshot()

        response = post(client, people, upload_body(file=b"z" * (SMALL_LIMIT - 1024)))

        assert_error(response, *FULL)
        # no row, no staged file, and the blob that fitted untouched
        assert stored.snapshot() == earlier


def test_no_room_for_the_first_blob_s_folder_refuses_the_upload_and_leaves_nothing(
        tmp_path, databases, plugin_manager):
    # room for the disk's root, the store's staging folders (.staging and .tus) and a staged
    # file, not for the fan-out folder the first blob goes into
    with app_on_small_disk(tmp_path, databases, plugin_manager, SMALL_DISK, SMALL_LIMIT,
                           inodes=4) as (client, people, stored):
        response = post(client, people, upload_body(file=b"no folder"))
        assert_error(response, *FULL)
        assert stored.snapshot() == ([], {})
        assert sorted(path.name for path in stored.blob_root.iterdir()) == [
            STAGING_DIR, PARTIALS_DIR]


def test_a_disk_filling_up_under_a_large_upload_leaves_nothing(
        tmp_path, databases, plugin_manager):
    # past its first chunk a file is written on a thread of its own: the failure must still
    # reach the request, and the staged blob still be discarded
    with app_on_small_disk(tmp_path, databases, plugin_manager, 3 * 1024 * 1024,
                           8 * 1024 * 1024) as (client, people, stored):
        earlier = stored.snapshot()

        response = post(client, people, upload_body(file=os.urandom(5 * 1024 * 1024)))

        assert_error(response, *FULL)
        assert stored.snapshot() == earlier


# --- a full database disk (issue "Hardening", 10) ------------------------------------------------

@pytest.mark.sqlite_only("the database file fills a small disk of its own")
def test_a_full_database_disk_is_503_and_the_log_says_why(
        tmp_path, databases, plugin_manager, caplog):
    with small_disk(tmp_path / "data", 2 * 1024 * 1024) as data_dir:
        settings = databases.settings(data_dir, storage_url=str(tmp_path / "blobs"))
        client = falcon.testing.TestClient(
            create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
        catalog = open_catalog(settings)
        try:
            people = make_people(catalog)
            uploaded(client, people, "bob")
            stored = Stored(catalog, tmp_path / "blobs")
            before = stored.snapshot()
            filler = data_dir / "filler"
            with open(filler, "wb") as file:
                with pytest.raises(OSError):
                    while True:
                        file.write(b"\0" * 65536)
                        file.flush()
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                body, content_type = upload_body(
                    json.dumps({"fileName": "x" * 200, "description": "y" * 250}).encode(),
                    os.urandom(1024))
                responses = [client.simulate_post("/api/v3/attachments", body=body, headers={
                    **people.auth("bob"), "Content-Type": content_type}) for _ in range(20)]
            filler.unlink()
            failed = [response for response in responses if response.status_code != 200]
            assert failed, "the disk never filled up"
            for response in failed:
                assert_error(response, 503, "ServiceUnavailable", UNAVAILABLE)
            assert "database or disk is full" in caplog.text
            assert "cannot rollback" not in caplog.text
            # what failed left nothing; what was answered 200 is stored
            accepted = len(responses) - len(failed)
            rows, files = stored.snapshot()
            assert len(rows) == len(before[0]) + accepted
            assert len(files) == len(before[1]) + accepted
        finally:
            catalog.database.close()
