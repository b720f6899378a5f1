"""pytest-qt: alarm review (issue 15, point 4). The history survives a restart and covers any
period, an alarm opens the bed's trend at that moment, and a nurse's comment reaches the
history, the audit trail, the CSV and the shift report, and survives a restart too.

The window and core are wired as the app wires them; the alarm store, the trend store and the
audit trail are real files in one data folder; a "restart" is a second window and core on it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.alarm_history import AlarmEpisode
from station.domain.alarms import AlarmKind, Priority
from station.services.audit.writer import AuditWriter
from station.services.storage.alarm_store import ALARM_STORE_FILE, AlarmStore
from station.services.storage.trends import TrendSample, TrendStore
from station.ui.history_dialog import AlarmHistoryDialog
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.choosers import choose
from tests.qt.wiring import Screen, Wiring

DAY = 86_400.0


@dataclass
class Folder:
    data: Path
    settings: Settings
    clock: FakeClock
    audit: AuditWriter
    trends: TrendStore
    wire: Wiring
    qtbot: QtBot
    stores: list[AlarmStore]

    def start(self) -> Screen:
        """A window and core on the folder, as after a restart (the history read back)."""
        store = AlarmStore(self.data / ALARM_STORE_FILE, clock=lambda: self.clock.now)
        store.open()
        self.stores.append(store)
        screen = self.wire(
            self.settings, self.clock, self.audit, trends=self.trends, alarm_store=store
        )
        screen.window.history.merge(store.load(self.clock.now - 30 * DAY, self.clock.now + 1))
        return screen

    def history(self, screen: Screen) -> AlarmHistoryDialog:
        """The history dialog, once its read of the alarm store has come back."""
        screen.window.bed_windows.open_history()
        dialog = screen.window.bed_windows.history_dialog
        assert dialog is not None
        self.qtbot.waitUntil(lambda: "alarms in this period" in dialog.status.text(), timeout=5000)
        return dialog

    def records(self, action: str) -> list[dict[str, object]]:
        assert self.audit.close(5.0)
        rows = map(json.loads, self.audit.path.read_text().splitlines())
        return [r for r in rows if r["action"] == action]


@pytest.fixture
def folder(qtbot: QtBot, wire: Wiring, tmp_path: Path) -> Iterator[Folder]:
    data = tmp_path / "data"
    settings = from_mapping(
        {"station": {"data_dir": str(data)}, "ward": {"beds": 2, "devices": {"mon-1": 1}}}
    )
    clock = FakeClock()
    trends = TrendStore(data / "trends.sqlite", clock=lambda: clock.now)
    trends.open()
    audit = AuditWriter(data / "audit", clock=clock)
    audit.start()
    folder = Folder(data, settings, clock, audit, trends, wire, qtbot, [])
    yield folder
    for store in folder.stores:
        store.close()
    trends.close()
    audit.close(5.0)


def _raise_and_ack(screen: Screen, clock: FakeClock) -> str:
    assert screen.core is not None
    screen.core.on_accepted(accepted("mon-1", clock.now, heartrate=170))
    (alarm,) = screen.window.alarm_list.alarms()
    clock.now += 9
    screen.core.acknowledge(alarm.alarm_id, "nurse-ann")
    screen.core._alarm_log.flush()  # the core's 1 s timer does it
    return alarm.alarm_id


def _select(dialog: AlarmHistoryDialog, alarm_id: str) -> None:
    rows = [e.alarm_id for e in dialog.model.episodes()]
    index = dialog.model.index(rows.index(alarm_id), 0)
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect
    dialog.table.selectionModel().select(index, flags | QItemSelectionModel.SelectionFlag.Rows)


def test_history_and_comments_survive_a_restart_and_reach_csv_and_report(
    folder: Folder, tmp_path: Path
) -> None:
    first = folder.start()
    alarm_id = _raise_and_ack(first, folder.clock)
    dialog = folder.history(first)
    _select(dialog, alarm_id)
    dialog.mark.setCurrentText("artefact")
    dialog.comment_text.setText("probe loose\nsecond line")
    dialog.comment_button.click()
    (episode,) = first.window.history.episodes()
    assert episode.comment_text == "artefact: probe loose second line (nurse-ann)"
    assert "artefact: probe loose" in dialog.model.data(dialog.model.index(0, 9))

    folder.clock.now += 3600
    again = folder.start()  # restart
    dialog = folder.history(again)
    (shown,) = dialog.model.episodes()
    assert (shown.alarm_id, shown.acknowledged_by) == (alarm_id, "nurse-ann")
    assert shown.time_to_ack_s == pytest.approx(9)
    assert shown.comment_text == episode.comment_text
    csv_path = tmp_path / "history.csv"
    assert dialog.export_to(csv_path) == 1
    assert "artefact: probe loose second line (nurse-ann)" in csv_path.read_text()

    report = again.window
    report.bed_windows.open_report("Bed 1")
    report_dialog = report.bed_windows.report_dialog
    assert report_dialog is not None
    pdf = tmp_path / "report.pdf"
    with folder.qtbot.waitSignal(report.report_made, timeout=20_000):
        report_dialog.save_to(pdf, "nurse-ann")
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "probe loose" in text
    report.bed_windows.shutdown()

    (record,) = folder.records("alarm.comment")
    assert (record["actor"], record["target"]) == ("nurse-ann", alarm_id)
    assert record["details"]["mark"] == "artefact"


def test_an_alarm_opens_the_beds_trend_at_that_moment(folder: Folder) -> None:
    at = folder.clock.now - 1800
    folder.trends.add(
        [
            TrendSample("Bed 1", "mon-1", int((at + s) * 1000), {"heartrate": 80})
            for s in range(-600, 600, 10)
        ]
    )
    episode = AlarmEpisode("old-1", "Bed 1", "mon-1", AlarmKind.PHYSIOLOGICAL, "heartrate",
                           Priority.HIGH, "HR 150 > 120", at)  # fmt: skip
    screen = folder.start()
    screen.window.history.merge([episode])
    dialog = folder.history(screen)
    index = dialog.model.index(0, 3)
    dialog.table.doubleClicked.emit(index)
    view = screen.window.bed_windows.trend_views["Bed 1"]
    folder.qtbot.waitUntil(lambda: view.data is not None and not view.data.is_empty, timeout=5000)
    assert view.moment == at
    assert all(line.isVisible() and line.value() == at for line in view.moment_lines)
    assert view.data is not None
    assert view.data.start_s == pytest.approx(at - 1800)
    assert view.data.end_s == pytest.approx(at + 1800)
    assert "around the alarm" in view.status.text()
    view.show_range(1)
    assert not any(line.isVisible() for line in view.moment_lines)
    view.shutdown()


def test_any_period_reads_the_store_beyond_what_the_window_holds(folder: Folder) -> None:
    store = AlarmStore(folder.data / ALARM_STORE_FILE, clock=lambda: folder.clock.now)
    store.open()
    long_ago = folder.clock.now - 200 * DAY
    store.save([AlarmEpisode("old-2", "Bed 2", "mon-2", AlarmKind.TECHNICAL, "no_data",
                             Priority.MEDIUM, "No data", long_ago)])  # fmt: skip
    store.close()
    screen = folder.start()
    screen.window.history = screen.window.history.__class__()  # nothing in memory
    dialog = folder.history(screen)
    assert dialog.model.episodes() == []  # last 24 h
    dialog.period.setCurrentIndex(dialog.period.findText("Last year"))
    folder.qtbot.waitUntil(lambda: len(dialog.model.episodes()) == 1, timeout=5000)
    assert dialog.model.episodes()[0].alarm_id == "old-2"


def test_a_comment_with_an_unknown_mark_is_refused_and_audited(folder: Folder) -> None:
    screen = folder.start()
    alarm_id = _raise_and_ack(screen, folder.clock)
    screen.actions.on_comment(alarm_id, "made up", "x")
    assert screen.window.history.episodes()[0].comments == ()
    (record,) = folder.records("alarm.comment")
    assert record["outcome"] == "failure"


def test_a_history_that_cannot_be_written_raises_a_technical_alarm(folder: Folder) -> None:
    screen = folder.start()
    folder.stores[-1].close()  # the file is gone from under the core: every write now fails
    _raise_and_ack(screen, folder.clock)
    messages = [a.message for a in screen.window.alarm_list.alarms()]
    assert any(m.startswith("Alarm history not written") for m in messages)
    assert any("HR 170" in e.message for e in screen.window.history.episodes())


def test_a_high_alarms_event_is_viewable_and_printed_after_the_raw_window(
    folder: Folder, tmp_path: Path
) -> None:
    screen = folder.start()
    assert screen.core is not None
    t0 = folder.clock.now
    folder.trends.add(
        [
            TrendSample("Bed 1", "mon-1", int((t0 + s) * 1000), {"heartrate": 120 + s % 60})
            for s in range(-400, 400)
        ]
    )
    alarm_id = _raise_and_ack(screen, folder.clock)
    folder.clock.now = t0 + 300 + 6
    screen.core._capture.due()
    assert screen.core._capture.captured == 601
    folder.clock.now = t0 + 5 * 3600  # past the 4 h of raw samples
    while folder.trends.compact()[0] or folder.trends.behind:
        pass
    dialog = folder.history(screen)
    assert [e.alarm_id for e in dialog.model.episodes()] == [alarm_id]
    dialog.table.doubleClicked.emit(dialog.model.index(0, 3))
    view = screen.window.bed_windows.trend_views["Bed 1"]
    folder.qtbot.waitUntil(lambda: view.data is not None and view.data.rows > 0, timeout=5000)
    assert view.data is not None
    assert view.data.resolution == "raw"  # every sample, from the event capture
    assert view.data.rows == 601
    assert "min around the alarm" in view.status.text()
    view.shutdown()

    report = screen.window
    report.bed_windows.open_report("Bed 1")
    report_dialog = report.bed_windows.report_dialog
    assert report_dialog is not None
    report_dialog.period.setCurrentIndex(report_dialog.period.findData(8))
    pdf = tmp_path / "events.pdf"
    with folder.qtbot.waitSignal(report.report_made, timeout=20_000):
        report_dialog.save_to(pdf, "nurse-ann")
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "Events" in text
    assert "every sample ± 5 min" in text
    report.bed_windows.shutdown()


def test_an_alarm_report_and_a_trend_print_carry_the_comments_and_curves(
    folder: Folder, tmp_path: Path
) -> None:
    screen = folder.start()
    window = screen.window
    t0 = folder.clock.now
    folder.trends.add(
        [
            TrendSample("Bed 1", "mon-1", int((t0 + s) * 1000), {"heartrate": 90})
            for s in range(-600, 1)
        ]
    )
    alarm_id = _raise_and_ack(screen, folder.clock)
    assert screen.core is not None
    screen.core.comment_alarm(alarm_id, "suction", "Łukasz's tube", "nurse-ann")
    window.show()
    dialog = folder.history(screen)
    made: list[tuple[object, ...]] = []
    window.report_made.connect(lambda *args: made.append(args))

    dialog.pdf_button.click()
    pdf = tmp_path / "alarms.pdf"
    choose(dialog, pdf)
    folder.qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved"), timeout=20_000)
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    for expected in (
        "Alarm report",
        "HR 170 > 120",
        "nurse-ann",
        "suction: Łukasz's tube",
        "Bed 1",
    ):
        assert expected in text, expected
    assert made[-1][0] == "alarms:pdf"

    window.bed_windows.open_trends("Bed 1")
    view = window.bed_windows.trend_views["Bed 1"]
    view.show_range(1)
    folder.qtbot.waitUntil(lambda: view.data is not None and view.data.rows > 0, timeout=5000)
    view.pdf_button.click()
    printed = tmp_path / "trend.pdf"
    choose(view, printed)
    folder.qtbot.waitUntil(lambda: view.export_status.text().startswith("Saved"), timeout=20_000)
    text = subprocess.run(
        ["pdftotext", str(printed), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "Trend" in text
    assert "every sample" in text
    assert made[-1][:3] == ("trend:pdf", str(printed), ("Bed 1",))
    view.shutdown()
    window.bed_windows.shutdown()


def test_csv_exports_from_the_buttons_are_written_off_the_gui_thread(
    folder: Folder, tmp_path: Path
) -> None:
    screen = folder.start()
    window = screen.window
    t0 = folder.clock.now
    folder.trends.add(
        [
            TrendSample("Bed 1", "mon-1", int((t0 + s) * 1000), {"heartrate": 80})
            for s in range(-60, 1)
        ]
    )
    _raise_and_ack(screen, folder.clock)
    window.show()
    exported: list[tuple[object, ...]] = []
    window.history_exported.connect(lambda *args: exported.append(args))
    dialog = folder.history(screen)
    dialog.export_button.click()
    target = tmp_path / "history.csv"
    choose(dialog, target)
    folder.qtbot.waitUntil(lambda: dialog.status.text().startswith("Exported 1"), timeout=5000)
    assert target.stat().st_mode & 0o777 == 0o600
    assert "HR 170 > 120" in target.read_text()
    assert exported == [(str(target), 1, "nurse-ann")]

    window.bed_windows.open_trends("Bed 1")
    view = window.bed_windows.trend_views["Bed 1"]
    view.show_range(1)
    folder.qtbot.waitUntil(lambda: view.data is not None and view.data.rows > 0, timeout=5000)
    view.export_button.click()
    trend_csv = tmp_path / "trend.csv"
    choose(view, trend_csv)
    folder.qtbot.waitUntil(lambda: view.export_status.text().startswith("Exported"), timeout=5000)
    assert trend_csv.read_text().count("\n") > 10
    view.shutdown()
    window.bed_windows.shutdown()
