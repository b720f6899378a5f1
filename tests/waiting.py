"""Waiting for something a thread or another process brings about: poll a condition until it
holds, and fail at a monotonic deadline, never sleep a fixed time and hope.

Qt tests have ``qtbot.waitUntil`` (it keeps the event loop turning); this is for the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_S = 0.05


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return as soon as ``condition()`` is true; raise once ``timeout`` s have passed.

    ``condition`` may itself assert (a child process that died), ending the wait with its
    message.

    Raises:
        AssertionError: not within ``timeout`` seconds, naming ``what`` was awaited.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(POLL_S)  # the poll interval, not the wait: that ends when the condition holds
