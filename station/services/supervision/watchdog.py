"""What systemd hears from the station: ``READY=1`` once the ward is live, ``WATCHDOG=1`` while
both the core thread and the GUI thread answer, ``STATUS=`` lines, ``STOPPING=1`` at the stop.

Decided on the GUI thread, sent from the ``sd-notify`` thread
(:mod:`station.services.supervision.sender`): the check runs from a GUI timer, so a stalled GUI
thread stops the pings by itself, and each check reads the core thread's heartbeat
(:mod:`station.services.supervision.heartbeat`), so a stalled core thread stops them too. Once
no ping has come for ``WatchdogSec``, systemd restarts the station (``Restart=``). Without
systemd (no ``$NOTIFY_SOCKET``) nothing is sent, and a core thread that stops answering is still
logged.

Ready means: the window is shown (its test is given), the core thread has beaten once, and the
GUI thread's event loop runs (the check is one of its timers).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

from PySide6.QtCore import QObject, QThread, QTimer, Slot

from station.domain.status import ConnectionState
from station.services.supervision.heartbeat import CoreHeartbeat
from station.services.supervision.notify import SdNotify, watchdog_interval
from station.services.supervision.sender import NotifySender

log = logging.getLogger(__name__)

READY_POLL_MS = 100
"""How often readiness is looked for until it is there."""
CHECK_S = 1.0
"""How often the core thread's heartbeat is checked when systemd runs no watchdog."""
STALE_AFTER_S = 2.0
"""A heartbeat older than this means the core thread is not answering (it beats every 0.5 s;
a group commit's fsync on a busy disk can hold it a few hundred ms)."""
STATUS_CHARS = 200


class Supervision(QObject):
    """See the module docstring. Lives on the GUI thread; no signals.

    Args:
        core_thread: the core thread, not started yet: the heartbeat moves there.
        ready_when: whether the GUI side is ready (the window is shown).
        beds: the ward's size, for the status line.
        env: where ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` are read.
    """

    def __init__(
        self,
        core_thread: QThread,
        ready_when: Callable[[], bool],
        beds: int,
        *,
        env: Mapping[str, str] = os.environ,
        stale_after_s: float = STALE_AFTER_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        notify = SdNotify.from_environment(env)
        self._sender = NotifySender(notify) if notify is not None else None
        self.watchdog_s = watchdog_interval(env) if notify is not None else None
        self.heartbeat = CoreHeartbeat(time.monotonic)
        self.heartbeat.attach(core_thread)
        self._ready_when = ready_when
        self._live = f"ward live, {beds} beds"
        self._status = self._live
        self._stale_after = stale_after_s
        self.ready = False
        self.stalled = False
        self.pings = 0
        self._ready_timer = QTimer(self)
        self._ready_timer.setInterval(READY_POLL_MS)
        self._ready_timer.timeout.connect(self._check_ready)
        self._check_timer = QTimer(self)
        every = self.watchdog_s / 3 if self.watchdog_s is not None else CHECK_S
        self._check_timer.setInterval(max(1, round(every * 1000)))
        self._check_timer.timeout.connect(self.check)
        if notify is not None:
            watchdog = f"{self.watchdog_s:g} s" if self.watchdog_s is not None else "off"
            log.info("notifying the service manager (watchdog %s)", watchdog)

    def start(self) -> None:
        """Look for readiness, and check the core thread from now on."""
        self._ready_timer.start()
        self._check_timer.start()

    @Slot()
    def _check_ready(self) -> None:
        if not (self.heartbeat.seen and self._ready_when()):
            return
        self._ready_timer.stop()
        self.ready = True
        log.info("station ready: %s", self._status)
        self._post(f"READY=1\nSTATUS={self._status}")
        self.check()

    @Slot()
    def check(self) -> None:
        """Once ready, ping systemd's watchdog if the core thread beat lately; say when it
        stops (and starts again) answering."""
        if not self.heartbeat.seen:
            return  # not started yet
        age = self.heartbeat.age()
        healthy = age <= self._stale_after
        if not healthy and not self.stalled:
            self.stalled = True
            withheld = ": watchdog pings withheld" if self.watchdog_s is not None else ""
            log.error("the core thread has not answered for %.1f s (alarms wait)%s", age, withheld)
            self._post("STATUS=core thread not answering")
        elif healthy and self.stalled:
            self.stalled = False
            log.warning("the core thread answers again")
            self._post(f"STATUS={self._status}")
        if healthy and self.ready and self.watchdog_s is not None:
            self.pings += 1
            self._post("WATCHDOG=1")

    @Slot(object)
    def on_connection(self, state: ConnectionState) -> None:
        """The broker's state, for the status line (``systemctl status``)."""
        if state.deliberate:
            return  # the station is stopping
        self._set_status(self._live if state.connected else f"broker unreachable: {state.detail}")

    def _set_status(self, text: str) -> None:
        # One line: a newline in a broker's reason would start another assignment.
        status = " ".join(text.split())[:STATUS_CHARS]
        if status == self._status:
            return
        self._status = status
        if self.ready and not self.stalled:
            self._post(f"STATUS={status}")

    def stopping(self) -> None:
        """The station begins its stop: no more pings; ``STOPPING=1``."""
        self._ready_timer.stop()
        self._check_timer.stop()
        self._post("STOPPING=1\nSTATUS=stopping")

    def close(self, timeout: float) -> bool:
        """Send what is queued and end the ``sd-notify`` thread; True if it ended in time."""
        return self._sender.close(timeout) if self._sender is not None else True

    def _post(self, message: str) -> None:
        if self._sender is not None:
            self._sender.post(message)
