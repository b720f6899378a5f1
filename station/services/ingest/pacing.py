"""How the core paces what it records and hands on: a bounded throttle, and batches flushed later.

Two patterns recur on the core thread, and each has its one helper here. :class:`Throttle` lets
a recurring record (an audit record, a log line) through at most once a minute per key and counts
what it held back, so a device with a bad link or a flood cannot flood the trail or the log.
:func:`flush_soon` hands a batch on at once when there is no event loop yet (tests) or the batch
is full, and otherwise starts the one-shot timer that will hand it on: one queued event per batch
instead of one per message.

Every per-id table of the core is bounded by :data:`MAX_TRACKED`, so random ids cannot grow it.

Pure (no Qt: the timer is anything with ``isActive`` and ``start``, a ``QTimer`` on the station);
used on the core thread only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

LOG_WINDOW_S = 60.0
MAX_TRACKED = 1024
"""Per-id counters (unknown keys, flooding sources) kept at once: random ids cannot grow them."""


class OneShot(Protocol):
    """A single-shot timer that flushes a batch when it fires (a ``QTimer`` on the station)."""

    def isActive(self) -> bool: ...

    def start(self) -> None: ...


def flush_soon(timer: OneShot | None, flush: Callable[[], None], full: bool = False) -> None:
    """Flush now without a timer (no event loop yet: tests) or when the batch is ``full``;
    otherwise make sure the timer runs, so that what was just added goes out when it fires."""
    if timer is None or full:
        flush()
    elif not timer.isActive():
        timer.start()


class Throttle:
    """At most one record a minute per key, with the count of what was left out in between.

    Why shared: one instance serves every throttled record of the core (refused messages, data
    gaps, rejection log lines), so :data:`MAX_TRACKED` bounds them all together. Core thread only.
    """

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._logged_at: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def __call__(self, key: str, count: int = 1) -> int | None:
        """None while ``key`` was recorded less than a minute ago (``count`` is added to what
        the next record will say it left out); else how much was left out since the last one.
        At most :data:`MAX_TRACKED` keys are remembered (the oldest go first)."""
        now = self._monotonic()
        if now - self._logged_at.get(key, -LOG_WINDOW_S) < LOG_WINDOW_S:
            self._suppressed[key] += count
            return None
        self._logged_at.pop(key, None)
        if len(self._logged_at) >= MAX_TRACKED:
            oldest = next(iter(self._logged_at))
            del self._logged_at[oldest]
            self._suppressed.pop(oldest, None)
        self._logged_at[key] = now
        return self._suppressed.pop(key, 0)
