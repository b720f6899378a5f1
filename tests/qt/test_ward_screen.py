"""pytest-qt tests of the ward screen: tiles, the no-data state, the alarm list and acknowledge.

The screen is wired as the app wires it (the ``wire`` fixture): driven the way the core drives
it (``on_vitals``, ``on_alarm``) and, for the acknowledge path, through the action layer to a real
:class:`CoreWorker` and a real audit file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.alarms import AlarmState
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.ui import tile_grid
from station.ui.main_window import MainWindow
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Screen, Wiring


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return from_mapping(
        {
            "station": {"data_dir": str(tmp_path / "data")},
            "ward": {"beds": 4, "devices": {"mon-1": 1, "mon-2": 2}},
        }
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def audit(tmp_path: Path, clock: FakeClock) -> Iterator[AuditWriter]:
    writer = AuditWriter(tmp_path / "audit", clock=clock)
    writer.start()
    yield writer
    assert writer.close(5.0)


@pytest.fixture
def screen(wire: Wiring, settings: Settings, clock: FakeClock, audit: AuditWriter) -> Screen:
    """The window and a real core (on the test's thread), a nurse logged in."""
    return wire(settings, clock, audit)


@pytest.fixture
def window(screen: Screen) -> MainWindow:
    return screen.window


def test_tile_shows_latest_values_units_and_age(window: MainWindow, clock: FakeClock) -> None:
    window.on_vitals("Bed 1", accepted("mon-1", clock.now, heartrate=84, oxygen=95))
    clock.now += 3
    window.paint_frame()
    tile = window.tiles["Bed 1"]
    assert tile.device.text() == "mon-1"
    assert tile.hr.value.text() == "84"
    assert tile.spo2.value.text() == "95"
    assert tile.nibp.value.text() == "120/80"
    assert tile.temp.value.text() == "36.8"
    assert tile.age.text() == "3 s"
    assert tile.banner.text() == ""
    _, hr = tile.curves["heartrate"].getData()
    assert list(hr) == [84.0]
    # Units are shown beside the numbers.
    units = " ".join(label.text() for label in tile.findChildren(QLabel))
    for unit in ("bpm", "%", "mmHg", "°C"):
        assert unit in units


def test_curves_follow_the_ring_buffer(window: MainWindow, clock: FakeClock) -> None:
    for hr in (70, 75, 80, 85):
        window.on_vitals("Bed 2", accepted("mon-2", clock.now, heartrate=hr))
        clock.now += 1
    window.paint_frame()
    x, y = window.tiles["Bed 2"].curves["heartrate"].getData()
    assert list(y) == [70.0, 75.0, 80.0, 85.0]
    assert list(x) == sorted(x)


def test_a_quiet_device_shows_no_data_never_its_last_values(
    window: MainWindow, settings: Settings, clock: FakeClock
) -> None:
    window.on_vitals("Bed 1", accepted("mon-1", clock.now, heartrate=84))
    window.paint_frame()
    tile = window.tiles["Bed 1"]
    assert tile.hr.value.text() == "84"
    clock.now += settings.alarms.no_data_s + 1
    window.paint_frame()
    assert tile.banner.text() == "NO DATA"
    assert tile.hr.value.text() == "--"
    assert tile.spo2.value.text() == "--"
    assert tile.nibp.value.text() == "--/--"
    assert tile.temp.value.text() == "--"
    assert tile.age.text() == "last data 11 s ago"
    # Data again: live values come back.
    window.on_vitals("Bed 1", accepted("mon-1", clock.now, heartrate=90))
    window.paint_frame()
    assert tile.hr.value.text() == "90"
    assert tile.banner.text() == ""


def test_a_bed_without_a_device_says_so(window: MainWindow) -> None:
    window.paint_frame()
    tile = window.tiles["Bed 4"]
    assert tile.device.text() == "no device"
    assert tile.age.text() == "no data yet"
    assert tile.hr.value.text() == "--"


def test_double_click_opens_the_patient_detail_view(
    qtbot: QtBot, window: MainWindow, clock: FakeClock
) -> None:
    window.on_vitals("Bed 2", accepted("mon-2", clock.now, heartrate=77))
    window.show()
    qtbot.mouseDClick(window.tiles["Bed 2"], Qt.MouseButton.LeftButton)
    view = window.bed_windows.patient_views["Bed 2"]
    assert view.isVisible()
    assert "Bed 2" in view.title.text()
    assert "mon-2" in view.title.text()
    assert list(view.curves["heartrate"].getData()[1]) == [77.0]


def test_historian_off_is_shown(window: MainWindow) -> None:
    window._paint_historian()
    assert "Historian: off" in window.historian.text()


@pytest.fixture
def wired(screen: Screen, audit: AuditWriter) -> tuple[MainWindow, CoreWorker, AuditWriter]:
    """Window, core and audit writer, wired through the action layer."""
    assert screen.core is not None
    return screen.window, screen.core, audit


def test_alarm_shows_on_tile_and_list_and_a_nurse_acknowledges_it(
    qtbot: QtBot, wired: tuple[MainWindow, CoreWorker, AuditWriter], clock: FakeClock
) -> None:
    window, core, audit = wired
    core.on_accepted(accepted("mon-1", clock.now, heartrate=134))
    window.paint_frame()
    tile = window.tiles["Bed 1"]
    assert tile.banner.text().startswith("*** HR 134 > 120")
    rows = window.alarm_list.alarms()
    assert [(a.bed, a.message, a.state) for a in rows] == [
        ("Bed 1", "HR 134 > 120", AlarmState.ACTIVE)
    ]
    table = window.alarm_list.table
    assert table.item(0, 0).text() == "***"
    assert not window.alarm_list.ack.isEnabled()  # nothing selected yet

    table.selectRow(0)
    assert window.alarm_list.ack.isEnabled()
    with qtbot.waitSignal(window.acknowledge_requested) as sig:
        qtbot.mouseClick(window.alarm_list.ack, Qt.MouseButton.LeftButton)
    assert sig.args == [rows[0].alarm_id, "nurse-ann"]

    acked = window.alarm_list.alarms()[0]
    assert acked.state == AlarmState.ACKNOWLEDGED
    assert acked.by == "nurse-ann"
    window.paint_frame()  # the table is rebuilt once per frame
    assert table.item(0, 3).text() == "acknowledged by nurse-ann"
    assert not window.alarm_list.ack.isEnabled()  # an acknowledged alarm cannot be re-acked
    window.paint_frame()
    assert "(ack)" in tile.banner.text()  # visual stays while the condition lasts

    core.on_accepted(accepted("mon-1", clock.now, heartrate=80))
    window.paint_frame()
    assert window.alarm_list.alarms() == []
    assert tile.banner.text() == ""
    assert window.alarm_list.count.text() == "none"

    assert audit.close(5.0)
    actions = [json.loads(line)["action"] for line in audit.path.read_text().splitlines()]
    assert actions == ["alarm.raise", "alarm.acknowledge", "alarm.clear"]
    ack = json.loads(audit.path.read_text().splitlines()[1])
    assert ack["actor"] == "nurse-ann"


def test_alarm_list_orders_by_priority(
    wired: tuple[MainWindow, CoreWorker, AuditWriter], clock: FakeClock
) -> None:
    window, core, _ = wired
    core.on_accepted(accepted("mon-1", clock.now, temperature=38.9))
    # SpO2 has a 10 s condition delay (device time): the second low value raises it.
    core.on_accepted(accepted("mon-2", clock.now, oxygen=85))
    clock.now += 10
    core.on_accepted(accepted("mon-2", clock.now, oxygen=85))
    window.paint_frame()  # the table is rebuilt once per frame
    marks = [window.alarm_list.table.item(r, 0).text() for r in range(2)]
    assert marks == ["***", "*"]
    assert window.alarm_list.count.text() == "2 open, 2 unacknowledged"


def test_a_frame_over_budget_paints_alarmed_beds_and_takes_the_others_in_turn(
    wired: tuple[MainWindow, CoreWorker, AuditWriter],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, core, _ = wired
    monkeypatch.setattr(tile_grid, "FRAME_BUDGET_S", -1.0)  # each pass stops after one tile
    for n in (1, 3, 4):
        window.on_vitals(f"Bed {n}", accepted(f"mon-{n}", clock.now, heartrate=70 + n))
    core.on_accepted(accepted("mon-2", clock.now, heartrate=134))  # Bed 2's alarm

    def shown() -> dict[str, str]:
        return {bed: tile.hr.value.text() for bed, tile in window.tiles.items()}

    window.paint_frame()
    assert shown()["Bed 2"] == "134"  # the alarmed bed, whatever the budget
    assert window.tiles["Bed 2"].banner.text().startswith("*** HR 134")
    assert "--" in shown().values()  # not every bed in one frame over budget
    for _ in range(3):
        window.paint_frame()
    assert shown() == {"Bed 1": "71", "Bed 2": "134", "Bed 3": "73", "Bed 4": "74"}
