"""The core thread's heartbeat: proof, readable from the GUI thread, that the core's event loop
still turns.

The core thread runs the alarms; a slot that never returns there (a deadlock, a store that hangs)
silences every alarm while the screen goes on painting the last values. This object lives on the
core thread and stamps the monotonic time from a timer of that thread's event loop, so the stamp
ages as soon as the loop stops turning, whatever blocks it. The GUI thread reads the stamp
(:mod:`station.services.supervision.watchdog`) and withholds systemd's watchdog ping while it is
old.

Thread: the core thread (moved there before it starts). ``start`` runs on the thread's
``started``, ``stop`` on its ``finished`` (a direct connection, in that thread: only its own
thread may stop a timer). Reading :meth:`CoreHeartbeat.age` from another thread is safe: the
stamp is one float, replaced whole.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Slot

BEAT_MS = 500
"""How often the core thread stamps its heartbeat."""


class CoreHeartbeat(QObject):
    """See the module docstring. Build on the GUI thread, then :meth:`attach` to the thread."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._monotonic = monotonic
        self._last: float | None = None
        self._timer: QTimer | None = None

    def attach(self, thread: QThread) -> None:
        """Live on ``thread`` and beat while it runs; call before it starts."""
        self.moveToThread(thread)
        thread.started.connect(self.start)
        thread.finished.connect(self.stop, Qt.ConnectionType.DirectConnection)

    @Slot()
    def start(self) -> None:
        """Beat now and every :data:`BEAT_MS` (on the core thread)."""
        self._timer = QTimer(self)
        self._timer.setInterval(BEAT_MS)
        self._timer.timeout.connect(self.beat)
        self._timer.start()
        self.beat()

    @Slot()
    def stop(self) -> None:
        """Stop beating (on the core thread, as it finishes)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer.deleteLater()
            self._timer = None

    @Slot()
    def beat(self) -> None:
        """Stamp the time: the core's event loop turned."""
        self._last = self._monotonic()

    @property
    def seen(self) -> bool:
        """Whether the core thread has beaten at least once."""
        return self._last is not None

    def age(self, now: float | None = None) -> float:
        """Seconds since the last beat (infinite before the first), from any thread."""
        last = self._last
        if last is None:
            return math.inf
        return (self._monotonic() if now is None else now) - last
