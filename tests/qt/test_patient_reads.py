"""Reads of patient data are audited: opening a bed's detail view, its trends, the alarm
history or the shift report records who looked (``patient.read``), also while locked."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pytestqt.qtbot import QtBot

from station.config.credentials import use_memory_keyring
from station.config.settings import from_mapping
from station.presenters.actions import ActionLayer
from station.presenters.data_reads import LOCKED
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.storage.accounts import Accounts
from station.services.storage.trends import TrendStore
from tests.fakes import FakeClock
from tests.qt.wiring import NURSE, Wiring


def reads(data: Path) -> list[tuple[str, str, str, str]]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [
        (r["actor"], r["role"], r["target"], r["details"]["view"])
        for r in map(json.loads, lines)
        if r["action"] == "patient.read"
    ]


def test_each_view_opened_is_a_read_by_the_user_logged_in(
    qtbot: QtBot, wire: Wiring, tmp_path: Path
) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping({"station": {"data_dir": str(data)}, "ward": {"beds": 2}})
    trends = TrendStore(data / "trends.sqlite", clock=lambda: clock.now)
    trends.open()
    with use_memory_keyring():
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        screen = wire(settings, clock, audit, trends=trends, core=False)
        windows = screen.window.bed_windows
        windows.open_patient("Bed 1")
        windows.open_trends("Bed 2")
        windows.open_history()
        windows.open_report("Bed 1")
        windows.open_patient("Bed 1")  # raised again: read again
        windows.shutdown()
        for view in windows.trend_views.values():
            view.close()
        assert audit.close(5.0)
    trends.close()
    assert reads(data) == [
        (NURSE, "nurse", "Bed 1", "detail"),
        (NURSE, "nurse", "Bed 2", "trends"),
        (NURSE, "nurse", "ward", "alarm history"),
        (NURSE, "nurse", "Bed 1", "shift report"),
        (NURSE, "nurse", "Bed 1", "detail"),
    ]


def test_a_read_while_locked_is_recorded_as_such(
    qtbot: QtBot, wire: Wiring, tmp_path: Path
) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping({"station": {"data_dir": str(data)}, "ward": {"beds": 1}})
    with use_memory_keyring():
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        accounts = Accounts(tmp_path / "users.json", clock=clock, scrypt_n=2**10)
        actions = ActionLayer(accounts, audit, "ward-1", lock_after_s=math.inf, clock=clock)
        screen = wire(settings, clock, audit, actions=actions, core=False)
        screen.window.bed_windows.open_patient("Bed 1")
        screen.window.bed_windows.shutdown()
        actions.shutdown(1.0)
        assert audit.close(5.0)
    assert reads(data) == [(LOCKED, "none", "Bed 1", "detail")]


def test_opening_the_patient_record_is_a_read(qtbot: QtBot, wire: Wiring, tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping({"station": {"data_dir": str(data)}, "ward": {"beds": 1}})
    with use_memory_keyring():
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        admin = WardAdmin(settings, audit, clock=clock)
        screen = wire(settings, clock, audit, admin=admin, core=False)
        assert screen.dialogs.ward is not None
        assert screen.dialogs.ward.open_patient("Bed 1") is not None
        assert admin.stop(5.0)
        assert audit.close(5.0)
    assert reads(data) == [(NURSE, "nurse", "Bed 1", "patient record")]
