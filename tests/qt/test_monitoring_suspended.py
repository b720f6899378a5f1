"""pytest-qt: a nurse suspends a bed's monitoring for a patient who is off the monitor (issue
15, point 1): the tile says so, the bed raises no "No data" and no alarm while suspended, both
changes are audited with the nurse and the reason, and resuming watches the bed afresh.

The window, the core (driven directly) and the ward admin are wired as the app wires them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from station.config.credentials import use_memory_keyring
from station.config.settings import from_mapping
from station.domain.alarms import AlarmKind
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.ui.main_window import MainWindow
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import NURSE, Wiring


@dataclass
class Ward:
    window: MainWindow
    core: CoreWorker
    admin: WardAdmin
    audit: AuditWriter
    clock: FakeClock


@pytest.fixture
def ward(wire: Wiring, tmp_path: Path) -> Iterator[Ward]:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping(
        {
            "station": {"data_dir": str(data)},
            "ward": {"beds": 2, "devices": {"mon-1": 1, "mon-2": 2}},
        }
    )
    with use_memory_keyring():
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        admin = WardAdmin(settings, audit, clock=clock)
        screen = wire(settings, clock, audit, admin=admin)
        assert screen.core is not None
        yield Ward(screen.window, screen.core, admin, audit, clock)
        audit.close(5.0)


def _no_data_on(ward: Ward, bed: str) -> bool:
    return any(
        a.kind == AlarmKind.TECHNICAL and a.bed == bed and "No data" in a.message
        for a in ward.window.alarm_list.alarms()
    )


def _wait(ward: Ward, seconds: float) -> None:
    """``seconds`` of station time with the core's watch and the screen's frames running."""
    for _ in range(int(seconds)):
        ward.clock.now += 1
        ward.core.tick()
        ward.window.paint_frame()


def test_a_suspended_bed_shows_why_and_raises_no_alarm_until_resumed(ward: Ward) -> None:
    tile = ward.window.tiles["Bed 1"]
    ward.core.on_accepted(accepted("mon-1", ward.clock.now, heartrate=150))
    ward.core.on_accepted(accepted("mon-2", ward.clock.now, heartrate=80))
    ward.window.paint_frame()
    assert [a.bed for a in ward.window.alarm_list.alarms()] == ["Bed 1"]

    tile.monitoring_wanted.emit("Bed 1", "procedure")  # the tile menu's entry
    ward.window.paint_frame()
    assert ward.window.alarm_list.alarms() == []  # the patient is off the monitor
    assert tile.banner.text() == "MONITORING SUSPENDED · procedure"
    _wait(ward, 60)  # mon-1 silent for a minute: no "No data" for a suspended bed
    assert not _no_data_on(ward, "Bed 1")
    assert _no_data_on(ward, "Bed 2")  # the other bed is still watched
    assert tile.banner.text() == "MONITORING SUSPENDED · procedure"  # never NO DATA

    tile.monitoring_wanted.emit("Bed 1", "")  # Resume monitoring
    ward.window.paint_frame()
    assert "SUSPENDED" not in tile.banner.text()
    _wait(ward, 60)
    assert _no_data_on(ward, "Bed 1")  # watched again: the device is still silent

    assert ward.audit.close(5.0)
    rows = [json.loads(line) for line in ward.audit.path.read_text().splitlines()]
    changes = [
        (r["action"], r["actor"], r["target"], r["details"])
        for r in rows
        if r["action"].startswith("bed.monitoring")
    ]
    assert changes == [
        ("bed.monitoring_suspend", NURSE, "Bed 1", {"reason": "procedure"}),
        ("bed.monitoring_resume", NURSE, "Bed 1", {"was": "procedure"}),
    ]


def test_a_discharged_bed_cannot_be_suspended_and_resume_without_suspend_does_nothing(
    ward: Ward,
) -> None:
    ward.admin.set_monitoring("Bed 2", "", NURSE)
    assert ward.admin.suspended("Bed 2") is None
    ward.admin.set_monitoring("Bed 9", "procedure", NURSE)  # no such bed
    assert ward.admin.policy() == {}
