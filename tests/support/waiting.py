"""Waiting for what a server or a process does in its own time: poll until it is so."""
import time

import pytest

CONDITION_TIMEOUT = 10
POLL_INTERVAL = 0.02


def wait_for(condition, description, timeout=CONDITION_TIMEOUT):
    """Poll ``condition`` until it is true; fail the test if it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {description}")
        time.sleep(POLL_INTERVAL)
