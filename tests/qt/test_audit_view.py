"""pytest-qt tests of the auditor's view: a real trail, its filters, its health, its export.

The trail is written by the station's own :class:`AuditWriter` (with a stepped clock, so every
record's time is known) and read by :class:`TrailSource`, a small stand-in for the station's
source that reads and verifies the lines as the station does and exports by copying records. The
dialog calls both off the GUI thread, so the tests wait for the signals that bring results back.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QDateTime, Qt
from PySide6.QtWidgets import QComboBox, QLabel
from pytestqt.qtbot import QtBot

from station.domain.audit.chain import encode_line, parse_record, verify_lines
from station.domain.audit.query import AuditFilter, select
from station.domain.timefmt import local_text
from station.services.audit.snapshot import AuditSnapshot
from station.services.audit.trail_files import AUDIT_FILE, read_head
from station.services.audit.writer import AuditWriter
from station.ui.audit.filters import ANY_USER
from station.ui.audit.table_model import ACTION, SEQ, TARGET, TIME, USER
from station.ui.audit.view import AuditView
from station.ui.audit.workers import EXPORT_THREAD, LOAD_THREAD

T0 = 1795341600.0  # 2026-11-22T10:00:00Z
KEY_ID = "SHA256:3f9a…c41d"
HOSTILE_ACTOR = "<b>x</b>\nnext"
HOSTILE_TARGET = "Bed 1\u2028Bed 2"
WAIT_MS = 5000


class TrailSource:
    """Reads a trail as the station's source will, and exports by copying records."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.exports: list[tuple[Path, float | None, float | None]] = []
        self.export_error: Exception | None = None
        self.load_error: Exception | None = None
        self.gate: threading.Event | None = None
        self.threads: list[str] = []

    def _lines(self) -> list[bytes]:
        return io.BytesIO((self.directory / AUDIT_FILE).read_bytes()).readlines()

    def load(self) -> AuditSnapshot:
        self.threads.append(threading.current_thread().name)
        if self.load_error is not None:
            raise self.load_error
        head = read_head(self.directory)  # before the lines, as the station reads them
        lines = self._lines()
        result = verify_lines(lines, head=head)
        records = [r for r in map(parse_record, lines) if r is not None]
        if result.ok:
            health = f"OK {result.records} records, chain intact"
        else:
            health = f"FAIL line {result.line} (seq {result.seq}): {result.kind}: {result.message}"
        return AuditSnapshot(records, result.ok, health, KEY_ID, result.seq)

    def export(self, folder: Path, since: float | None, until: float | None) -> str:
        self.threads.append(threading.current_thread().name)
        self.exports.append((folder, since, until))
        if self.gate is not None:
            self.gate.wait(WAIT_MS / 1000)
        if self.export_error is not None:
            raise self.export_error
        chosen = select(self.load().records, AuditFilter(since=since, until=until))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / AUDIT_FILE).write_bytes(b"".join(encode_line(r) for r in chosen))
        return f"OK {len(chosen)} records exported to {folder}"


def write_trail(directory: Path) -> None:
    """Seven records, a minute apart from T0, by several people, about several beds."""
    times = iter(T0 + 60 * i for i in range(100))
    writer = AuditWriter(directory, clock=lambda: next(times))
    writer.start()
    try:
        rec = writer.record
        rec("session.login", actor="nurse.kim", role="nurse", target="ward-1")
        rec(
            "alarm.acknowledge",
            actor="Nurse.Kim",
            role="nurse",
            target="a-17",
            details={"bed": "Bed 3", "alarm_id": "a-17"},
        )
        rec("alarm.limits_change", actor="dr.lee", role="physician", target="Bed 3")
        rec("alarms.export", actor="admin", role="admin", target="/tmp/alarms.csv")
        rec(
            "device.reassign",
            actor="admin",
            role="admin",
            target="dev-9",
            details={"bed": "Bed 5", "from": "Bed 2"},
        )
        rec("patient.admit", actor="nurse.kim", role="nurse", target="Bed 7", outcome="failure")
        rec("settings.change", actor=HOSTILE_ACTOR, role="admin", target=HOSTILE_TARGET)
    finally:
        assert writer.close()


