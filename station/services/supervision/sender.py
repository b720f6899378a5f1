"""The thread that sends the notifications: the GUI thread decides, this thread sends.

Why a thread for a datagram that never blocks: the GUI thread does no I/O at all (ARCHITECTURE),
and a rule with no exceptions is one a test can check (``tests/qt/test_gui_thread_io.py``). The
decision stays on the GUI thread on purpose: the watchdog ping must stop when the GUI thread
stalls, and a ping decided elsewhere would outlive a frozen screen.

Thread ``sd-notify``, owned by :class:`NotifySender`: started with the first message, ended by
:meth:`NotifySender.close` (which sends what is queued first, within a timeout). Qt-free.
"""

from __future__ import annotations

import logging
import queue
import threading

from station.services.supervision.notify import SdNotify

log = logging.getLogger(__name__)

NOTIFY_THREAD = "sd-notify"


class NotifySender:
    """Sends each message :meth:`post`-ed to ``notify`` in order, from its own thread.

    Thread-safe: :meth:`post` and :meth:`close` may be called from any thread.
    """

    def __init__(self, notify: SdNotify) -> None:
        self._notify = notify
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def post(self, message: str) -> None:
        """Queue ``message`` (``KEY=value`` lines) for sending; dropped after :meth:`close`."""
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=NOTIFY_THREAD, daemon=True)
                self._thread.start()
            self._queue.put(message)

    def close(self, timeout: float) -> bool:
        """Send what is queued, then end the thread; True if it ended within ``timeout`` s."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        self._queue.put(None)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s: still sending after %.1f s", NOTIFY_THREAD, timeout)
            return False
        return True

    def _run(self) -> None:
        try:
            while (message := self._queue.get()) is not None:
                self._notify.send(message)
        finally:
            self._notify.close()
