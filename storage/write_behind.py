"""Hashing and writing a staged blob on a thread of its own, so that hashing and storing one
chunk overlaps receiving and parsing the next.

File writes, S3 part uploads and md5 all release the GIL: with them moved off the request's
thread, a large upload keeps two cores busy instead of one, and goes as fast as the slower of
the two halves rather than their sum. Small blobs are hashed and written directly: a thread
costs more than it saves below one chunk.
"""
import queue
import threading
from typing import Protocol

from affix.storage.blob_store import StagedBlob

# chunks waiting for the writer: memory stays bounded (a few chunks) however large the blob
QUEUE_DEPTH = 2


class Digest(Protocol):
    """What WriteBehind needs of a hashlib object."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class WriteBehind:
    """Wraps a staged blob (``write``, ``commit``, ``discard``): writes past the first
    ``direct_size`` bytes go through a bounded queue to a writer thread. Every byte written is
    also fed to ``digest`` (a hashlib object), in order, on the thread that writes it.

    A write that fails on the writer thread is raised by the next ``write``, by ``hexdigest``
    or by ``commit``; all three of ``hexdigest``, ``commit`` and ``discard`` wait for the writer
    to finish first, so the digest is of every byte, and the underlying blob is never committed
    or discarded while a write is in flight.
    """

    def __init__(self, staged_blob: StagedBlob, direct_size: int, digest: Digest) -> None:
        self._staged_blob = staged_blob
        self._digest = digest
        self._direct_left = direct_size
        # the writer thread and the queue it drains (None on it: the end of the blob), made by
        # the first write that is not direct: most blobs never need them
        self._writer: tuple[threading.Thread, queue.Queue[bytes | None]] | None = None
        self._failure: BaseException | None = None

    def write(self, data: bytes) -> None:
        self._raise_failure()
        if self._writer is None and self._direct_left > 0:
            self._direct_left -= len(data)
            self._store(data)
            return
        if self._writer is None:
            chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_DEPTH)
            thread = threading.Thread(target=self._drain, args=(chunks,),
                                      name="affix-write-behind", daemon=True)
            thread.start()
            self._writer = thread, chunks
        self._writer[1].put(data)

    def _drain(self, chunks: "queue.Queue[bytes | None]") -> None:
        while (data := chunks.get()) is not None:
            # after a failure, chunks are still taken (and dropped) so that no put blocks
            if self._failure is None:
                try:
                    self._store(data)
                except BaseException as failure:  # handed to the request's thread
                    self._failure = failure

    def _store(self, data: bytes) -> None:
        self._digest.update(data)
        self._staged_blob.write(data)

    def _stop_writer(self) -> None:
        if self._writer is not None:
            thread, chunks = self._writer
            chunks.put(None)
            thread.join()
            self._writer = None

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def hexdigest(self) -> str:
        """The digest of everything written, once the writer has caught up."""
        self._stop_writer()
        self._raise_failure()
        return self._digest.hexdigest()

    def commit(self) -> str:
        self._stop_writer()
        self._raise_failure()
        return self._staged_blob.commit()

    def discard(self) -> None:
        self._stop_writer()
        self._staged_blob.discard()
