"""The local blob store's layout and what it makes durable, seen through the fsyncs and the
flushes of its file system that it asks for."""
import errno
import os
from pathlib import Path

import pytest

from affix.storage import group_sync
from affix.storage.blob_store import StoreFull
from affix.storage.local import STAGING_DIR, WRITEBACK_STEP, LocalBlobStore
from affix.storage.partials import PARTIALS_DIR, LocalPartials
from affix.storage.stores import open_partial_store, open_upload_staging


def recording(monkeypatch, module, name) -> list:
    """The paths of the descriptors ``module.name`` is called on, in order; each call is still
    made."""
    paths = []
    real = getattr(module, name)

    def record(fd):
        paths.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)
    monkeypatch.setattr(module, name, record)
    return paths


@pytest.fixture
def fsynced(monkeypatch):
    """The paths os.fsync is called on, in order."""
    return recording(monkeypatch, os, "fsync")


@pytest.fixture
def flushed(monkeypatch):
    """The folders whose file system syncfs flushes, in order."""
    return recording(monkeypatch, group_sync, "syncfs")


class UpcomingKeys(list):
    """The keys the next commits get, in order, instead of random ones: the store is made
    with ``new_key=keys``, and the test says which with ``keys.extend(...)``."""

    def __call__(self) -> str:
        return self.pop(0)


@pytest.fixture
def keys():
    return UpcomingKeys()


def key_in(folder: str, number: int) -> str:
    return f"{folder}/{folder}{number:030x}"


def committed(store, content: bytes) -> tuple:
    """The key ``content`` was committed under, and the staged file it came from."""
    staged = store.stage()
    staged.write(content)
    return staged.commit(), staged.path


def test_a_new_store_makes_only_its_staging_folder_and_syncs_its_entry(tmp_path, fsynced):
    root = tmp_path / "blobs"
    LocalBlobStore(root)
    assert [path.name for path in root.iterdir()] == [STAGING_DIR]
    assert fsynced == [root]


def test_reopening_a_store_syncs_the_folders_entries_again(tmp_path, fsynced):
    # an earlier opener may have made them and crashed before its fsync
    LocalBlobStore(tmp_path)
    fsynced.clear()
    LocalBlobStore(tmp_path)
    assert fsynced == [tmp_path]