@pytest.fixture(autouse=True)
def no_view_thread_left() -> Iterator[None]:
    """The dialog joins its threads when it closes (pytest-qt closes it before this runs)."""
    yield
    left = [t.name for t in threading.enumerate() if t.name in (LOAD_THREAD, EXPORT_THREAD)]
    assert not left, f"threads left running: {left}"


@pytest.fixture
def source(tmp_path: Path) -> TrailSource:
    write_trail(tmp_path / "audit")
    return TrailSource(tmp_path / "audit")


def open_view(qtbot: QtBot, source: TrailSource) -> AuditView:
    view = AuditView(source)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: view.snapshot is not None and not view.loading, timeout=WAIT_MS)
    return view


@pytest.fixture
def view(qtbot: QtBot, source: TrailSource) -> AuditView:
    return open_view(qtbot, source)


def cell(view: AuditView, row: int, column: int) -> str:
    return str(view.model.data(view.model.index(row, column)))


def shown(view: AuditView) -> list[int]:
    records = (view.model.record(row) for row in range(view.model.rowCount()))
    return [r["seq"] for r in records if r is not None]


def pick(box: QComboBox, value: str) -> None:
    index = box.findData(value)
    assert index >= 0, f"{value!r} is not a choice"
    box.setCurrentIndex(index)
    box.activated.emit(index)  # what a click on the choice emits; setCurrentIndex does not


def set_time(view: AuditView, since: float | None, until: float | None) -> None:
    for on, edit, when in (
        (view.since_on, view.since_edit, since),
        (view.until_on, view.until_edit, until),
    ):
        if when is not None:
            edit.setDateTime(QDateTime.fromMSecsSinceEpoch(int(when * 1000)))
        on.setChecked(when is not None)


def test_loads_off_the_gui_thread_and_shows_every_record(
    view: AuditView, source: TrailSource
) -> None:
    assert source.threads == [LOAD_THREAD]
    assert shown(view) == [1, 2, 3, 4, 5, 6, 7]
    assert cell(view, 0, TIME) == local_text(T0, seconds=True)
    assert [cell(view, 2, c) for c in (USER, ACTION, TARGET)] == [
        "dr.lee",
        "alarm.limits_change",
        "Bed 3",
    ]
    assert view.count.text() == "7 of 7 records"
    assert "OK 7 records, chain intact" in view.banner.text()
    assert KEY_ID in view.banner.text()
    assert view.refresh_button.isEnabled()
    assert not view.goto_bad_button.isVisibleTo(view)
    assert cell(view, 6, SEQ) == "7"


def test_choices_come_from_the_trail(view: AuditView) -> None:
    users = [view.user_box.itemData(i) for i in range(view.user_box.count())]
    assert users == ["", HOSTILE_ACTOR, "admin", "dr.lee", "nurse.kim"]
    assert view.user_box.itemText(0) == ANY_USER
    beds = [view.bed_box.itemData(i) for i in range(1, view.bed_box.count())]
    assert beds == ["Bed 2", "Bed 3", "Bed 5", "Bed 7"]
    labels = [view.action_box.itemText(i) for i in range(view.action_box.count())]
    assert labels[:4] == ["Any action", "alarm.*", "alarm.acknowledge", "alarm.limits_change"]


def test_user_typed_in_any_case_narrows_the_rows(qtbot: QtBot, view: AuditView) -> None:
    view.user_box.setEditText("NURSE.KIM")  # typed: applied after a pause in typing
    qtbot.waitUntil(lambda: shown(view) == [1, 2, 6], timeout=WAIT_MS)
    assert view.count.text() == "3 of 7 records"


def test_bed_matches_target_and_details(view: AuditView) -> None:
    pick(view.bed_box, "Bed 3")
    assert shown(view) == [2, 3]  # via details "bed", via the target
    pick(view.bed_box, "Bed 2")
    assert shown(view) == [5]  # via details "from"


