"""The station's two clocks: wall time for what people and devices read, monotonic for timeouts.

Why both: a wall clock can step (NTP correcting a NUC that booted with a wrong RTC, an admin
setting the time). Measured on ``main`` before this module: a 1 h backward step delayed "No data"
to 3,611 s, and a forward step over the live window made every bed's data "late" (stored, never
shown or alarmed). Durations (no-data, escalation, pause, reminder, lock) therefore run on the
monotonic clock, which never steps.

Ages of device data need a wall time, since devices stamp their messages with theirs. Which of the
station's two readings is right after a step cannot be known (the step may be the correction), so
a message is judged by *both*: :meth:`StationClock.now` is the later of the wall clock and the
wall time carried forward monotonically from the start (``steady``), used to refuse timestamps
from the future; :meth:`StationClock.lag` is a message's age by the kinder of the two. A step
therefore neither rejects nor hides live data, while a replay that is old by both readings is
still kept off the live view. :meth:`StationClock.step` says how far the wall clock has moved away
from the monotonic one, for the technical alarm that tells the nurse the clock changed.

Pure: both clocks are injected, so tests step time as they like.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STEP_ALARM_S = 2.0
"""A wall clock that moves this far from the monotonic one has stepped (NTP slews far less)."""


class StationClock:
    """Wall and monotonic time with step detection. Thread-safe: it only reads its clocks."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self._wall0 = wall()
        self._mono0 = monotonic()

    @classmethod
    def single(cls, clock: Callable[[], float]) -> StationClock:
        """Both readings from one injected clock (tests that drive a single fake time)."""
        return cls(clock, clock)

    def steady(self) -> float:
        """Wall time as it would read had it never stepped since the start."""
        return self._wall0 + (self.monotonic() - self._mono0)

    def step(self) -> float:
        """Seconds the wall clock has moved against the monotonic one since the start (+ ahead)."""
        return self.wall() - self.steady()

    def now(self) -> float:
        """The later of the two wall readings: what a device timestamp must not be ahead of."""
        return max(self.wall(), self.steady())

    def lag(self, received_at: float, device_time: float) -> float:
        """A message's age when it arrived, by whichever reading makes it younger: a station
        clock step never turns live data into old data. ``received_at`` is :meth:`now` at
        arrival, which is the later reading; the earlier one is that minus the step."""
        return received_at - abs(self.step()) - device_time
