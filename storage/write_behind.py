"""Writing a staged blob on a thread of its own, so that storing one chunk overlaps receiving,
parsing and hashing the next.

File writes, S3 part uploads and md5 all release the GIL: with the writes moved off the
request's thread, a large upload keeps two cores busy instead of one, and goes as fast as the
slower of the two halves rather than their sum. Small blobs are written directly: a thread
costs more than it saves below one chunk.
"""
import queue
import threading

# chunks waiting for the writer: memory stays bounded (a few chunks) however large the blob
QUEUE_DEPTH = 2
_END = object()


class WriteBehind:
    """Wraps a staged blob (``write``, ``commit``, ``discard``): writes past the first
    ``direct_size`` bytes go through a bounded queue to a writer thread.

    A write that fails on the writer thread is raised by the next ``write`` or by ``commit``;
    ``commit`` and ``discard`` both wait for the writer to finish first, so the underlying
    blob is never committed or discarded while a write is in flight.
    """

    def __init__(self, staged_blob, direct_size):
        self._staged_blob = staged_blob
        self._direct_left = direct_size
        self._queue = None
        self._writer = None
        self._failure = None

    def write(self, data: bytes):
        self._raise_failure()
        if self._writer is None and self._direct_left > 0:
            self._direct_left -= len(data)
            self._staged_blob.write(data)
            return
        if self._writer is None:
            self._queue = queue.Queue(maxsize=QUEUE_DEPTH)
            self._writer = threading.Thread(target=self._drain, name="affix-write-behind",
                                            daemon=True)
            self._writer.start()
        self._queue.put(data)

    def _drain(self):
        while (data := self._queue.get()) is not _END:
            # after a failure, chunks are still taken (and dropped) so that no put blocks
            if self._failure is None:
                try:
                    self._staged_blob.write(data)
                except BaseException as failure:  # handed to the request's thread
                    self._failure = failure

    def _stop_writer(self):
        if self._writer is not None:
            self._queue.put(_END)
            self._writer.join()
            self._writer = None

    def _raise_failure(self):
        if self._failure is not None:
            raise self._failure

    def commit(self) -> str:
        self._stop_writer()
        self._raise_failure()
        return self._staged_blob.commit()

    def discard(self):
        self._stop_writer()
        self._staged_blob.discard()
