"""The local blob store's layout and what it makes durable, seen through the fsyncs it asks for."""
import os
from pathlib import Path

import pytest

from affix.storage.blob_store import FAN_OUT
from affix.storage.local import STAGING_DIR, LocalBlobStore
from support.state import STORAGE_KEY


@pytest.fixture
def fsynced(monkeypatch):
    """The paths os.fsync is called on, in order."""
    paths = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        paths.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    return paths


def test_a_new_store_makes_its_folders_and_their_entries_durable(tmp_path, fsynced):
    root = tmp_path / "blobs"
    LocalBlobStore(root)
    assert sorted(path.name for path in root.iterdir()) == sorted([STAGING_DIR, *FAN_OUT])
    assert len(FAN_OUT) == 256
    assert fsynced == [root]


def test_reopening_a_store_syncs_the_folders_entries_again(tmp_path, fsynced):
    # an earlier opener may have made them and crashed before its fsync
    LocalBlobStore(tmp_path)
    fsynced.clear()
    LocalBlobStore(tmp_path)
    assert fsynced == [tmp_path]


def test_a_commit_syncs_the_blob_then_its_folder_and_makes_no_folder(tmp_path, fsynced):
    store = LocalBlobStore(tmp_path)
    folders_before = sorted(path for path in tmp_path.rglob("*") if path.is_dir())
    fsynced.clear()
    staged = store.stage()
    staged_path = staged.path
    staged.write(b"durable bytes")
    key = staged.commit()
    assert STORAGE_KEY.fullmatch(key)
    target = tmp_path / key
    assert fsynced == [staged_path, target.parent]
    assert target.read_bytes() == b"durable bytes"
    assert list(store.staging.iterdir()) == []
    assert sorted(path for path in tmp_path.rglob("*") if path.is_dir()) == folders_before


def test_blobs_of_the_earlier_two_level_layout_are_still_served_and_listed(tmp_path):
    store = LocalBlobStore(tmp_path)
    old_key = "ab/cd/abcd" + "0" * 28
    (tmp_path / "ab" / "cd").mkdir()
    (tmp_path / old_key).write_bytes(b"from an earlier version")
    with store.open(old_key) as blob:
        assert blob.read() == b"from an earlier version"
    assert [key for key, _ in store.stored_blobs()] == [old_key]
    store.delete(old_key)
    assert not (tmp_path / old_key).exists()