def test_action_group_is_a_dotted_prefix(view: AuditView) -> None:
    pick(view.action_box, "alarm")
    assert shown(view) == [2, 3]  # alarms.export (seq 4) is not in the alarm group
    pick(view.action_box, "alarms")
    assert shown(view) == [4]


def test_time_bounds_from_inclusive_to_exclusive(qtbot: QtBot, view: AuditView) -> None:
    set_time(view, T0 + 60, T0 + 240)
    qtbot.waitUntil(lambda: shown(view) == [2, 3, 4], timeout=WAIT_MS)
    assert view.current_filter() == AuditFilter(since=T0 + 60, until=T0 + 240)


def test_filters_combine_and_clear(qtbot: QtBot, view: AuditView) -> None:
    pick(view.user_box, "admin")
    pick(view.action_box, "device")
    set_time(view, T0, None)
    qtbot.waitUntil(lambda: shown(view) == [5], timeout=WAIT_MS)

    view.clear_button.click()
    assert shown(view) == [1, 2, 3, 4, 5, 6, 7]
    assert view.current_filter() == AuditFilter()
    assert not view.since_edit.isEnabled()


def test_refresh_reads_new_records_and_keeps_the_filter(
    qtbot: QtBot, view: AuditView, source: TrailSource
) -> None:
    pick(view.bed_box, "Bed 3")
    writer = AuditWriter(source.directory, clock=lambda: T0 + 3600)
    writer.start()
    writer.record("alarm.raise", target="Bed 3")
    assert writer.close()

    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        view.refresh_button.click()
    assert shown(view) == [2, 3, 8]
    assert view.count.text() == "3 of 8 records"


def test_selecting_a_row_shows_the_whole_record(view: AuditView) -> None:
    view.table.selectRow(4)
    text = view.record_box.toPlainText()
    assert text.startswith(
        '{\n  "seq": 5,\n  "ts": "2026-11-22T10:04:00.000Z",\n  "actor": "admin"'
    )
    assert '"from": "Bed 2"' in text
    assert view.record_box.isReadOnly()


def test_hostile_text_is_shown_as_literal_plain_text(view: AuditView) -> None:
    row = shown(view).index(7)
    assert cell(view, row, USER) == "<b>x</b>\\nnext"  # tags as typed, the line break visible
    assert cell(view, row, TARGET) == "Bed 1\\u2028Bed 2"
    view.table.selectRow(row)
    text = view.record_box.toPlainText()
    assert '"actor": "<b>x</b>\\nnext"' in text
    assert '"target": "Bed 1\\u2028Bed 2"' in text
    assert not any(line.startswith(("next", "Bed 2")) for line in text.splitlines())
    for label in view.findChildren(QLabel):
        if label in (view.banner, view.count, view.export_status):
            assert label.textFormat() == Qt.TextFormat.PlainText

    pick(view.user_box, HOSTILE_ACTOR)  # the choice shows escaped text but filters by the name
    assert shown(view) == [7]


def test_nothing_in_the_view_can_change_a_record(view: AuditView) -> None:
    index = view.model.index(0, USER)
    assert not view.model.flags(index) & Qt.ItemFlag.ItemIsEditable
    assert not view.model.setData(index, "mallory")
    assert cell(view, 0, USER) == "nurse.kim"


