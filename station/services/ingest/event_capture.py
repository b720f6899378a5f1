"""Event capture on the core thread: each high alarm keeps its bed's vitals ± ``capture_s`` at full
resolution in the trend store, beyond the 4 h of raw samples.

Why: the review of a night's high alarm happens the next morning or later, when the trend store
holds only minute aggregates for that hour, and a 40-second desaturation or a run of tachycardia
is exactly what a minute's mean hides. Monitors call this an event or a "full disclosure" strip.

How: a physiological high alarm's raise schedules a capture of ``[raised - capture_s, raised +
capture_s]``; once that window has passed (and the last samples are committed), the trend store
copies those raw rows into its capture table in one statement (:meth:`TrendStore.capture`). A
window still open when the station stops is captured with what it holds. Core thread only.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from station.domain.alarms import Alarm, AlarmKind, AlarmState, Priority
from station.services.storage.trends import TrendStore

log = logging.getLogger(__name__)

SETTLE_S = 5.0
"""Seconds after a window's end before it is captured: its last samples are committed by then."""
MAX_PENDING = 1_000


class EventCapture:
    """Schedules and takes event captures; see the module docstring."""

    def __init__(
        self, trends: TrendStore | None, capture_s: float, clock: Callable[[], float]
    ) -> None:
        self._trends = trends
        self._span = capture_s
        self._clock = clock
        self._pending: list[tuple[float, str, float, float]] = []  # (due, bed, start, end)
        self.captured = 0

    def alarm(self, alarm: Alarm) -> None:
        """An alarm change: a physiological high alarm's raise schedules its capture."""
        if (
            self._trends is None
            or alarm.kind != AlarmKind.PHYSIOLOGICAL
            or alarm.priority != Priority.HIGH
            or alarm.state != AlarmState.ACTIVE
            or alarm.raised_at != alarm.at
            or not alarm.bed
        ):
            return
        start, end = alarm.raised_at - self._span, alarm.raised_at + self._span
        if len(self._pending) < MAX_PENDING:
            self._pending.append((end + SETTLE_S, alarm.bed, start, end))

    def due(self) -> None:
        """Take the captures whose window has passed (the core's 1 s tick)."""
        if not self._pending:
            return
        now = self._clock()
        ready = [p for p in self._pending if p[0] <= now]
        if ready:
            self._pending = [p for p in self._pending if p[0] > now]
            self._take(ready)

    def flush(self) -> None:
        """Take every pending capture with what it holds (the station stops)."""
        pending, self._pending = self._pending, []
        self._take(pending)

    def _take(self, windows: list[tuple[float, str, float, float]]) -> None:
        if self._trends is None:
            return
        for _due, bed, start, end in windows:
            try:
                self.captured += self._trends.capture(bed, start, end)
            except (sqlite3.Error, RuntimeError) as exc:  # the store's own fault is alarmed
                log.warning("event capture of %s lost: %s", bed, exc)
