"""The one fake clock of the tests: time moves only when the test moves it.

A :class:`FakeClock` is the ``Callable[[], float]`` the station's clocks are (wall or
monotonic seconds), so it is passed wherever the code takes a clock. The test moves it by hand,
``clock.now += 10``, ``clock.advance(10)`` or ``clock.set(t)``, so ages, delays, repeats and
"no data" happen without waiting; or it ticks by itself, ``tick`` seconds after each reading,
for code that needs every reading to differ (the audit writer's records).
"""

from __future__ import annotations

import threading
import time
from typing import Any


class FakeClock:
    """Seconds (UTC epoch or monotonic) that change only when the test changes them.

    Args:
        start: the first reading; the real wall clock at creation when not given.
        tick: how far each reading moves the clock on, after it is read (0: it stays put).
    """

    def __init__(self, start: float | None = None, *, tick: float = 0.0) -> None:
        self.now = time.time() if start is None else start
        self.tick = tick
        self._lock = threading.Lock()  # a ticking clock may be read from a worker thread

    def __call__(self) -> float:
        """The reading, then ``tick`` seconds on."""
        with self._lock:
            reading = self.now
            self.now += self.tick
            return reading

    def advance(self, seconds: float) -> float:
        """Move on by ``seconds`` (back, if negative); the new reading."""
        with self._lock:
            self.now += seconds
            return self.now

    def set(self, now: float) -> None:
        """Jump to ``now`` (epoch seconds), forward or back."""
        with self._lock:
            self.now = now


class RecordingAudit:
    """The audit sink as the station's parts see it (``record``, ``fault``), keeping every
    record as a dict (``action`` and the record's fields) for the test to read. Thread-safe:
    listeners and senders record from their own threads."""

    def __init__(self) -> None:
        self.fault: str | None = None
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []

    def record(self, action: str, **fields: Any) -> None:
        with self._lock:
            self._records.append({"action": action, **fields})

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every record so far, in order (a copy)."""
        with self._lock:
            return list(self._records)

    def of(self, action: str) -> list[dict[str, Any]]:
        """The records of ``action``, in order."""
        return [r for r in self.records if r["action"] == action]

    def actions(self) -> list[str]:
        """Each record's action, in order."""
        return [r["action"] for r in self.records]
