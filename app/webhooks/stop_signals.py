"""A stop request made by SIGTERM (systemd's stop) or SIGINT (Ctrl-C), read when a loop asks.

A handler that sets a ``threading.Event`` can deadlock: it runs in the main thread between two
bytecodes, possibly while that same thread holds the event's lock inside ``Event.wait``, and the
lock is not reentrant. So no handler runs at all here: the signals are blocked and collected
synchronously with ``sigtimedwait``, which is also what wakes a waiting loop at once.
"""
import signal
import threading

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class StopSignals:
    """Answers ``is_set`` and ``wait(timeout)`` as a ``threading.Event`` does, set by a signal.

    Created in the main thread before any other thread starts, so that every thread inherits the
    blocked mask and the signals stay pending until asked for. The mask also passes to child
    processes, which would not see these signals: the webhook worker starts none.

    Any thread may ask (the webhook worker's lanes do). Taking a signal and keeping it is one
    step under a lock: a thread that asked in between would find the signal neither pending
    nor kept. So a thread that asks while another waits waits too.
    """

    def __init__(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        self._received = None
        self._taking = threading.Lock()

    def is_set(self):
        return self.wait(0)

    def wait(self, timeout):
        """True once a stop signal came, waiting up to ``timeout`` seconds for one."""
        with self._taking:
            if self._received is None:
                self._received = signal.sigtimedwait(STOP_SIGNALS, timeout)
            return self._received is not None
