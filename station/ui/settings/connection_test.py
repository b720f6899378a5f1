"""The settings dialog's "Test connection": the broker or the historian tried off the GUI thread.

A test may wait on the network and, to find a stored secret, on the keyring; so each runs in a
short-lived thread named :data:`THREAD_NAME` and hands its one sentence back through a queued
signal. The secret never appears in that sentence (it is masked as ``***``). Closing the dialog
joins the threads; a sentence that arrives after that is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal, Slot

from station.config.credentials import secret
from station.config.settings import Settings

log = logging.getLogger(__name__)

Tester = Callable[[Settings, str | None], str]
"""A connection test: the settings to try and the secret (or None); returns a sentence."""

THREAD_NAME = "settings-test"


class ConnectionTests(QObject):
    """The running connection tests of one dialog. GUI thread only.

    Signals:
        finished(str, str): which test (``"broker"`` or ``"historian"``) and its sentence; not
            emitted between :meth:`join` and :meth:`reopen`.
    """

    finished = Signal(str, str)
    _tested = Signal(str, str)  # from the test thread: which, result

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._tested.connect(self._on_tested)

    def start(
        self,
        which: str,
        tester: Tester,
        candidate: Settings,
        kind: str,
        account: str,
        typed: str | None,
    ) -> None:
        """Run ``tester`` on ``candidate`` with the secret typed, or else the one the keyring
        holds for ``kind`` and ``account``; :attr:`finished` follows."""
        thread = threading.Thread(
            target=self._run,
            args=(which, tester, candidate, kind, account, typed),
            name=THREAD_NAME,
            daemon=True,  # never keeps the station from exiting; join() joins it
        )
        self._threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> bool:
        """Drop results still to come and join the running tests; True if none is left."""
        self._closed = True
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._threads:
            log.warning("%d connection test(s) still running after close", len(self._threads))
        return not self._threads

    def reopen(self) -> None:
        """Take results again (the dialog is shown again)."""
        self._closed = False

    def _run(
        self,
        which: str,
        tester: Tester,
        candidate: Settings,
        kind: str,
        account: str,
        typed: str | None,
    ) -> None:
        """The test thread: find the secret (the keyring may block), run the test, report."""
        value = typed
        try:
            if value is None and account:
                value = secret(kind, account)
            text = tester(candidate, value)
        except Exception as exc:  # a test must report, never kill its thread silently
            text = f"Test failed: {type(exc).__name__}: {exc}"
        if value:
            text = text.replace(value, "***")
        with contextlib.suppress(RuntimeError):  # the dialog is gone; nobody is waiting
            self._tested.emit(which, text)

    @Slot(str, str)
    def _on_tested(self, which: str, text: str) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        if not self._closed:
            self.finished.emit(which, text)