def test_edited_trail_shows_the_failure(qtbot: QtBot, tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    write_trail(directory)
    path = directory / AUDIT_FILE
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"Nurse.Kim"', b'"Nurse.Bob"')
    path.write_bytes(b"\n".join(lines))

    view = open_view(qtbot, TrailSource(directory))

    assert view.snapshot is not None
    assert not view.snapshot.intact
    assert "NOT INTACT" in view.banner.text()
    assert "FAIL line 2 (seq 2): edited" in view.banner.text()
    assert view.model.rowCount() == 7  # the records are still there to inspect
    assert cell(view, 1, SEQ) == "✖ 2"  # the bad record is marked, not by colour alone
    assert cell(view, 2, SEQ) == "3"
    assert view.model.data(view.model.index(1, USER), Qt.ItemDataRole.BackgroundRole)

    assert view.goto_bad_button.isVisibleTo(view)
    assert view.goto_bad_button.text() == "Show seq 2"
    pick(view.user_box, "admin")  # the bad record is filtered out...
    view.goto_bad_button.click()  # ...so showing it clears the filters first
    assert view.current_filter() == AuditFilter()
    assert view.table.currentIndex().row() == 1
    assert '"actor": "Nurse.Bob"' in view.record_box.toPlainText()


def test_a_source_that_cannot_load_says_why(qtbot: QtBot, source: TrailSource) -> None:
    source.load_error = PermissionError(13, "Permission denied", "audit.jsonl")
    view = AuditView(source)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.load_failed, timeout=WAIT_MS) as failed:
        pass
    assert "Permission denied" in failed.args[0]
    assert "Could not read the audit trail" in view.banner.text()
    assert view.refresh_button.isEnabled()


def test_export_uses_the_chosen_folder_and_the_time_bounds(
    qtbot: QtBot, view: AuditView, source: TrailSource, tmp_path: Path
) -> None:
    folder = tmp_path / "bundle"
    view.choose_folder = lambda: folder
    set_time(view, T0 + 60, None)
    pick(view.user_box, "admin")  # a view filter: not applied to the bundle

    with qtbot.waitSignal(view.exported, timeout=WAIT_MS) as done:
        view.export_button.click()

    assert source.exports == [(folder, T0 + 60, None)]
    assert done.args == [f"OK 6 records exported to {folder}"]
    assert view.export_status.text() == done.args[0]
    assert view.export_button.isEnabled()
    assert EXPORT_THREAD in source.threads
    assert (folder / AUDIT_FILE).read_bytes().count(b"\n") == 6


def test_cancelled_folder_choice_exports_nothing(
    qtbot: QtBot, view: AuditView, source: TrailSource
) -> None:
    view.choose_folder = lambda: None
    view.export_button.click()
    assert source.exports == []
    assert not view.exporting


def test_export_button_is_disabled_while_exporting(
    qtbot: QtBot, view: AuditView, source: TrailSource, tmp_path: Path
) -> None:
    source.gate = threading.Event()
    assert view.export_to(tmp_path / "one")
    assert not view.export_button.isEnabled()
    assert "Exporting the whole trail" in view.export_status.text()
    assert not view.export_to(tmp_path / "two")  # one at a time

    with qtbot.waitSignal(view.exported, timeout=WAIT_MS):
        source.gate.set()
    assert view.export_button.isEnabled()
    assert [folder for folder, _s, _u in source.exports] == [tmp_path / "one"]


def test_failed_export_shows_the_error_and_the_view_stays_usable(
    qtbot: QtBot, view: AuditView, source: TrailSource, tmp_path: Path
) -> None:
    source.export_error = OSError(28, "No space left on device")
    view.choose_folder = lambda: tmp_path / "full"
    with qtbot.waitSignal(view.export_failed, timeout=WAIT_MS):
        view.export_button.click()

    assert "Export failed" in view.export_status.text()
    assert "No space left on device" in view.export_status.text()
    assert view.export_button.isEnabled()
    pick(view.bed_box, "Bed 7")
    assert shown(view) == [6]

    source.export_error = None
    with qtbot.waitSignal(view.exported, timeout=WAIT_MS):
        view.export_button.click()
    assert view.export_status.text().startswith("OK 7 records")


def test_an_unexpected_export_error_is_shown_too(
    qtbot: QtBot, view: AuditView, source: TrailSource, tmp_path: Path
) -> None:
    source.export_error = ValueError("until is before since")
    with qtbot.waitSignal(view.export_failed, timeout=WAIT_MS) as failed:
        view.export_to(tmp_path)
    assert failed.args == ["Export failed: until is before since"]


def test_close_joins_a_running_load(qtbot: QtBot, view: AuditView) -> None:
    view.refresh()
    assert view.loading
    view.close()
    assert view.snapshot is not None  # the old snapshot stays; the late result is dropped
    qtbot.waitUntil(lambda: not view.loading, timeout=WAIT_MS)
