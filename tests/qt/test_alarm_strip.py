"""pytest-qt: nothing blocks an acknowledgement (issue 15, point 2).

A nurse in a bed's limits dialog and the patient dialog (both open, neither modal) sees another
bed's new alarm in the strip at the top of each, and acknowledges it there; the acknowledgement
goes through the action layer to the engine, as one from the ward's alarm list does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from station.config.credentials import use_memory_keyring
from station.config.settings import from_mapping
from station.domain.alarms import Priority
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.ui import alarm_strip, theme
from station.ui.alarm_strip import QUIET_TEXT, AlarmStrip
from station.ui.limits_dialog import LimitsDialog
from station.ui.main_window import MainWindow
from station.ui.patient_dialog import PatientDialog
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Screen, Wiring


@dataclass
class Ward:
    window: MainWindow
    core: CoreWorker
    screen: Screen
    clock: FakeClock


@pytest.fixture
def ward(wire: Wiring, tmp_path: Path) -> Iterator[Ward]:
    clock = FakeClock()
    settings = from_mapping(
        {
            "station": {"data_dir": str(tmp_path / "data")},
            "ward": {"beds": 3, "devices": {"mon-1": 1, "mon-2": 2}},
        }
    )
    with use_memory_keyring():
        audit = AuditWriter(tmp_path / "data" / "audit", clock=clock)
        audit.start()
        admin = WardAdmin(settings, audit, clock=clock)
        screen = wire(settings, clock, audit, user="ann", admin=admin)
        assert screen.core is not None
        yield Ward(screen.window, screen.core, screen, clock)
        assert audit.close(5.0)


def _strip(dialog: QDialog) -> AlarmStrip:
    strip = dialog.findChild(AlarmStrip)
    assert isinstance(strip, AlarmStrip), f"{type(dialog).__name__} has no alarm strip"
    return strip


def test_an_alarm_is_acknowledged_from_the_strip_while_limits_and_patient_dialogs_are_open(
    qtbot: QtBot, ward: Ward
) -> None:
    window = ward.window
    window.show()
    window.bed_windows.open_limits("Bed 1")
    limits = [d for d in window.findChildren(LimitsDialog) if d.isVisible()]
    assert len(limits) == 1
    assert ward.screen.dialogs.ward is not None
    patient = ward.screen.dialogs.ward.open_patient("Bed 1")
    assert isinstance(patient, PatientDialog)
    for dialog in (limits[0], patient):
        assert not dialog.isModal()
        assert dialog.windowModality() == Qt.WindowModality.NonModal
    window.paint_frame()
    assert _strip(patient).banner.text() == QUIET_TEXT
    assert not _strip(patient).ack.isEnabled()

    ward.core.on_accepted(accepted("mon-2", ward.clock.now, heartrate=150))  # another bed
    window.paint_frame()
    for dialog in (limits[0], patient):
        strip = _strip(dialog)
        assert "Bed 2" in strip.banner.text()
        assert "HR 150 > 120" in strip.banner.text()
        assert strip.banner.look[1] in (theme.ALARM_BG[Priority.HIGH], None)  # lit or dark phase
        assert strip.ack.isEnabled()

    qtbot.mouseClick(_strip(limits[0]).ack, Qt.MouseButton.LeftButton)
    alarm = window.alarm_list.alarms()[0]
    assert (alarm.state.value, alarm.by) == ("acknowledged", "ann")
    window.paint_frame()
    assert _strip(patient).banner.text() == QUIET_TEXT  # nothing left to acknowledge
    assert limits[0].isVisible()  # the nurse's limits change is still there to finish
    assert patient.isVisible()


def test_the_strip_shows_the_most_urgent_and_a_new_high_alarm_asks_for_attention(
    ward: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerted: list[object] = []
    monkeypatch.setattr(alarm_strip.QApplication, "alert", lambda w, ms=0: alerted.append(w))
    window = ward.window
    window.show()
    window.bed_windows.open_history()
    history = window.bed_windows.history_dialog
    assert history is not None
    window.paint_frame()
    ward.core.on_accepted(accepted("mon-1", ward.clock.now, temperature=38.9))  # low
    window.paint_frame()
    assert alerted == []  # a low alarm shows, it does not pull the window forward
    ward.core.on_accepted(accepted("mon-2", ward.clock.now, heartrate=150))  # high
    window.paint_frame()
    text = _strip(history).banner.text()
    assert text.startswith("*** Bed 2")
    assert text.endswith("+1 more")
    assert alerted == [history]
    window.paint_frame()
    assert alerted == [history]  # once per new high alarm, not once per frame


def test_each_window_a_nurse_opens_carries_the_strip(ward: Ward) -> None:
    window = ward.window
    window.show()
    bw = window.bed_windows
    bw.open_limits("Bed 1")
    bw.open_history()
    bw.open_patient("Bed 1")
    assert ward.screen.dialogs.ward is not None
    opened: list[QDialog | None] = [
        next(d for d in window.findChildren(LimitsDialog) if d.isVisible()),
        bw.history_dialog,
        bw.patient_views["Bed 1"],
        ward.screen.dialogs.ward.open_patient("Bed 2"),
        ward.screen.dialogs.open_users(),  # the first run's users dialog: no accounts yet
    ]
    ward.core.on_accepted(accepted("mon-1", ward.clock.now, heartrate=150))
    window.paint_frame()
    for dialog in opened:
        assert dialog is not None
        assert dialog.isVisible()
        assert not dialog.isModal()
        assert "Bed 1 · HR 150 > 120" in _strip(dialog).banner.text(), type(dialog).__name__
