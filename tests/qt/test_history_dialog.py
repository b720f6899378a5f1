"""pytest-qt tests of the alarm history dialog: the table, the bed filter, the summary, export.

The dialog reads a real :class:`AlarmHistory` filled with the snapshots the engine would emit.
Nothing is stood in for: the file chooser is an ordinary window (not modal), answered as a user
would, and an export error is said in the dialog, not in a modal box.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from station.domain.alarm_history import CSV_COLUMNS, AlarmHistory
from station.domain.alarms import Alarm, AlarmKind, AlarmState, Priority
from station.ui.history_dialog import WARD, AlarmHistoryDialog
from tests.qt.choosers import choose

NOW = 1738411200.0  # 2025-02-01T12:00:00Z


def raised(alarm_id: str, bed: str, at: float, priority: Priority = Priority.HIGH) -> Alarm:
    return Alarm(
        alarm_id=alarm_id,
        device_id=f"dev-{bed[-1]}",
        bed=bed,
        kind=AlarmKind.PHYSIOLOGICAL,
        parameter="heartrate",
        priority=priority,
        state=AlarmState.ACTIVE,
        value=134.0,
        limit=120.0,
        message="HR 134 > 120",
        raised_at=at,
        at=at,
    )


@pytest.fixture
def history() -> AlarmHistory:
    history = AlarmHistory()
    for i in range(3):  # Bed 1: three alarms, acknowledged after 10, 20, 30 s, then cleared
        a = raised(f"a{i}", "Bed 1", NOW - 3000 + 100 * i)
        acked = replace(a, state=AlarmState.ACKNOWLEDGED, at=a.at + 10 * (i + 1), by="nurse.kim")
        for snapshot in (a, acked, replace(acked, state=AlarmState.CLEARED, at=a.at + 60)):
            history.add(snapshot)
    history.add(raised("b0", "Bed 2", NOW - 100, Priority.LOW))  # still open, never acked
    return history


@pytest.fixture
def dialog(qtbot: QtBot, history: AlarmHistory) -> AlarmHistoryDialog:
    dialog = AlarmHistoryDialog(history, clock=lambda: NOW)
    qtbot.addWidget(dialog)
    return dialog


def cell(dialog: AlarmHistoryDialog, row: int, column: int) -> str:
    return str(dialog.model.data(dialog.model.index(row, column)))


def test_lists_every_episode_newest_first(dialog: AlarmHistoryDialog) -> None:
    assert dialog.bed_filter.currentText() == WARD
    assert dialog.model.rowCount() == 4
    assert [cell(dialog, 0, c) for c in (0, 1, 2, 5, 7)] == ["Bed 2", "HR", "*", "", "open"]
    assert [cell(dialog, 1, c) for c in (0, 2, 3, 5, 6, 7)] == [
        "Bed 1",
        "***",
        "HR 134 > 120",
        "nurse.kim",
        "30 s",
        "1 min 00 s",
    ]
    assert cell(dialog, 1, 8) != ""
    assert "median 20 s" in dialog.summary.text()
    assert "Bed 1 0.12, Bed 2 0.04" in dialog.summary.text()  # 3 and 1 alarms in 24 h


def test_bed_filter_narrows_the_table(dialog: AlarmHistoryDialog) -> None:
    beds = [dialog.bed_filter.itemText(i) for i in range(dialog.bed_filter.count())]
    assert beds == [WARD, "Bed 1", "Bed 2"]

    dialog.bed_filter.setCurrentIndex(dialog.bed_filter.findData("Bed 2"))
    assert dialog.selected_bed() == "Bed 2"
    assert dialog.model.rowCount() == 1
    assert cell(dialog, 0, 0) == "Bed 2"
    assert "none acknowledged" in dialog.summary.text()

    dialog.bed_filter.setCurrentIndex(0)
    assert dialog.model.rowCount() == 4


def test_refresh_shows_new_alarms_and_keeps_the_filter(
    dialog: AlarmHistoryDialog, history: AlarmHistory
) -> None:
    dialog.bed_filter.setCurrentIndex(dialog.bed_filter.findData("Bed 2"))
    history.add(raised("b1", "Bed 2", NOW - 10))
    history.add(raised("c0", "Bed 10", NOW - 5))
    dialog.refresh()

    assert dialog.selected_bed() == "Bed 2"
    assert dialog.model.rowCount() == 2
    beds = [dialog.bed_filter.itemText(i) for i in range(dialog.bed_filter.count())]
    assert beds == [WARD, "Bed 1", "Bed 2", "Bed 10"]


def test_export_writes_the_rows_shown(dialog: AlarmHistoryDialog, tmp_path: Path) -> None:
    target = tmp_path / "h.csv"
    assert dialog.export_to(target) == 4

    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["alarm_id"] for r in rows] == ["b0", "a2", "a1", "a0"]
    assert rows[1]["time_to_ack_s"] == "30.000"

    dialog.bed_filter.setCurrentIndex(dialog.bed_filter.findData("Bed 1"))
    assert dialog.export_to(tmp_path / "bed1.csv") == 3
    assert "Exported 3 alarms" in dialog.status.text()


def test_unwritable_path_shows_an_error_and_returns_zero(
    dialog: AlarmHistoryDialog, tmp_path: Path
) -> None:
    target = tmp_path / "no-such-folder" / "h.csv"

    assert dialog.export_to(target) == 0
    assert dialog.status.text().startswith("Export failed: could not write")
    assert str(target) in dialog.status.text()
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]
    assert not target.exists()


def test_export_button_asks_for_a_path(
    qtbot: QtBot, dialog: AlarmHistoryDialog, tmp_path: Path
) -> None:
    target = tmp_path / "chosen.csv"
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert not target.exists()  # the chooser is open, and the ward usable meanwhile
    choose(dialog, target)

    assert target.read_text(encoding="utf-8").count("\n") == 5  # header and four rows
