"""The screen's turn at the interpreter lock: the bulk threads step aside while a frame paints.

Why: the station is one Python process. Under a flood its record path (the persistent session's
MQTT thread, the core's record drain, the historian) keeps the interpreter lock busy, and PySide
hands the lock back and forth on every call into Qt, so a frame of a few hundred Qt calls waited
up to a millisecond for each: measured with ``station bench --flood --historian``, GUI timer lag
p99 130-200 ms, the screen and every acknowledge click late exactly when the ward is busiest.
The GUI thread takes a short turn when its frame starts; the bulk threads, between messages,
sleep out what is left of it (a sleep releases the lock). The turn expires by itself, so a
frame that never ends its turn costs the record path at most :data:`TURN_S` a frame, never a
stall; nothing is dropped, messages wait in the broker's session and the socket buffers.

Thread-safe without a lock: one float, written by the GUI thread, read by the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable

TURN_S = 0.02
"""Longest turn (a frame at 64 beds paints in 5-15 ms without competition)."""


class ScreenTurn:
    """A turn the GUI thread takes (:meth:`take`, :meth:`end`) and bulk threads give way to
    (:meth:`give_way`)."""

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self._until = 0.0

    def take(self, seconds: float = TURN_S) -> None:
        """The GUI thread starts painting: bulk threads pause for at most ``seconds``."""
        self._until = self._monotonic() + seconds

    def end(self) -> None:
        """The frame is painted: bulk threads go on at once."""
        self._until = 0.0

    def give_way(self) -> None:
        """Called by a bulk thread between two messages: sleep out the screen's turn, if one
        is on (the cost otherwise: one clock read)."""
        left = self._until - self._monotonic()
        if left > 0:
            self._sleep(min(left, TURN_S))


def no_turn() -> None:
    """What a bulk thread gives way to when no screen runs (tools, tests, the CLI)."""
