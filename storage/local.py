"""Blobs as files in a folder on the local disk (a :class:`~affix.storage.blob_store.BlobStore`).

Staged blobs are files in a staging folder; ``commit`` renames one into its fan-out folder and
then makes both its bytes and the rename durable with one flush of the file system, shared with
the other uploads that commit meanwhile (:mod:`affix.storage.group_sync`). A crash before that
flush can leave a blob in place whose bytes never reached the disk; no row names it (the row
is written after the flush), and ``affix gc`` collects it as any unreferenced blob.
"""
import contextlib
import datetime
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from affix.storage.blob_store import (
    FAN_OUT, PROBE_BYTES, StorageError, StoreFull, is_storage_key, new_storage_key,
)
from affix.storage import group_sync
from affix.storage.group_sync import GroupSync

if TYPE_CHECKING:
    from affix.storage.partials import LocalPartials

STAGING_DIR = ".staging"
# a staged blob's bytes are given to the disk in steps of this size as they come (see
# group_sync.start_writeback): the flush at commit then writes less than one step
WRITEBACK_STEP = 8 * 1024 * 1024
# what a full disk or an exhausted quota answers
_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def full_disk_as_store_full() -> Iterator[None]:
    try:
        yield
    except OSError as error:
        if error.errno in _FULL:
            raise StoreFull(f"no space left to store the file: {error}") from error
        raise


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedLocalBlob:
    """A blob being written into the staging folder of a :class:`LocalBlobStore`."""

    def __init__(self, store: "LocalBlobStore") -> None:
        self._store = store
        self.path = store.staging / secrets.token_hex(16)
        with full_disk_as_store_full():
            self._file = open(self.path, "xb")
        self._written = 0
        self._written_back = 0  # where the range the disk was last asked to write ends

    def write(self, data: bytes) -> None:
        with full_disk_as_store_full():
            self._file.write(data)
        self._written += len(data)
        if self._written - self._written_back >= WRITEBACK_STEP:
            # only a head start for the flush at commit, which makes the bytes durable and
            # reports any failure of the disk's: a failure here says nothing more
            with contextlib.suppress(OSError):
                group_sync.start_writeback(self._file.fileno(), self._written_back,
                                           self._written - self._written_back)
            self._written_back = self._written

    def commit(self) -> str:
        """Make the blob durable and permanent; returns its storage key."""
        with full_disk_as_store_full():
            self._file.close()
        key = self._store.new_key()
        try:
            self._store.place(self.path, key)
        except BaseException:
            # renamed maybe, but not durably: no blob is half kept
            self._store.delete(key)
            raise
        return key

    def discard(self) -> None:
        # closing flushes what is buffered, and on a full disk fails for the same reason the
        # upload did: the bytes are thrown away anyway, and the file must go all the same
        with contextlib.suppress(OSError):
            self._file.close()
        self.path.unlink(missing_ok=True)


