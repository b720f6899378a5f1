"""pytest-qt: a device's text is shown as written, never as markup (issue 17, display). A device
alert carrying HTML must not render in the alarm list's tooltip or the detail view's state."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from station.config.settings import from_mapping
from station.services.audit.writer import AuditWriter
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Wiring

HOSTILE = "<img src='x'><b style='font-size:80px'>HELP</b>"


def test_a_device_alert_with_markup_is_shown_as_written(wire: Wiring, tmp_path: Path) -> None:
    clock = FakeClock()
    settings = from_mapping({"ward": {"beds": 2, "devices": {"mon-1": 1}}})
    audit = AuditWriter(tmp_path / "audit", clock=clock)
    audit.start()
    screen = wire(settings, clock, audit)
    assert screen.core is not None
    screen.core.on_accepted(accepted("mon-1", clock.now, alert=HOSTILE))
    window = screen.window
    window.paint_frame()
    (alarm,) = window.alarm_list.alarms()
    assert HOSTILE in alarm.message
    tooltips = [
        window.alarm_list.table.item(0, col).toolTip()
        for col in range(window.alarm_list.table.columnCount())
    ]
    assert all("<img" not in tip and "&lt;img" in tip for tip in tooltips)
    window.bed_windows.open_patient("Bed 1")
    view = window.bed_windows.patient_views["Bed 1"]
    view.refresh(clock.now, force=True)
    assert view.state.textFormat() == Qt.TextFormat.PlainText
    assert HOSTILE in view.state.text()
    assert window.tiles["Bed 1"].device.textFormat() == Qt.TextFormat.PlainText
    assert audit.close(5.0)
