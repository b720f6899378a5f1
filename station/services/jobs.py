"""Blocking work off the GUI thread: one ordered worker per owner, results back on the GUI thread.

The GUI thread never waits on I/O (ARCHITECTURE.md): a keyring call over D-Bus can hang on an
unlock prompt, an fsync on a busy disk takes hundreds of milliseconds, ``flock`` waits for a shell
command, scrypt takes 0.3 s by design. Whatever does such a thing is handed to :class:`Jobs`:

- ``work`` runs on the owner's worker thread (a named :class:`threading.Thread`), one job at a
  time and in the order submitted, so two changes to the same file never interleave and a later
  save never overtakes an earlier one;
- its result, or the exception it raised, comes back through a queued signal and ``done`` or
  ``failed`` runs on the GUI thread (the thread that made the :class:`Jobs`), where widgets may
  be touched. A ``context`` object that Qt has deleted meanwhile (a closed dialog) is skipped.

The worker thread starts with the first job and ends as soon as the queue is empty, so an owner
that is never stopped leaves no idle thread behind; :meth:`Jobs.stop` refuses new jobs and waits
(with a timeout) for the queued ones, which are finished, not dropped: an admission typed just
before the station stops is still saved.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QObject, Qt, Signal, Slot
from shiboken6 import Shiboken

log = logging.getLogger(__name__)

T = TypeVar("T")
Failed = Callable[[Exception], None]


class JobsStoppedError(RuntimeError):
    """A job was submitted after :meth:`Jobs.stop`: the station is stopping."""


class Jobs(QObject):
    """One worker thread named ``name`` for one owner's blocking work; see the module docstring.

    Lives on the GUI thread (create it there); its worker is a short-lived thread that exists
    only while jobs are queued. Thread-safe: :meth:`submit` may be called from any thread.
    """

    _finished = Signal(object)  # a zero-argument callable to run on the GUI thread

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._lock = threading.Lock()
        self._queue: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def submit(
        self,
        work: Callable[[], T],
        done: Callable[[T], None] | None = None,
        failed: Failed | None = None,
        *,
        context: QObject | None = None,
    ) -> None:
        """Run ``work`` on the worker thread; then ``done(result)`` or ``failed(exception)`` on
        the GUI thread (not at all if ``context`` has been deleted by then).

        A job submitted after :meth:`stop` is not run: ``failed`` gets :class:`JobsStoppedError`.
        An exception without a ``failed`` to take it is logged.
        """

        def job() -> None:
            try:
                result = work()
            except Exception as exc:  # handed to the GUI thread, never lost on this one
                error = exc  # ``exc`` itself is unbound when the except block ends
                self._reply(lambda: _report(failed, error, self.name), context)
            else:
                if done is not None:
                    self._reply(lambda: done(result), context)

        with self._lock:
            refused = self._stopped
            if not refused:
                self._queue.append(job)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
        if refused:
            stopped = JobsStoppedError(f"{self.name}: the station is stopping")
            self._reply(lambda: _report(failed, stopped, self.name), context)

    def busy(self) -> bool:
        """Whether a job is queued or running."""
        with self._lock:
            return self._thread is not None

    def wait(self, timeout: float) -> bool:
        """Block until the queued jobs are done, at most ``timeout`` s (for shutdown and tests:
        never while the ward is in use). True if none is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                thread = self._thread
            if thread is None:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            thread.join(left)

    def stop(self, timeout: float) -> bool:
        """Refuse new jobs and wait up to ``timeout`` s for the queued ones to finish. True if
        the worker has ended; False leaves it to end on its own (a daemon thread)."""
        with self._lock:
            self._stopped = True
        ended = self.wait(timeout)
        if not ended:
            log.warning("%s: jobs still running after %.1f s", self.name, timeout)
        return ended

    # -- worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None  # the next submit starts a new worker
                    return
                job = self._queue.popleft()
            job()

    def _reply(self, call: Callable[[], None], context: QObject | None = None) -> None:
        def guarded() -> None:
            if context is None or Shiboken.isValid(context):
                call()

        # The Jobs object itself may be gone (its owner deleted): then nobody waits for this.
        with contextlib.suppress(RuntimeError):
            self._finished.emit(guarded)

    # -- GUI thread ------------------------------------------------------------------------

    @Slot(object)
    def _deliver(self, call: Callable[[], None]) -> None:
        call()


def _report(failed: Failed | None, exc: Exception, name: str) -> None:
    if failed is not None:
        failed(exc)
    else:
        log.error("%s: job failed: %s", name, exc, exc_info=exc)


def alive(context: QObject | None) -> bool:
    """Whether a callback's ``context`` may still be called: none given, or not yet deleted."""
    return context is None or Shiboken.isValid(context)
