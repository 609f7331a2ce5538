"""storage.write_behind: chunks land in order whatever thread writes them, a failure on the
writer thread reaches the request's thread, and nothing is committed or discarded while a
write is still in flight."""
import errno
import hashlib
import threading

import pytest

from affix.storage.write_behind import WriteBehind


class RecordingBlob:
    """A staged blob that records what happens to it, and on which thread."""

    def __init__(self, fail_after=None):
        self.chunks = []
        self.threads = set()
        self.events = []
        self.fail_after = fail_after

    def write(self, data):
        if self.fail_after is not None and len(self.chunks) >= self.fail_after:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.threads.add(threading.get_ident())
        self.chunks.append(data)

    def commit(self):
        self.events.append(("commit", len(self.chunks)))
        return "the-key"

    def discard(self):
        self.events.append(("discard", len(self.chunks)))


def test_a_small_blob_is_written_on_the_callers_thread():
    blob = RecordingBlob()
    staged = WriteBehind(blob, direct_size=10, digest=hashlib.md5())
    staged.write(b"12345")
    staged.write(b"67890")
    assert staged.commit() == "the-key"
    assert blob.chunks == [b"12345", b"67890"]
    assert blob.threads == {threading.get_ident()}
    assert blob.events == [("commit", 2)]


def test_past_the_direct_size_chunks_go_to_one_writer_thread_in_order():
    blob = RecordingBlob()
    staged = WriteBehind(blob, direct_size=4, digest=hashlib.md5())
    chunks = [bytes([n]) * 3 for n in range(200)]
    for chunk in chunks:
        staged.write(chunk)
    assert staged.commit() == "the-key"
    assert blob.chunks == chunks
    # the first two direct, the rest on one other thread; commit after the last write
    assert len(blob.threads) == 2
    assert blob.events == [("commit", 200)]


@pytest.mark.parametrize("finish", ["commit", "hexdigest"])
def test_a_failure_on_the_writer_thread_is_raised_by_commit_or_hexdigest_and_nothing_is_committed(
        finish):
    blob = RecordingBlob(fail_after=3)
    staged = WriteBehind(blob, direct_size=1, digest=hashlib.md5())
    staged.write(b"a")
    staged.write(b"b")
    staged.write(b"c")
    staged.write(b"d")
    with pytest.raises(OSError) as raised:
        getattr(staged, finish)()
    assert raised.value.errno == errno.ENOSPC
    assert blob.chunks == [b"a", b"b", b"c"]
    assert blob.events == []
    staged.discard()
    assert blob.events == [("discard", 3)]


def test_a_failure_on_the_writer_thread_stops_the_next_write():
    blob = RecordingBlob(fail_after=1)
    staged = WriteBehind(blob, direct_size=1, digest=hashlib.md5())
    staged.write(b"a")
    with pytest.raises(OSError):
        # the writer takes every chunk even after failing, so these never block; one of the
        # later writes (at the latest the one after the writer reports) raises
        for _ in range(1000):
            staged.write(b"more")
    staged.discard()
    assert blob.chunks == [b"a"]
    assert blob.events == [("discard", 1)]


def test_discard_waits_for_the_writer():
    release = threading.Event()

    class SlowBlob(RecordingBlob):
        def write(self, data):
            release.wait()
            super().write(data)

    blob = SlowBlob()
    staged = WriteBehind(blob, direct_size=0, digest=hashlib.md5())
    staged.write(b"x")
    discarding = threading.Thread(target=staged.discard)
    discarding.start()
    discarding.join(timeout=0.2)
    # still waiting for the write in flight: the underlying blob is untouched
    assert discarding.is_alive() and blob.events == []
    release.set()
    discarding.join()
    assert blob.events == [("discard", 1)]


@pytest.mark.parametrize("direct_size", [0, 4, 1000])
def test_the_digest_is_of_every_byte_written_in_order(direct_size):
    blob = RecordingBlob()
    staged = WriteBehind(blob, direct_size=direct_size, digest=hashlib.md5())
    chunks = [bytes([n]) * (n % 7 + 1) for n in range(200)]
    for chunk in chunks:
        staged.write(chunk)
    assert staged.hexdigest() == hashlib.md5(b"".join(chunks)).hexdigest()
    # the writer had caught up: nothing was left to write
    assert blob.chunks == chunks
    assert staged.commit() == "the-key"
    assert blob.events == [("commit", 200)]



class RecordingDigest:
    """md5, recording on which threads it is fed."""

    def __init__(self):
        self._md5 = hashlib.md5()
        self.threads = set()

    def update(self, data):
        self.threads.add(threading.get_ident())
        self._md5.update(data)

    def hexdigest(self):
        return self._md5.hexdigest()


def test_past_the_direct_size_hashing_and_writing_run_on_two_threads_of_their_own():
    blob = RecordingBlob()
    digest = RecordingDigest()
    staged = WriteBehind(blob, direct_size=0, digest=digest)
    chunks = [bytes([n]) * 5 for n in range(50)]
    for chunk in chunks:
        staged.write(chunk)

    assert staged.hexdigest() == hashlib.md5(b"".join(chunks)).hexdigest()
    assert blob.chunks == chunks
    assert len(digest.threads) == len(blob.threads) == 1
    assert digest.threads.isdisjoint(blob.threads | {threading.get_ident()})
    assert threading.get_ident() not in blob.threads


def test_a_failure_of_the_digest_is_raised_and_nothing_is_committed():
    class FailingDigest(RecordingDigest):
        def update(self, data):
            raise MemoryError("no room to hash")

    blob = RecordingBlob()
    staged = WriteBehind(blob, direct_size=0, digest=FailingDigest())
    staged.write(b"a")

    with pytest.raises(MemoryError, match="no room to hash"):
        staged.commit()
    assert blob.events == []
    staged.discard()
    assert blob.events == [("discard", 1)]


@pytest.mark.parametrize("direct_size", [0, 1000])
def test_a_write_after_the_digest_was_taken_is_refused_not_lost(direct_size):
    blob = RecordingBlob()
    staged = WriteBehind(blob, direct_size=direct_size, digest=hashlib.md5())
    staged.write(b"a")
    digest = staged.hexdigest()

    with pytest.raises(ValueError, match="a write after the staged blob was hashed"):
        staged.write(b"b")
    assert (digest, blob.chunks) == (hashlib.md5(b"a").hexdigest(), [b"a"])
    assert staged.commit() == "the-key"
    assert blob.events == [("commit", 1)]
