"""pytest-qt: the detail view is worth opening (issue 15, point 6): the patient as consent
allows, numerics with their limits, the bed's alarms, the no-data and suspended states, 10 min /
1 h / 8 h windows (8 h from the trend store, read on a worker), and links to the trends, the
limits and the patient record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.config.credentials import use_memory_keyring
from station.config.settings import from_mapping
from station.domain.patients.records import Purpose
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.services.storage.trends import TrendSample, TrendStore
from station.ui.limits_dialog import LimitsDialog
from station.ui.main_window import MainWindow
from station.ui.patient_dialog import PatientDialog
from station.ui.patient_view import PatientView
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Wiring

NAME = "Łukasz Wójcik"


@dataclass
class Ward:
    window: MainWindow
    core: CoreWorker
    admin: WardAdmin
    clock: FakeClock
    qtbot: QtBot

    def view(self, bed: str) -> PatientView:
        self.window.bed_windows.open_patient(bed)
        return self.window.bed_windows.patient_views[bed]


@pytest.fixture
def ward(qtbot: QtBot, wire: Wiring, tmp_path: Path) -> Iterator[Ward]:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping(
        {
            "station": {"data_dir": str(data)},
            "ward": {"beds": 2, "devices": {"mon-1": 1, "mon-2": 2}},
            "alarms": {"no_data_s": 15},
        }
    )
    trends = TrendStore(data / "trends.sqlite", clock=lambda: clock.now)
    trends.open()
    trends.add(
        [
            TrendSample("Bed 1", "mon-1", int((clock.now - s) * 1000), {"heartrate": 60 + s % 7})
            for s in range(0, 8 * 3600, 60)
        ]
    )
    with use_memory_keyring():
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        admin = WardAdmin(settings, audit, clock=clock)
        screen = wire(settings, clock, audit, admin=admin, trends=trends)
        assert screen.core is not None
        yield Ward(screen.window, screen.core, admin, clock, qtbot)
        screen.window.bed_windows.shutdown()
        assert audit.close(5.0)
    trends.close()


def test_numerics_limits_alarms_and_patient_are_shown(ward: Ward) -> None:
    patient = ward.admin.admit_now("Bed 1", NAME, "MRN-1", date(1960, 1, 2), "ann")
    ward.admin.record_consent_now(
        patient, Purpose.DISPLAY, granted=True, given_by="patient", representative="", user="ann"
    )
    ward.core.on_accepted(accepted("mon-1", ward.clock.now, heartrate=170, oxygen=95))
    view = ward.view("Bed 1")
    view.refresh(ward.clock.now, force=True)
    assert NAME in view.patient.text()
    assert view.values["HR"].text() == "170"
    assert "background" in view.values["HR"].styleSheet()  # the alarmed number stands out
    assert view.values["SpO2"].text() == "95"
    assert view.values["NIBP"].text() == "120/80"
    assert view.ranges["HR"].text() == "limits 50–120 (ward)"
    assert "HR 170 > 120 (active)" in view.alarms.text()
    assert "HR 170 > 120" in view.state.text()
    assert not view.isModal()


def test_no_data_and_suspended_are_named(ward: Ward) -> None:
    ward.core.on_accepted(accepted("mon-2", ward.clock.now, heartrate=70))
    view = ward.view("Bed 2")
    ward.clock.now += 20
    view.refresh(ward.clock.now, force=True)
    assert view.state.text().startswith("NO DATA for 20 s")
    assert view.values["HR"].text() == "--"  # never the last value as if it were live
    ward.window.beds["Bed 2"].suspended = "procedure"
    view.refresh(ward.clock.now, force=True)
    assert view.state.text() == "MONITORING SUSPENDED · procedure"


def test_windows_of_10_min_1_h_and_8_h_from_the_store(ward: Ward) -> None:
    view = ward.view("Bed 1")
    now = ward.clock.now
    view.show_window(3600)
    view.refresh(now, force=True)
    assert view._items[0].viewRange()[0] == pytest.approx([now - 3600, now])
    view.show_window(8 * 3600)
    view.refresh(now, force=True)  # asks the store on the worker

    def drawn() -> bool:
        view.refresh(now, force=True)
        t, _v = view.curves["heartrate"].getOriginalDataset()
        return t is not None and len(t) > 400

    ward.qtbot.waitUntil(drawn, timeout=5000)
    assert view._items[0].viewRange()[0] == pytest.approx([now - 8 * 3600, now])
    view.show_window(600)
    view.refresh(now, force=True)
    assert view._items[0].viewRange()[0] == pytest.approx([now - 600, now])


def test_links_open_trends_limits_and_the_patient(ward: Ward) -> None:
    ward.window.show()
    view = ward.view("Bed 1")
    view.trends_wanted.emit("Bed 1")
    assert ward.window.bed_windows.trend_views["Bed 1"].isVisible()
    view.limits_wanted.emit("Bed 1")
    assert [d for d in ward.window.findChildren(LimitsDialog) if d.isVisible()]
    view.patient_wanted.emit("Bed 1")
    assert [d for d in ward.window.findChildren(PatientDialog) if d.isVisible()]
    ward.window.bed_windows.trend_views["Bed 1"].shutdown()
