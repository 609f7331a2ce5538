"""The bytes of resumable uploads in progress, in the blob store, until the last one arrives
(a :class:`PartialStore`; S3's is :mod:`affix.storage.s3_partials`).

A PATCH's bytes are written as they arrive (a worker holds one read's worth at a time), made
durable, and only then does the upload's row say how far it is: so an offset a client was told
is always there, and bytes written past it (a PATCH cut short by a crash, a checksum that did
not match) are written over by the next PATCH. ``commit`` makes the whole file a blob at the
upload's storage key; ``discard`` removes every byte of the upload.
"""
import contextlib
import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from affix.storage.blob_store import StorageError
from affix.storage.local import LocalBlobStore, full_disk_as_store_full, fsync_directory
from affix.storage.resumable import Progress

# a folder of the store's own: neither staging (swept when a server starts) nor a fan-out folder
# (whose files are blobs that affix gc collects)
PARTIALS_DIR = ".tus"
# what joining partial uploads holds in memory at a time
COPY_CHUNK_SIZE = 1024 * 1024


class Appended(Protocol):
    """The bytes of one PATCH, written: ``progress`` is how far the upload is with them.
    ``keep`` makes them durable; ``drop`` gives them up (nothing else is called after it)
    without touching what the upload had before them. ``recorded`` is called once the row
    says ``progress``, maybe no longer under the lease: what was kept for the state before
    may go, and nothing that a later state could use."""

    progress: Progress

    def keep(self) -> None: ...

    def recorded(self) -> None: ...

    def drop(self) -> None: ...


class PartialStore(Protocol):
    def append(self, progress: Progress, chunks: Iterable[bytes]) -> Appended:
        """Write ``chunks`` after the ``progress.received`` bytes the upload has. On failure
        nothing is gone back over: whoever holds the upload's lease may :meth:`rewind`."""

    def rewind(self, progress: Progress) -> None:
        """Give up whatever was written past ``progress`` (the row's, read under the lease
        that its caller still holds): never call it without, as a new holder of the lease
        may be writing there."""

    def commit(self, progress: Progress) -> str:
        """Make the complete upload the blob ``progress.storage_key``; returns that key. Once
        more after it did (its caller failed after it): the same, doing nothing again."""

    def discard(self, progress: Progress) -> None:
        """Remove every byte of the upload (nothing happens when there is none)."""

    def join(self, target: Progress, sources: Sequence[Progress]) -> Progress:
        """Write the bytes of the complete uploads ``sources``, in order, as those of the
        upload ``target``, which has none yet (concatenation), a bounded amount in memory
        at a time; ``target``'s progress with them, durable. The sources keep their bytes
        until :meth:`remove_joined`."""

    def remove_joined(self, progress: Progress) -> None:
        """Remove every byte of an upload whose bytes were joined into another's (what
        :meth:`join` read them from included)."""


@dataclasses.dataclass
class _LocalAppended:
    file: BinaryIO
    folder: Path
    progress: Progress
    start: int

    def keep(self) -> None:
        with full_disk_as_store_full():
            os.fsync(self.file.fileno())
        self.file.close()
        if self.start == 0:
            # the file may be new: its name is durable only once the folder's entry is
            fsync_directory(self.folder)

    def drop(self) -> None:
        # nothing cut off here: only the lease's holder may (LocalPartials.rewind)
        self.file.close()

    def recorded(self) -> None:
        # one file, appended to: nothing of an earlier state is kept apart
        pass


def _write_all(file: BinaryIO, chunk: bytes) -> None:
    """Write the whole ``chunk`` to the unbuffered ``file`` (a write may take only part)."""
    view = memoryview(chunk)
    while view:
        view = view[file.write(view):]


class LocalPartials:
    """Partial files in ``<store>/.tus/``, one per upload, appended to; ``commit`` renames one
    into its fan-out folder, as a staged blob's commit does."""

    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        # its entry durable before a partial file in it is
        self.folder = store.make_folder(PARTIALS_DIR)

    def _path(self, progress: Progress) -> Path:
        return self.folder / progress.token

    def append(self, progress: Progress, chunks: Iterable[bytes]) -> "_LocalAppended":
        with full_disk_as_store_full():
            # made by the upload's first bytes; unbuffered, so that nothing this PATCH wrote
            # reaches the file after it has given up (a buffer flushed at close would)
            file = open(os.open(self._path(progress), os.O_RDWR | os.O_CREAT, 0o644), "r+b",
                        buffering=0)
        try:
            if os.fstat(file.fileno()).st_size < progress.received:
                # never fill what is missing with zeros
                raise StorageError(f"the partial upload {progress.token} lost bytes")
            # what a PATCH cut short wrote past the offset its client was told is overwritten
            file.truncate(progress.received)
            file.seek(progress.received)
            written = 0
            with full_disk_as_store_full():
                for chunk in chunks:
                    _write_all(file, chunk)
                    written += len(chunk)
        except BaseException:
            file.close()
            raise
        return _LocalAppended(file, self.folder, dataclasses.replace(
            progress, received=progress.received + written), progress.received)

    def rewind(self, progress: Progress) -> None:
        # a PATCH that failed before its first write may have made no file
        with contextlib.suppress(FileNotFoundError), open(self._path(progress), "r+b") as file:
            if os.fstat(file.fileno()).st_size > progress.received:
                file.truncate(progress.received)

    def commit(self, progress: Progress) -> str:
        if self._store.path_of(progress.storage_key).exists():
            # by an earlier try, whose caller failed after it: nothing else writes that key
            return progress.storage_key
        if progress.received == 0:
            # an empty file never had bytes to make its partial file
            open(self._path(progress), "ab").close()
        self._store.place(self._path(progress), progress.storage_key)
        return progress.storage_key

    def discard(self, progress: Progress) -> None:
        self._path(progress).unlink(missing_ok=True)

    def join(self, target: Progress, sources: Sequence[Progress]) -> Progress:
        received = 0
        with full_disk_as_store_full(), open(self._path(target), "wb") as joined:
            for source in sources:
                if source.received == 0:
                    # an empty upload never had bytes to make its partial file
                    continue
                with open(self._path(source), "rb") as part:
                    if os.fstat(part.fileno()).st_size < source.received:
                        raise StorageError(f"the partial upload {source.token} lost bytes")
                    # a copy of the file's first ``received`` bytes, a chunk at a time: bytes
                    # past them are a PATCH's that was cut short
                    copied = _copy(part, joined, source.received)
                received += copied
            joined.flush()
            os.fsync(joined.fileno())
        fsync_directory(self.folder)
        return dataclasses.replace(target, received=received)

    def remove_joined(self, progress: Progress) -> None:
        self.discard(progress)


def _copy(source: BinaryIO, target: BinaryIO, length: int) -> int:
    """Copy the first ``length`` bytes of ``source`` to ``target``; how many."""
    copied = 0
    while copied < length:
        chunk = source.read(min(COPY_CHUNK_SIZE, length - copied))
        if not chunk:
            break
        target.write(chunk)
        copied += len(chunk)
    return copied