def test_the_first_commit_into_a_folder_makes_it_and_syncs_its_entry(
        tmp_path, fsynced, flushed, keys):
    store = LocalBlobStore(tmp_path, new_key=keys)
    keys.extend([key_in("ab", 1), key_in("ab", 2)])
    fsynced.clear()
    # the bytes and the rename: one flush of the store's file system after both
    first, _ = committed(store, b"durable bytes")
    assert (first, fsynced, flushed) == (key_in("ab", 1), [tmp_path], [tmp_path])
    fsynced.clear()
    # the folder's entry is known durable now: the next commit into it only flushes
    second, _ = committed(store, b"more bytes")
    assert (second, fsynced, flushed) == (key_in("ab", 2), [], [tmp_path, tmp_path])
    assert [(tmp_path / key).read_bytes() for key in (first, second)] == [
        b"durable bytes", b"more bytes"]
    assert list(store.staging.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([STAGING_DIR, "ab"])


def test_a_folder_another_process_made_is_synced_again_by_the_first_commit_here(
        tmp_path, fsynced, flushed, keys):
    # two workers' stores, opened before either made the folder: the one that did may not
    # have synced its entry yet when the other renames a blob into it
    here, elsewhere = (LocalBlobStore(tmp_path, new_key=keys),
                       LocalBlobStore(tmp_path, new_key=keys))
    keys.extend([key_in("cd", 1), key_in("cd", 2)])
    committed(elsewhere, b"first")
    fsynced.clear()
    flushed.clear()
    key, _ = committed(here, b"second")
    assert (key, fsynced, flushed) == (key_in("cd", 2), [tmp_path], [tmp_path])


def test_a_store_opened_after_a_folder_was_made_knows_it_durable(
        tmp_path, fsynced, flushed, keys):
    keys.extend([key_in("ef", 1), key_in("ef", 2)])
    committed(LocalBlobStore(tmp_path, new_key=keys), b"first")
    reopened = LocalBlobStore(tmp_path, new_key=keys)
    fsynced.clear()
    flushed.clear()
    key, _ = committed(reopened, b"second")
    assert (key, fsynced, flushed) == (key_in("ef", 2), [], [tmp_path])


def test_blobs_of_the_earlier_two_level_layout_are_still_served_and_listed(tmp_path):
    store = LocalBlobStore(tmp_path)
    old_key = "ab/cd/abcd" + "0" * 28
    (tmp_path / "ab" / "cd").mkdir(parents=True)
    (tmp_path / old_key).write_bytes(b"from an earlier version")
    with store.open(old_key) as blob:
        assert blob.read() == b"from an earlier version"
    assert [key for key, _ in store.stored_blobs()] == [old_key]
    store.delete(old_key)
    assert not (tmp_path / old_key).exists()


def test_a_folder_tidied_away_since_is_made_again(tmp_path, fsynced, flushed, keys):
    store = LocalBlobStore(tmp_path, new_key=keys)
    keys.extend([key_in("ab", 1), key_in("ab", 2)])
    first, _ = committed(store, b"gone")
    store.delete(first)
    # an operator removes the empty folder while the store still knows it
    (tmp_path / "ab").rmdir()
    fsynced.clear()
    flushed.clear()
    key, _ = committed(store, b"kept")
    assert (key, fsynced, flushed) == (key_in("ab", 2), [tmp_path], [tmp_path])
    assert (tmp_path / key).read_bytes() == b"kept"


def test_the_partial_files_folder_s_entry_is_durable_when_it_opens(tmp_path, fsynced):
    store = LocalBlobStore(tmp_path)
    fsynced.clear()
    LocalPartials(store)
    assert (tmp_path / PARTIALS_DIR).is_dir()
    assert fsynced == [tmp_path]


class StoreThatTakesDirectUploads(LocalBlobStore):
    """A kind of store affix does not know, declaring the ability by the method it has."""

    def upload_staging(self, form_lifetime):
        return ("staging", self, form_lifetime)

    def partial_store(self):
        return ("partials", self)


def test_a_store_s_abilities_are_what_it_declares_not_its_class(tmp_path):
    store = StoreThatTakesDirectUploads(tmp_path / "declared")
    local = LocalBlobStore(tmp_path / "local")

    assert open_upload_staging(store, 60) == ("staging", store, 60)
    assert open_partial_store(store) == ("partials", store)
    assert open_upload_staging(local, 60) is None
    assert type(open_partial_store(local)) is LocalPartials


@pytest.mark.parametrize("error_number, error_type, message", [
    (errno.ENOSPC, StoreFull,
     "no space left to store the file: [Errno 28] No space left on device"),
    (errno.EIO, OSError, "[Errno 5] Input/output error"),
])
def test_a_commit_whose_flush_fails_keeps_no_blob(tmp_path, monkeypatch, keys, error_number,
                                                  error_type, message):
    store = LocalBlobStore(tmp_path, new_key=keys)
    keys.extend([key_in("ab", 1)])

    def failing_syncfs(fd):
        raise OSError(error_number, os.strerror(error_number))
    monkeypatch.setattr(group_sync, "syncfs", failing_syncfs)
    staged = store.stage()
    staged.write(b"never durable")
    with pytest.raises(error_type) as raised:
        staged.commit()
    assert (type(raised.value), str(raised.value)) == (error_type, message)
    # the blob was renamed into place before the flush: it goes again
    assert (list(store.stored_blobs()), list(store.staging.iterdir())) == ([], [])


def test_a_large_blob_is_given_to_the_disk_in_steps_as_it_is_written(tmp_path, monkeypatch,
                                                                      flushed, keys):
    """sync_file_range starts each step's writeback as the bytes come; the flush at commit
    still makes them durable."""
    started = []
    real = group_sync.start_writeback

    def record(fd, offset, length):
        started.append((Path(os.readlink(f"/proc/self/fd/{fd}")), offset, length))
        real(fd, offset, length)
    monkeypatch.setattr(group_sync, "start_writeback", record)
    store = LocalBlobStore(tmp_path, new_key=keys)
    keys.append(key_in("ab", 1))
    chunk = os.urandom(1024 * 1024)
    staged = store.stage()
    for _ in range(20):
        staged.write(chunk)

    assert staged.commit() == key_in("ab", 1)
    step = WRITEBACK_STEP
    assert started == [(staged.path, 0, step), (staged.path, step, step)]
    assert flushed == [tmp_path]
    assert store.path_of(key_in("ab", 1)).read_bytes() == chunk * 20


def test_a_blob_smaller_than_a_step_is_only_flushed_at_commit(tmp_path, monkeypatch, flushed,
                                                              keys):
    started = []
    monkeypatch.setattr(group_sync, "start_writeback", lambda *call: started.append(call))
    store = LocalBlobStore(tmp_path, new_key=keys)
    keys.append(key_in("ab", 2))

    assert committed(store, b"x" * (WRITEBACK_STEP - 1))[0] == key_in("ab", 2)
    assert (started, flushed) == ([], [tmp_path])


def test_starting_writeback_asks_the_kernel_for_the_range_and_says_when_it_refuses(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 65536)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert group_sync.start_writeback(fd, 0, 65536) is None
        with pytest.raises(OSError) as refused:
            group_sync.start_writeback(fd, -1, 65536)  # a negative offset is EINVAL
    finally:
        os.close(fd)
    assert refused.value.errno == errno.EINVAL
    assert path.read_bytes() == b"x" * 65536


def test_a_writeback_the_kernel_refuses_leaves_the_flush_at_commit_to_do_it(tmp_path, monkeypatch,
                                                                             flushed, keys):
    def refuse(fd, offset, length):
        raise OSError(errno.EIO, "sync_file_range: Input/output error")
    monkeypatch.setattr(group_sync, "start_writeback", refuse)
    store = LocalBlobStore(tmp_path, new_key=keys)
    keys.append(key_in("ab", 3))
    content = os.urandom(WRITEBACK_STEP + 1)

    assert committed(store, content)[0] == key_in("ab", 3)
    assert flushed == [tmp_path]
    assert store.path_of(key_in("ab", 3)).read_bytes() == content
