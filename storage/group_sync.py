"""Group sync: the blobs that a process's uploads finish together are made durable by one flush
of their file system, instead of an fsync of each file and each folder.

``syncfs`` writes out everything written to one file system before it began: the files' bytes,
and the folder entries that a rename or a new folder changed. A thread that needs its writes
durable calls :meth:`GroupSync.sync`: when no flush is running it starts one; when one is
running (it may have begun before the caller's writes) the caller waits for the next, which the
first of its waiters starts for all of them. So with many uploads finishing at once there is
about one flush per flush's duration, not two fsyncs per upload; with one upload at a time, one
flush instead of two fsyncs. Every caller returns only after a flush that began after it came,
or raises that flush's error (since Linux 5.8 ``syncfs`` reports the file system's write-back
errors, as ``fsync`` does a file's).

Where the C library has no ``syncfs`` (not Linux), ``sync`` flushes every file system: as
durable, and as grouped, only slower.
"""
import ctypes
import ctypes.util
import errno
import os
import threading
import weakref
from collections.abc import Callable


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _checked(name: str, result: int) -> None:
    """OSError for the C library's ``name`` that answered ``result``, as Python's own calls
    raise it: nothing for 0."""
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{name}: {os.strerror(number)}")


def _libc_syncfs() -> Callable[[int], None]:
    """``syncfs(fd)`` raising OSError; ``os.sync()`` where the C library has none."""
    native = getattr(_LIBC, "syncfs", None)
    if native is None:
        return lambda fd: os.sync()

    def flush(fd: int) -> None:
        _checked("syncfs", native(fd))
    return flush


# flushes the file system that the descriptor is open on (looked up at each call, as os.fsync is)
syncfs = _libc_syncfs()

# sync_file_range's flag that starts writing the range out and returns without waiting
_SYNC_FILE_RANGE_WRITE = 2


def _libc_start_writeback() -> Callable[[int, int, int], None]:
    """``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)`` raising OSError; nothing
    where the C library has none (not Linux)."""
    native = getattr(_LIBC, "sync_file_range", None)
    if native is None:
        return lambda fd, offset, length: None
    native.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

    def start(fd: int, offset: int, length: int) -> None:
        _checked("sync_file_range", native(fd, offset, length, _SYNC_FILE_RANGE_WRITE))
    return start


# starts writing a file's range to the disk in the background: the kernel would otherwise wait
# until gigabytes are dirty, and the flush of a large blob would write all of it after the last
# byte arrived, instead of the disk writing it while the rest arrives
start_writeback = _libc_start_writeback()


class _Flush:
    """One flush of the file system, and the callers it makes durable."""

    def __init__(self) -> None:
        self.started = False
        self.done = False
        self.callers = 0
        self.failure: BaseException | None = None


class GroupSync:
    """The flushes of the file system that ``folder`` is on, shared by this process's threads
    (see the module's docstring)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = folder
        # opened by the first flush, in the process that flushes (not in a server's master,
        # whose workers would inherit it), then held open: syncfs reports each write-back error
        # once to every descriptor open on the file system when it happened
        self._fd: int | None = None
        self._changes = threading.Condition()
        self._running = False
        # the flush that callers arriving now wait for, not started yet
        self._next: _Flush | None = None

    def wait_for_callers(self, count: int, timeout: float) -> bool:
        """Whether the flush that callers arriving now wait for has ``count`` callers within
        ``timeout`` seconds (for observing the grouping from outside, as the tests do)."""
        with self._changes:
            return self._changes.wait_for(
                lambda: self._next is not None and self._next.callers >= count, timeout)

    def sync(self) -> None:
        """Return once everything this thread wrote to the file system is durable."""
        with self._changes:
            flush = self._next
            if flush is None:
                flush = self._next = _Flush()
            flush.callers += 1
            self._changes.notify_all()
            # the flush running now may have begun before our writes: ours is the next
            self._changes.wait_for(lambda: flush.started or not self._running)
            leading = not flush.started
            if leading:
                flush.started = self._running = True
                self._next = None
        if leading:
            try:
                syncfs(self._descriptor())
            except BaseException as error:  # every caller of this flush hears of it
                flush.failure = error
            with self._changes:
                flush.done, self._running = True, False
                self._changes.notify_all()
        else:
            with self._changes:
                self._changes.wait_for(lambda: flush.done)
        if flush.failure is not None:
            if leading:
                raise flush.failure
            raise _failed(flush.failure)


    def _descriptor(self) -> int:
        """The folder's descriptor (only the thread running a flush asks for it)."""
        if self._fd is None:
            self._fd = os.open(self._folder, os.O_RDONLY | os.O_DIRECTORY)
            weakref.finalize(self, os.close, self._fd)
        return self._fd


def _failed(failure: BaseException) -> OSError:
    """The error of a flush another thread ran, for one of the callers it was for (each its
    own: one exception object is not raised in several threads)."""
    if isinstance(failure, OSError) and failure.errno is not None:
        error = OSError(failure.errno, f"the file system's flush failed: {failure.strerror}")
    else:
        error = OSError(errno.EIO, f"the file system's flush failed: {failure!r}")
    error.__cause__ = failure
    return error
