"""Hashing and writing a staged blob on threads of their own, so that hashing one chunk, storing
it and receiving and parsing the next all overlap.

File writes, S3 part uploads and md5 all release the GIL. md5 cannot be split (each block
depends on the one before), and at about 1.1 ms per MiB it is the slowest of the three, so it
gets a thread to itself: were the same thread to write too, a large upload would go as fast as
md5 and the write together (on tmpfs, about a third slower than md5 alone). Small blobs are
hashed and written directly: threads cost more than they save below one chunk.
"""
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from affix.storage.blob_store import StagedBlob

# chunks waiting for each worker: memory stays bounded (a few chunks) however large the blob
QUEUE_DEPTH = 2


class Digest(Protocol):
    """What WriteBehind needs of a hashlib object."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Worker:
    """A thread that passes every chunk put to it, in order, to ``consume``. After a failure
    it goes on taking chunks (and dropping them), so that no ``put`` blocks."""

    def __init__(self, consume: Callable[[bytes], None], name: str) -> None:
        self.failure: BaseException | None = None
        self._consume = consume
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._stopped = False
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        self._chunks.put(data)

    def _drain(self) -> None:
        while (data := self._chunks.get()) is not None:
            if self.failure is None:
                try:
                    self._consume(data)
                except BaseException as failure:  # handed to the request's thread
                    self.failure = failure

    def stop(self) -> None:
        """Return once every chunk put before is consumed (or dropped after a failure)."""
        if not self._stopped:
            self._stopped = True
            self._chunks.put(None)
            self._thread.join()


class WriteBehind:
    """Wraps a staged blob (``write``, ``commit``, ``discard``): writes past the first
    ``direct_size`` bytes go through bounded queues to two threads, one that writes them to the
    blob and one that feeds them to ``digest`` (a hashlib object), each in order.

    A failure on either thread is raised by the next ``write``, by ``hexdigest`` or by
    ``commit``; all three of ``hexdigest``, ``commit`` and ``discard`` wait for both threads
    to finish first, so the digest is of every byte, and the underlying blob is never committed
    or discarded while a write is in flight.
    """

    def __init__(self, staged_blob: StagedBlob, direct_size: int, digest: Digest) -> None:
        self._staged_blob = staged_blob
        self._digest = digest
        self._direct_left = direct_size
        # made by the first write that is not direct: most blobs never need them
        self._workers: tuple[_Worker, _Worker] | None = None
        self._finished = False  # hexdigest, commit or discard began: no more writes

    def write(self, data: bytes) -> None:
        self._raise_failure()
        if self._finished:
            # its threads are gone: what went to them now would be lost
            raise ValueError("a write after the staged blob was hashed, committed or discarded")
        if self._workers is None and self._direct_left > 0:
            self._direct_left -= len(data)
            self._digest.update(data)
            self._staged_blob.write(data)
            return
        if self._workers is None:
            self._workers = (_Worker(self._staged_blob.write, "affix-write-behind"),
                             _Worker(self._digest.update, "affix-hash-behind"))
        for worker in self._workers:
            worker.put(data)

    def _stop_workers(self) -> None:
        self._finished = True
        if self._workers is not None:
            for worker in self._workers:
                worker.stop()

    def _raise_failure(self) -> None:
        for worker in self._workers or ():
            if worker.failure is not None:
                raise worker.failure

    def hexdigest(self) -> str:
        """The digest of everything written, once both threads have caught up."""
        self._stop_workers()
        self._raise_failure()
        return self._digest.hexdigest()

    def commit(self) -> str:
        self._stop_workers()
        self._raise_failure()
        return self._staged_blob.commit()

    def discard(self) -> None:
        self._stop_workers()
        self._staged_blob.discard()
