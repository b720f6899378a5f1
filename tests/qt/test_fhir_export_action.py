"""The trend view's *Export FHIR…*, wired as the station wires it (the window's bed windows, the
action layer, a real audit trail) over the FHIR tests' demo-like data folder: the bundle is
read and written on the report worker, never on the GUI thread (an audit hook records every
file open and SQLite connect, and on which thread), and the export is audited; a failed export
is said in the view and audited as a failure; a role without export rights gets no chooser.
"""

from __future__ import annotations

import json
import math
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from station.domain.roles import Role
from station.presenters.actions import ActionLayer
from station.services.audit.writer import AuditWriter
from station.services.hospital.fhir_source import PATIENT_FILE, TREND_FILE
from station.services.storage.accounts import Accounts
from station.services.storage.alarm_store import ALARM_STORE_FILE, AlarmStore
from station.services.storage.trends import TrendStore
from station.ui.fhir_export_action import BUTTON_TEXT, FhirExportAction
from station.ui.trend_view import TrendView
from tests.fakes import FakeClock
from tests.qt.choosers import choose, open_chooser
from tests.qt.wiring import NURSE, Screen, Wiring
from tests.unit.test_fhir_export import ADA, NOW, Ward, make_ward

Event = tuple[str, str, bool]
"""(event, the file, whether on the GUI thread)"""
_HOOK: dict[str, list[Event] | None] = {"record": None}
_HOOKED: list[bool] = []
_MAIN = threading.main_thread().ident


def _hook(event: str, args: tuple[Any, ...]) -> None:
    record = _HOOK["record"]
    if record is None or event not in ("open", "sqlite3.connect", "tempfile.mkstemp"):
        return
    target = str(args[0]).split("?")[0] if args else ""  # an SQLite URI's mode=ro, not a name
    record.append((event, target, threading.get_ident() == _MAIN))


@contextmanager
def recording_io() -> Iterator[list[Event]]:
    """Every file open and SQLite connect meanwhile (audit hooks cannot be removed: this one
    does nothing unless a test is recording)."""
    if not _HOOKED:
        sys.addaudithook(_hook)
        _HOOKED.append(True)
    events: list[Event] = []
    _HOOK["record"] = events
    try:
        yield events
    finally:
        _HOOK["record"] = None


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    return make_ward(tmp_path)


@pytest.fixture
def station(
    qtbot: QtBot, wire: Wiring, ward: Ward, tmp_path: Path
) -> Iterator[tuple[Screen, AuditWriter]]:
    """The ward's screen with a nurse logged in and a real audit trail in the data folder."""
    clock = FakeClock(NOW)
    audit = AuditWriter(ward.data / "audit", clock=clock)
    audit.start()
    trends = TrendStore(ward.data / TREND_FILE, clock=lambda: NOW)
    screen = wire(
        ward.settings,
        clock,
        audit,
        trends=trends,
        core=False,
        alarm_store=AlarmStore(ward.data / ALARM_STORE_FILE, clock=lambda: NOW),
    )
    yield screen, audit
    screen.window.bed_windows.shutdown()
    for view in screen.window.bed_windows.trend_views.values():
        view.close()
    audit.close(5.0)


def open_trends(qtbot: QtBot, screen: Screen, bed: str) -> tuple[TrendView, FhirExportAction]:
    windows = screen.window.bed_windows
    windows.open_trends(bed)
    view = windows.trend_views[bed]
    qtbot.waitUntil(lambda: view.data is not None, timeout=5000)
    action = view.findChild(FhirExportAction)
    assert action is not None
    return view, action


def records(ward: Ward, audit: AuditWriter, action: str) -> list[dict[str, Any]]:
    assert audit.close(5.0)
    lines = (ward.data / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["action"] == action]


def test_the_stay_is_written_off_the_gui_thread_and_audited(
    qtbot: QtBot, station: tuple[Screen, AuditWriter], ward: Ward, tmp_path: Path
) -> None:
    screen, audit = station
    view, action = open_trends(qtbot, screen, "Bed 1")
    assert action.button.text() == BUTTON_TEXT
    assert action.button.isVisible()
    assert action.button.parentWidget() is view
    out = tmp_path / "olga.fhir.json"
    with recording_io() as events:
        qtbot.mouseClick(action.button, Qt.MouseButton.LeftButton)
        with qtbot.waitSignal(action.exported, timeout=30_000) as done:
            choose(view, out)
    summary = done.args[0]
    assert summary.identified
    assert summary.observations == 384

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    Bundle.model_validate_json(out.read_bytes())
    assert ADA[1] in out.read_text(encoding="utf-8")
    assert f"Wrote {out}" in view.export_status.text()

    watched = (str(out.parent), PATIENT_FILE, TREND_FILE, ALARM_STORE_FILE, "devices.json")
    ours = [e for e in events if any(w in e[1] for w in watched)]
    on_gui = [e for e in ours if e[2]]
    assert on_gui == [], on_gui
    read = {Path(e[1]).name for e in ours}
    assert {PATIENT_FILE, TREND_FILE, ALARM_STORE_FILE, "devices.json"} <= read
    assert any(str(out.parent) in e[1] for e in ours)  # the hook saw the file written

    (record,) = records(ward, audit, "fhir.export")
    assert (record["actor"], record["role"], record["outcome"]) == (NURSE, "nurse", "success")
    assert record["target"] == ward.consented.patient_id
    assert record["details"]["path"] == str(out)
    assert record["details"]["identified"] is True
    assert ADA[0] not in json.dumps(record)


def test_a_failed_export_is_said_and_audited(
    qtbot: QtBot, station: tuple[Screen, AuditWriter], ward: Ward, tmp_path: Path
) -> None:
    screen, audit = station
    view, action = open_trends(qtbot, screen, "Bed 2")
    out = tmp_path / "no such folder" / "ivo.json"
    with qtbot.waitSignal(action.failed, timeout=30_000) as failed:
        action.export_to(out, NURSE)
    assert "could not write" in failed.args[0]
    assert view.export_status.text() == failed.args[0]
    assert not out.exists()
    (record,) = records(ward, audit, "fhir.export")
    assert record["outcome"] == "failure"
    assert record["target"] == "Bed 2"
    assert "could not write" in record["details"]["reason"]


def test_a_role_without_export_rights_gets_no_chooser(
    qtbot: QtBot, wire: Wiring, ward: Ward, tmp_path: Path
) -> None:
    clock = FakeClock(NOW)
    audit = AuditWriter(ward.data / "audit", clock=clock)
    audit.start()
    accounts = Accounts(tmp_path / "users.json", clock=clock, scrypt_n=2**10)
    actions = ActionLayer(accounts, audit, "ward-7", lock_after_s=math.inf, clock=clock)
    actions.session.login("porter", Role.WARD_STAFF, clock())
    trends = TrendStore(ward.data / TREND_FILE, clock=lambda: NOW)
    screen = wire(ward.settings, clock, audit, actions=actions, trends=trends, core=False)
    try:
        view, action = open_trends(qtbot, screen, "Bed 1")
        qtbot.mouseClick(action.button, Qt.MouseButton.LeftButton)
        with pytest.raises(AssertionError, match="0 choosers open"):
            open_chooser(view)
    finally:
        screen.window.bed_windows.shutdown()
        for view in screen.window.bed_windows.trend_views.values():
            view.close()
        actions.shutdown(1.0)
    denied = records(ward, audit, "access.denied")
    assert [(r["actor"], r["details"]["action"]) for r in denied] == [("porter", "export_data")]
