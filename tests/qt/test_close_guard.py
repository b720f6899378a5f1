"""Issue 16, point 2: closing the ward screen from the window system (×, Alt-F4) needs an admin.
Without a login the close is refused and the login dialog asks for one; an admin's login (checked
off the GUI thread, as every login) closes the window and the station's ``station.stop`` record
names that admin and why; a nurse's login is refused and audited; the program's own close (quit
on SIGTERM, a screenshot) needs no login and is audited with its reason."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QCloseEvent
from pytestqt.qtbot import QtBot

from station.app import Station
from station.config.settings import from_mapping
from station.domain.roles import Role
from station.services.storage.accounts import Accounts
from station.ui.close_guard import REASON
from station.ui.login_dialog import LoginDialog

ADMIN, ADMIN_PASSWORD = "admin-ada", "admin test password"
NURSE, NURSE_PASSWORD = "nurse-nia", "nurse test password"


class WindowSystemClose(QCloseEvent):
    """A close as the window manager sends it (the title bar's ×, Alt-F4): spontaneous. Qt
    offers no public way to make one, so the window's handler is given this one directly."""

    def spontaneous(self) -> bool:
        return True


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _wm_close(station: Station) -> bool:
    """Close ``station``'s window as the window manager does; whether the close went through."""
    event = WindowSystemClose()
    station.window.closeEvent(event)
    if event.isAccepted():
        station.window.close()  # what Qt does with an accepted close
    return event.isAccepted()


def _stops(data: Path) -> list[dict[str, Any]]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["action"] == "station.stop"]


@pytest.fixture
def station(qtbot: QtBot, tmp_path: Path) -> Iterator[Station]:
    """A started station (no broker) with an admin and a nurse; nobody logged in."""
    data = tmp_path / "data"
    accounts = Accounts(data / "users.json", scrypt_n=2**10)  # cheap hashes: tests need speed
    accounts.create(ADMIN, Role.ADMIN, ADMIN_PASSWORD)
    accounts.create(NURSE, Role.NURSE, NURSE_PASSWORD)
    settings = from_mapping({"station": {"data_dir": str(data)}, "mqtt": {"port": _closed_port()}})
    running = Station(settings, user="nobody")
    qtbot.addWidget(running.window)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _log_in_to_close(qtbot: QtBot, station: Station, user: str, password: str) -> LoginDialog:
    assert not _wm_close(station)
    dialog = station.close_guard.dialog
    assert dialog is not None
    assert dialog.isVisible()
    dialog.user.setCurrentText(user)
    dialog.secret.setText(password)
    with qtbot.waitSignal(dialog.finished, timeout=10_000):
        dialog.submit()  # checked on the accounts' worker, never on the GUI thread
    return dialog


def test_a_window_system_close_without_login_is_refused(qtbot: QtBot, station: Station) -> None:
    assert not _wm_close(station)
    assert station.window.isVisible()
    dialog = station.close_guard.dialog
    assert dialog is not None
    assert dialog.isVisible()
    assert "admin" in dialog.why.text()
    assert not _wm_close(station)  # asked again: the same dialog, raised
    assert station.close_guard.dialog is dialog
    dialog.reject()  # cancelled: the station stays up
    assert station.window.isVisible()
    assert not _wm_close(station)


def test_an_admins_login_closes_the_station_and_is_audited(
    qtbot: QtBot, station: Station, tmp_path: Path
) -> None:
    _log_in_to_close(qtbot, station, ADMIN, ADMIN_PASSWORD)
    qtbot.waitUntil(lambda: not station.window.isVisible(), timeout=5_000)
    assert station.stop()
    [stop] = _stops(tmp_path / "data")
    assert (stop["actor"], stop["role"], stop["outcome"]) == (ADMIN, "admin", "success")
    assert stop["details"] == {"clean": True, "reason": REASON}


def test_a_nurses_login_does_not_close_the_station(
    qtbot: QtBot, station: Station, tmp_path: Path
) -> None:
    _log_in_to_close(qtbot, station, NURSE, NURSE_PASSWORD)
    qtbot.wait(50)  # a close, if one were coming, is queued behind the dialog's end
    assert station.window.isVisible()
    assert station.actions.session.user == NURSE  # her login stands; the close does not
    assert "Only an admin" in station.window.statusBar().currentMessage()
    assert not _wm_close(station)  # and the next close asks again
    assert station.stop()
    refused, stopped = _stops(tmp_path / "data")
    assert (refused["actor"], refused["role"], refused["outcome"]) == (NURSE, "nurse", "failure")
    assert refused["details"] == {"reason": REASON, "refused": "role nurse"}
    assert (stopped["actor"], stopped["outcome"]) == ("station", "success")


def test_the_programs_own_close_needs_no_login_and_says_why(
    station: Station, tmp_path: Path
) -> None:
    """What SIGTERM does: the reason is set, Qt's quit closes the window (not spontaneous)."""
    station.set_stop_reason("signal 15")
    station.window.close()
    assert not station.window.isVisible()
    assert station.close_guard.dialog is None  # no login was asked for
    assert station.stop()
    [stop] = _stops(tmp_path / "data")
    assert (stop["actor"], stop["role"]) == ("station", "system")
    assert stop["details"] == {"clean": True, "reason": "signal 15"}
