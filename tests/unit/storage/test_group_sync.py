"""Group sync: the callers that come while the file system is being flushed share the next flush,
and none returns before a flush that began after it came."""
import errno
import os
import threading
from pathlib import Path

import pytest

from affix.storage import group_sync
from affix.storage.group_sync import GroupSync

TIMEOUT = 10


class Flushes:
    """Records the flushes (the folder each was asked for) and can hold the next one until the
    test lets it go; each flush still runs the real syncfs."""

    def __init__(self) -> None:
        self.folders: list[Path] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        self.release.set()
        # what each flush raises after it ran, in order (None: nothing); later ones succeed
        self.failures: list[OSError | None] = []
        self._real = group_sync.syncfs

    def hold_next(self) -> None:
        self.release.clear()

    def __call__(self, fd: int) -> None:
        self.folders.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        self.holding.set()
        assert self.release.wait(TIMEOUT)
        self._real(fd)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure


@pytest.fixture
def flushes(monkeypatch):
    recorder = Flushes()
    monkeypatch.setattr(group_sync, "syncfs", recorder)
    return recorder


def in_threads(count, call):
    """``count`` threads running ``call``; each one's outcome lands in the returned list (None
    or the exception it raised) when it ends."""
    outcomes: list = []

    def run():
        try:
            call()
        except OSError as error:
            outcomes.append(error)
        else:
            outcomes.append(None)
    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_one_caller_flushes_the_file_system_of_its_folder_once(tmp_path, flushes):
    GroupSync(tmp_path).sync()
    assert flushes.folders == [tmp_path]


def test_callers_that_come_during_a_flush_share_the_next_one(tmp_path, flushes):
    syncs = GroupSync(tmp_path)
    flushes.hold_next()
    first, first_outcome = in_threads(1, syncs.sync)
    assert flushes.holding.wait(TIMEOUT)
    # these came after the running flush began: it may not hold their writes
    later, later_outcomes = in_threads(5, syncs.sync)
    assert syncs.wait_for_callers(5, TIMEOUT)
    assert (len(flushes.folders), first_outcome, later_outcomes) == (1, [], [])
    flushes.release.set()
    for thread in first + later:
        thread.join(TIMEOUT)
    assert (flushes.folders, first_outcome, later_outcomes) == (
        [tmp_path, tmp_path], [None], [None] * 5)


def test_every_caller_of_a_failed_flush_gets_its_error_and_the_next_flush_is_new(
        tmp_path, flushes):
    syncs = GroupSync(tmp_path)
    # the first flush succeeds; the second, the three later callers', fails
    flushes.failures = [None, OSError(errno.EIO, os.strerror(errno.EIO))]
    flushes.hold_next()
    first, first_outcome = in_threads(1, syncs.sync)
    assert flushes.holding.wait(TIMEOUT)
    later, later_outcomes = in_threads(3, syncs.sync)
    assert syncs.wait_for_callers(3, TIMEOUT)
    flushes.release.set()
    for thread in first + later:
        thread.join(TIMEOUT)
    assert first_outcome == [None]
    # the one that ran the flush raises its error; the others, each an error of its own
    assert sorted((error.errno, str(error)) for error in later_outcomes) == [
        (errno.EIO, f"[Errno {errno.EIO}] {os.strerror(errno.EIO)}")] + [
        (errno.EIO, f"[Errno {errno.EIO}] the file system's flush failed: "
                    f"{os.strerror(errno.EIO)}")] * 2
    assert len({id(error) for error in later_outcomes}) == 3
    syncs.sync()
    assert flushes.folders == [tmp_path] * 3
