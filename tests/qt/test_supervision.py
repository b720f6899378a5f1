"""Issue 16, point 2: a real station under a stand-in for systemd. With ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC`` pointing at the test's socket it says ``READY=1`` once the ward is live, pings
the watchdog while its core thread answers, withholds the pings while the core thread is stuck
(a slot that blocks there), pings again once it is free, and says ``STOPPING=1`` at the stop."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, Signal, Slot
from pytestqt.qtbot import QtBot

from station.app import Station
from station.config.settings import from_mapping
from station.services.supervision.sender import NOTIFY_THREAD

WATCHDOG_S = 0.6
PING_S = WATCHDOG_S / 3
STUCK_FOR_S = 10.0  # at most: the test frees the core thread as soon as it has seen enough


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens here once the socket is closed


class Manager:
    """The service manager's end of the notify socket (an abstract address)."""

    def __init__(self) -> None:
        self.address = f"@station-qt-{os.getpid()}-{os.urandom(4).hex()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.address[1:].encode())
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def read(self) -> list[str]:
        """Every datagram received so far (the new ones read now)."""
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def count(self, text: str) -> int:
        """How many datagrams carry a line that starts with ``text``."""
        return sum(any(line.startswith(text) for line in m.split("\n")) for m in self.read())

    def lines(self) -> list[str]:
        """Every line of every datagram, in order."""
        return [line for m in self.read() for line in m.split("\n")]


class CoreStall(QObject):
    """Blocks the core thread's event loop from a slot that runs there, until released."""

    stall = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.stuck = threading.Event()
        self.release = threading.Event()
        self._blocker = _Blocker(self.stuck, self.release)

    def on(self, thread: object) -> None:
        self._blocker.moveToThread(thread)  # type: ignore[arg-type]
        self.stall.connect(self._blocker.block, Qt.ConnectionType.QueuedConnection)


class _Blocker(QObject):
    def __init__(self, stuck: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self._stuck, self._release = stuck, release

    @Slot()
    def block(self) -> None:
        self._stuck.set()
        self._release.wait(STUCK_FOR_S)


@pytest.fixture
def manager() -> Iterator[Manager]:
    m = Manager()
    yield m
    m.sock.close()


def test_ready_watchdog_withheld_while_the_core_is_stuck_and_stopping(
    qtbot: QtBot, tmp_path: Path, manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", manager.address)
    monkeypatch.setenv("WATCHDOG_USEC", str(round(WATCHDOG_S * 1e6)))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    settings = from_mapping(
        {
            "station": {"data_dir": str(tmp_path / "data")},
            "mqtt": {"port": _closed_port()},
            "ward": {"beds": 4},
        }
    )
    station = Station(settings, user="nobody")
    qtbot.addWidget(station.window)
    stall = CoreStall()
    stall.on(station.core_thread)
    try:
        assert station.supervision.watchdog_s == WATCHDOG_S
        station.start()
        qtbot.waitUntil(lambda: manager.count("READY=1") == 1, timeout=10_000)
        ready = next(m for m in manager.read() if "READY=1" in m)
        assert ready.startswith("READY=1\nSTATUS=")
        assert station.window.isVisible()
        # Nothing listens on the broker's port: the status line says so (systemctl status).
        qtbot.waitUntil(lambda: manager.count("STATUS=broker unreachable: ") >= 1)
        status = [line for line in manager.lines() if line.startswith("STATUS=broker")][-1]
        qtbot.waitUntil(lambda: manager.count("WATCHDOG=1") >= 3, timeout=10_000)

        stall.stall.emit()
        assert stall.stuck.wait(5), "the core thread never ran the blocking slot"
        qtbot.waitUntil(lambda: station.supervision.stalled, timeout=10_000)
        qtbot.waitUntil(lambda: manager.count("STATUS=core thread not answering") == 1)
        pings = manager.count("WATCHDOG=1")
        qtbot.wait(round(4 * PING_S * 1000))  # four ping periods, on the GUI thread's clock
        assert manager.count("WATCHDOG=1") == pings, "pinged while the core thread was stuck"

        stall.release.set()
        qtbot.waitUntil(lambda: not station.supervision.stalled, timeout=10_000)
        qtbot.waitUntil(lambda: manager.count("WATCHDOG=1") >= pings + 2, timeout=10_000)
        lines = manager.lines()
        after = lines[lines.index("STATUS=core thread not answering") :]
        assert status in after  # the status of before the stall is said again
    finally:
        stall.release.set()
        assert station.stop()
    assert manager.read()[-1] == "STOPPING=1\nSTATUS=stopping"
    assert NOTIFY_THREAD not in {t.name for t in threading.enumerate()}


def test_without_notify_socket_nothing_is_sent_and_no_thread_runs(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "600000")
    settings = from_mapping(
        {"station": {"data_dir": str(tmp_path / "data")}, "mqtt": {"port": _closed_port()}}
    )
    station = Station(settings, user="nobody")
    qtbot.addWidget(station.window)
    try:
        assert station.supervision.watchdog_s is None
        station.start()
        qtbot.waitUntil(lambda: station.supervision.ready, timeout=10_000)
        assert station.supervision.pings == 0
        assert NOTIFY_THREAD not in {t.name for t in threading.enumerate()}
    finally:
        assert station.stop()
