"""What ``station bench`` measures on the GUI thread: what the screen got, how late timers fire,
render time, CPU. Imported only once ``QT_QPA_PLATFORM`` is set (see :mod:`station.bench.command`).

Only the station's public surface is read: ``core.accepted``, ``core.vitals_batch``,
``window.paint_times`` (frame durations, alarm → painted) and ``historian.status()``.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from station.bench.rig import mean, pct

if TYPE_CHECKING:
    from station.app import Station

PROBE_MS = 50  # GUI responsiveness: how late a 50 ms timer fires


class _ScreenReceiver(QObject):
    """Lives on the GUI thread, so the core's queued signal is delivered where the window gets
    it: what arrives here is what the screen could show, and when."""

    def __init__(self, on_value: Callable[[str, str, float], None]) -> None:
        super().__init__()
        self._on_value = on_value

    @Slot(object)
    def vitals(self, batch: Any) -> None:
        for bed, msg in batch:
            self._on_value(bed, msg.device_id, msg.device_time)


def watch_screen(station: Station, on_value: Callable[[str, str, float], None]) -> QObject:
    """Call ``on_value(bed, device_id, device_time)`` on the GUI thread for each live value the
    window is given. The one place that knows how values reach the screen: the core's
    ``vitals_batch`` (a tuple of ``(bed, Accepted)`` every 50 ms), as the window takes them.
    Keep the returned object alive while watching."""
    receiver = _ScreenReceiver(on_value)
    station.core.vitals_batch.connect(receiver.vitals)
    return receiver


class ScreenData:
    """Per device, the newest device time the GUI got and the bed it showed it on."""

    def __init__(self, station: Station) -> None:
        self.newest: dict[str, float] = {}
        self.beds: dict[str, str] = {}
        self._receiver = watch_screen(station, self._seen)

    def _seen(self, bed: str, device: str, device_time: float) -> None:
        if device_time > self.newest.get(device, 0.0):
            self.newest[device] = device_time
        self.beds[device] = bed

    def shown(self, devices: list[str]) -> int:
        """How many of ``devices`` had a value on screen."""
        return sum(1 for d in devices if d in self.newest)


class AgeSampler:
    """Every ``interval_ms``, now − the newest device time on screen for each of ``devices``
    shown so far: how old the data a nurse reads is (flood beside a ward)."""

    def __init__(self, screen: ScreenData, devices: list[str], interval_ms: int = 200) -> None:
        self.ages_ms: list[float] = []
        self._screen, self._devices = screen, devices
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._sample)

    def _sample(self) -> None:
        now = time.time()
        newest = self._screen.newest
        self.ages_ms.extend((now - newest[d]) * 1000 for d in self._devices if d in newest)

    def start(self) -> None:
        """Start sampling (after the warm-up)."""
        self.ages_ms.clear()
        self._timer.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._timer.stop()


class Window:
    """One measurement window on a running station: GUI timer lag, render time per frame,
    alarm repaint latency, GUI thread and process CPU, ingest counted by ``core.accepted``."""

    def __init__(self, station: Station) -> None:
        self._station = station
        self.lag_ms: list[float] = []
        self._probe = QTimer()
        self._probe.setInterval(PROBE_MS)
        self._last = time.monotonic()
        self._probe.timeout.connect(self._on_probe)
        self._probe.start()
        self.wall = 0.0
        self.accepted = 0
        self._t0 = (0.0, 0.0, 0.0)
        self._accepted0 = 0
        self._gui = self._cpu = 0.0
        self._hist0: Any = None
        self._hist1: Any = None

    def _on_probe(self) -> None:
        now = time.monotonic()
        self.lag_ms.append(max(0.0, (now - self._last) * 1000 - PROBE_MS))
        self._last = now

    def begin(self) -> None:
        """The warm-up is over: forget it and start counting."""
        w = self._station.window
        w.paint_times.frame_ms.clear()
        w.paint_times.alarm_paint_ms.clear()
        self.lag_ms.clear()
        self._last = time.monotonic()  # a lag before the window is not the window's
        self._accepted0 = self._station.core.accepted
        self._hist0 = self._station.historian.status() if self._station.historian else None
        self._t0 = (time.monotonic(), time.thread_time(), time.process_time())

    def end(self) -> None:
        """Stop counting (before anything is torn down)."""
        self.wall = time.monotonic() - self._t0[0]
        self._gui = time.thread_time() - self._t0[1]
        self._cpu = time.process_time() - self._t0[2]
        self.accepted = self._station.core.accepted - self._accepted0
        self._hist1 = self._station.historian.status() if self._station.historian else None
        self._probe.stop()

    def figures(self) -> dict[str, object]:
        """The window's figures, named as the JSON reports them."""
        w = self._station.window
        frames, paints = list(w.paint_times.frame_ms), list(w.paint_times.alarm_paint_ms)
        wall = self.wall or 1e-9
        out: dict[str, object] = {
            "duration_s": round(self.wall, 2),
            "ingest_msgs_per_s": round(self.accepted / wall, 1),
            "gui_thread_cpu_share": round(self._gui / wall, 4),
            "process_cpu_share_of_one_core": round(self._cpu / wall, 4),
            "render_ms_mean": mean(frames),
            "render_ms_p95": pct(frames, 0.95),
            "frames": len(frames),
            "gui_timer_lag_ms_p99": pct(self.lag_ms, 0.99),
            "gui_timer_lag_ms_max": pct(self.lag_ms, 1.0),
            "alarm_repaint_latency_ms_p50": pct(paints, 0.5),
            "alarm_repaint_latency_ms_p99": pct(paints, 0.99),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        h0, h1 = self._hist0, self._hist1
        if h0 is not None and h1 is not None:
            out.update(
                {
                    "historian_points_per_s": round((h1.written - h0.written) / wall, 1),
                    "historian_backlog_start": h0.backlog,
                    "historian_backlog_end": h1.backlog,
                    "historian_backlog_growth_per_s": round((h1.backlog - h0.backlog) / wall, 1),
                    "historian_error": h1.error,
                }
            )
        return out


def run_for(seconds: float) -> None:
    """Run Qt's event loop for ``seconds``. ``exit()``, not ``quit()``: Qt 6's quit() first
    closes every window, which would stop the render timer being measured."""
    app = QApplication.instance()
    assert app is not None
    QTimer.singleShot(round(seconds * 1000), lambda: app.exit(0))
    app.exec()


def run_until(done: Callable[[], bool], timeout: float, poll_ms: int = 100) -> bool:
    """Run Qt's event loop until ``done()`` (polled every ``poll_ms``) or ``timeout`` seconds;
    returns whether ``done()`` came true."""
    app = QApplication.instance()
    assert app is not None
    deadline = time.monotonic() + timeout
    result = [False]

    def check() -> None:
        if done():
            result[0] = True
            app.exit(0)
        elif time.monotonic() >= deadline:
            app.exit(0)

    timer = QTimer()
    timer.setInterval(poll_ms)
    timer.timeout.connect(check)
    timer.start()
    app.exec()
    timer.stop()
    return result[0]
