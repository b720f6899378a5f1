"""pytest-qt: a bed's alarm limits survive a restart, follow the patient, end at a discharge, and
show on the tile and the detail view.

Each "restart" builds a second window and core (and, with patients, a second ward admin) on the
same data folder, as the station does after a restart: the saved limits file, the encrypted
patient table and the audit trail are real files; the keyring is the tests' memory one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from station.config.credentials import use_memory_keyring
from station.config.settings import Settings, from_mapping
from station.domain.alarms import AlarmLimits, Priority
from station.domain.profiles import load_profile
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.storage.bed_limits_file import BED_LIMITS_FILE, BedLimitsFile
from station.ui.patient_view import PatientView
from tests.fakes import FakeClock
from tests.qt.wiring import Screen, Wiring

HR_140 = {"heartrate": AlarmLimits(low=50, high=140, priority=Priority.HIGH)}


@dataclass
class Folder:
    """One data folder, its settings and clock, and a way to start a station on it."""

    data: Path
    settings: Settings
    clock: FakeClock
    audit: AuditWriter
    wire: Wiring

    def start(self, admin: WardAdmin | None = None) -> Screen:
        """A window and core on this folder, as after a restart (the ward admin's patients
        pushed to the core before it runs, as the app does)."""
        store = BedLimitsFile(self.data / BED_LIMITS_FILE)
        screen = self.wire(self.settings, self.clock, self.audit, admin=admin, limits_store=store)
        assert screen.core is not None
        if admin is not None:
            screen.core.set_bed_policy(admin.policy())
        return screen

    def admin(self) -> WardAdmin:
        return WardAdmin(self.settings, self.audit, clock=self.clock)

    def saved(self) -> dict[str, object]:
        owners = json.loads((self.data / BED_LIMITS_FILE).read_text())["owners"]
        assert isinstance(owners, dict)
        return owners

    def records(self, action: str) -> list[dict[str, object]]:
        assert self.audit.close(5.0)
        lines = self.audit.path.read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["action"] == action]


@pytest.fixture
def folder(wire: Wiring, tmp_path: Path) -> Iterator[Folder]:
    data = tmp_path / "data"
    settings = from_mapping({"station": {"data_dir": str(data)}, "ward": {"beds": 4}})
    clock = FakeClock()
    with use_memory_keyring():
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        yield Folder(data, settings, clock, audit, wire)
        audit.close(5.0)


def test_limits_set_by_a_nurse_survive_a_restart_and_show_on_the_tile(folder: Folder) -> None:
    first = folder.start()
    first.window.limits_requested.emit("Bed 2", HR_140, None, "nurse-ann")
    tile = first.window.tiles["Bed 2"]
    tile.refresh(folder.clock.now)
    assert "50–140" in tile.hr.head.text()
    assert "limits: custom" in tile.device.text()
    assert "limits:" not in first.window.tiles["Bed 1"].device.text()
    assert (folder.data / BED_LIMITS_FILE).stat().st_mode & 0o777 == 0o600

    again = folder.start()
    assert again.core is not None
    assert again.core._engine.limits_for("Bed 2")["heartrate"].high == 140
    assert again.core._engine.limits_for("Bed 1")["heartrate"].high != 140
    tile = again.window.tiles["Bed 2"]
    tile.refresh(folder.clock.now)
    assert "50–140" in tile.hr.head.text()
    assert "this bed's" in tile.hr.head.toolTip()
    restored = [
        r for r in folder.records("alarm.limits_change") if r["details"].get("reason") == "restored"
    ]
    assert [(r["target"], r["details"]["set_by"]) for r in restored] == [("Bed 2", "nurse-ann")]


def test_a_profile_is_named_on_the_tile_and_drawn_in_the_detail_view(folder: Folder) -> None:
    screen = folder.start()
    neonatal = load_profile("neonatal")
    screen.window.limits_requested.emit("Bed 3", neonatal, "neonatal", "nurse-ann")
    again = folder.start()
    tile = again.window.tiles["Bed 3"]
    tile.refresh(folder.clock.now)
    assert "limits: neonatal" in tile.device.text()
    hr = neonatal["heartrate"]
    view = PatientView(again.window.beds["Bed 3"], 600.0, again.window)
    low, high = view.limit_lines["heartrate"]
    assert (low.value(), high.value()) == (hr.low, hr.high)
    assert low.isVisible()
    assert high.isVisible()
    assert "(neonatal)" in view._items[0].titleLabel.text
    view.close()


def test_a_patients_limits_follow_them_across_a_restart_and_end_at_discharge(
    folder: Folder,
) -> None:
    admin = folder.admin()
    screen = folder.start(admin)
    admin.admit_now("Bed 1", "Łukasz Wójcik", "MRN-1", date(1960, 1, 2), "nurse-ann")
    screen.window.limits_requested.emit("Bed 1", HR_140, None, "nurse-ann")
    admin.transfer_now("Bed 1", "Bed 4", "nurse-ann")
    (owner,) = folder.saved()
    assert owner.startswith("patient:")
    assert "Wójcik" not in (folder.data / BED_LIMITS_FILE).read_text()  # a pseudonym only

    admin = folder.admin()  # restart: the patient table read again
    again = folder.start(admin)
    assert again.core is not None
    assert again.core._engine.limits_for("Bed 4")["heartrate"].high == 140
    assert not again.window.bed_limits["Bed 1"].own
    assert again.window.bed_limits["Bed 4"].own

    admin.discharge_now("Bed 4", "nurse-ann")
    assert folder.saved() == {}
    assert again.core._engine.limits_for("Bed 4")["heartrate"].high != 140


def test_a_new_patient_ends_the_beds_own_limits(folder: Folder) -> None:
    admin = folder.admin()
    screen = folder.start(admin)
    screen.window.limits_requested.emit("Bed 2", HR_140, None, "nurse-ann")
    assert list(folder.saved()) == ["bed:Bed 2"]
    admin.admit_now("Bed 2", "Çağlar Öztürk", "MRN-2", date(1970, 3, 4), "nurse-ann")
    assert folder.saved() == {}
    assert not screen.window.bed_limits["Bed 2"].own


def test_an_unreadable_limits_file_is_kept_and_reported(folder: Folder) -> None:
    path = folder.data / BED_LIMITS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"format": 1, "owners": {"bed:Bed 1": {"bed": "Bed 1"}}}')
    screen = folder.start()
    assert screen.core is not None
    assert screen.core.limits_fault is not None
    assert "ward defaults in force" in screen.core.limits_fault
    screen.core.startup_fault("bed_limits", screen.core.limits_fault)  # as the app does
    shown = [a.message for a in screen.window.alarm_list.alarms()]
    assert any("Saved alarm limits unreadable" in m for m in shown)
    screen.window.limits_requested.emit("Bed 1", HR_140, None, "nurse-ann")
    assert screen.core._engine.limits_for("Bed 1")["heartrate"].high == 140  # still applied
    assert '"bed": "Bed 1"}}}' in path.read_text()  # never overwritten


def test_limits_that_cannot_be_saved_apply_and_raise_a_technical_alarm(folder: Folder) -> None:
    screen = folder.start()
    assert screen.core is not None
    taken = folder.data / BED_LIMITS_FILE
    taken.mkdir(parents=True)  # a folder where the file goes: the rename over it fails
    (taken / "keep").write_text("")
    screen.window.limits_requested.emit("Bed 1", HR_140, None, "nurse-ann")
    assert screen.core._engine.limits_for("Bed 1")["heartrate"].high == 140  # in force now
    shown = [a.message for a in screen.window.alarm_list.alarms()]
    assert any(m.startswith("Alarm limits not saved") for m in shown)
    (taken / "keep").unlink()
    taken.rmdir()
    screen.window.limits_requested.emit("Bed 1", HR_140, None, "nurse-ann")
    assert not [a for a in screen.window.alarm_list.alarms() if a.parameter == "bed_limits"]
    assert list(folder.saved()) == ["bed:Bed 1"]
