"""How long the window's frames take, and how long a new alarm waits to be painted: the figures
``station bench`` reads (``render_ms_*``, ``alarm_repaint_latency_ms_*``). GUI thread only.

Why a class of its own: the main window has two ways to paint (the render timer's whole frame,
and the alarm frame a new alarm asks for at once), and both close an alarm's wait the same way.
Bounded: a station runs for months.
"""

from __future__ import annotations

import time
from collections import deque

KEPT = 10_000
"""Figures kept of each kind (the newest): a bench window is far shorter."""


class PaintTimes:
    """Frame durations (ms) and, per newly raised alarm, device time → painted (ms)."""

    def __init__(self) -> None:
        self.frame_ms: deque[float] = deque(maxlen=KEPT)
        self.alarm_paint_ms: deque[float] = deque(maxlen=KEPT)
        self._waiting: list[float] = []

    def raised(self, source_time: float) -> None:
        """A new alarm from a message of device time ``source_time`` is waiting to be painted."""
        self._waiting.append(source_time)

    def painted(self) -> None:
        """What was waiting is on the screen now (the end of a frame that painted alarms)."""
        if self._waiting:
            now = time.time()
            self.alarm_paint_ms.extend((now - t) * 1000 for t in self._waiting)
            self._waiting.clear()