class LocalBlobStore:
    """Blobs as files in a folder on the local disk, in 256 fan-out folders.

    A fan-out folder is made by the first blob that goes into it, not when the store opens: a
    store that holds few blobs (a test's, a small installation's) has few folders, and a new
    store costs one folder rather than 257. Each store object remembers the folders whose
    entries it knows to be durable, so a commit into one of them syncs only its own folder.
    """

    def __init__(self, root: str | os.PathLike[str], *,
                 new_key: Callable[[], str] = new_storage_key) -> None:
        """The store in the folder ``root``; each blob committed gets the key ``new_key()``
        makes."""
        self.root = Path(root)
        self.new_key = new_key
        self.staging = self.root / STAGING_DIR
        self.staging.mkdir(parents=True, exist_ok=True)
        self._flushes = GroupSync(self.root)
        self._durable_folders = {path.name for path in self.root.iterdir()
                                 if path.name in FAN_OUT}
        # the entries found, durable before a blob is renamed into one of their folders: their
        # maker may have crashed, or still be on its way, before its own fsync
        fsync_directory(self.root)

    def place(self, source: Path, key: str) -> None:
        """Rename ``source``, a file on this store's file system, to be blob ``key``, durably:
        its bytes, the rename, and the entry of a fan-out folder made for it."""
        target = self.path_of(key)
        folder = target.parent
        # a new folder, or a new entry in a full folder, needs room of its own
        with full_disk_as_store_full():
            if folder.name not in self._durable_folders:
                self._make_durable_folder(folder)
            try:
                os.rename(source, target)
            except FileNotFoundError:
                if not os.path.exists(source):
                    raise
                # the folder went since (an operator tidied away an empty one): made again
                self._make_durable_folder(folder)
                os.rename(source, target)
            # the bytes and the rename are durable once the file system was flushed after both
            self._flushes.sync()

    def _make_durable_folder(self, folder: Path) -> None:
        self.make_folder(folder.name)
        self._durable_folders.add(folder.name)

    def make_folder(self, name: str) -> Path:
        """The folder ``name`` in the store's root, made if it is not there, its entry durable:
        made here, or by another process that may not have synced it yet."""
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        fsync_directory(self.root)
        return folder

    def sweep_staging(self, cutoff: datetime.datetime | None = None,
                      keep: frozenset[str] = frozenset()) -> int:
        """Remove what uploads cut short left in staging: everything, or with ``cutoff`` (naive
        UTC) only files last written before it; returns how many. ``keep`` is for stores
        whose resumable uploads write into staging: here they never do (``.tus/``).

        Everything is only safe while no upload is running: ``affix serve`` sweeps so before
        any worker starts; ``affix gc``, which runs beside the workers, with a cutoff older than
        any upload lasts.
        """
        swept = 0
        for path in self.staging.iterdir():
            try:
                if cutoff is not None and _modified(path) >= cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                # committed or discarded meanwhile
                continue
            swept += 1
        return swept

    def check_reachable(self) -> None:
        if not os.access(self.staging, os.W_OK | os.X_OK):
            raise StorageError(f"{self.staging} is not a folder affix can write to")

    def probe(self) -> None:
        # in staging, whose sweep removes what a crash between the two steps leaves
        path = self.staging / f"probe-{secrets.token_hex(8)}"
        try:
            with open(path, "xb") as file:
                file.write(PROBE_BYTES)
                os.fsync(file.fileno())
            path.unlink()
        except OSError as error:
            raise StorageError(f"could not write a probe file in {self.staging}: "
                               f"{error.strerror}") from error

    def stage(self) -> StagedLocalBlob:
        return StagedLocalBlob(self)

    def partial_store(self) -> "LocalPartials":
        # imported here: the partial store builds on this module
        from affix.storage.partials import LocalPartials
        return LocalPartials(self)

    def path_of(self, key: str) -> Path:
        return self.root / key

    def open(self, key: str) -> BinaryIO:
        """A binary file object of the blob, for reading."""
        return open(self.path_of(key), "rb")

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def download_url(self, key: str, content_type: str, content_disposition: str) -> None:
        """None: a local blob has no URL of its own; the app serves its bytes."""
        return None

    def stored_blobs(self) -> Iterator[tuple[str, datetime.datetime]]:
        """(key, last modified as naive UTC) of every committed blob: files named as the store
        names blobs, in its fan-out folders. Nothing else in the folder is ever listed, so
        nothing else is ever collected."""
        for prefix in FAN_OUT:
            # a folder no blob went into was never made: rglob lists nothing there
            for path in (self.root / prefix).rglob("*"):
                key = path.relative_to(self.root).as_posix()
                if not is_storage_key(key):
                    continue
                try:
                    if not path.is_file():
                        continue
                    modified = _modified(path)
                except FileNotFoundError:
                    # deleted while we looked: nothing to collect
                    continue
                yield key, modified


def _modified(path: Path) -> datetime.datetime:
    """When ``path`` was last written, as naive UTC."""
    moment = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    return moment.replace(tzinfo=None)
