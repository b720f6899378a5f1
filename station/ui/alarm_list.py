"""The ward's alarm list: every open alarm, most urgent first, with acknowledge.

GUI thread only. It shows the engine's snapshots; acknowledging asks the core (through
``acknowledge_requested``) and the list changes only when the core's new snapshot arrives, so the
screen never shows an acknowledgement the engine did not make.
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from station.domain.alarms import UNACKNOWLEDGED, Alarm, AlarmKind, AlarmState
from station.ui import theme
from station.ui.plain_table import plain_tooltip

COLUMNS = ("", "Bed", "Alarm", "State", "Since")


class AlarmList(QWidget):
    """Open alarms with an Acknowledge button. GUI thread only.

    Signals:
        acknowledge_requested(str): the alarm id a user asked to acknowledge.
        acknowledge_bed_requested(str): the bed whose alarms a user asked to acknowledge all.
    """

    acknowledge_requested = Signal(str)
    acknowledge_bed_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._alarms: dict[str, Alarm] = {}
        self._pauses: dict[str, int] = {}  # bed → whole seconds left of its audio pause
        self._dirty = False
        # What each table row shows now, so a frame rewrites only the rows that changed.
        self._rows: list[tuple[tuple[str, ...], str, tuple[str, str, bool]]] = []
        title = QLabel("Alarms")
        title.setStyleSheet("font-size:15px; font-weight:700;")
        self.count = QLabel("none")
        self.count.setStyleSheet(f"color:{theme.MUTED};")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for col in (0, 1, 3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellDoubleClicked.connect(lambda _r, _c: self.acknowledge_selected())
        self.ack = QPushButton("Acknowledge")
        self.ack.setEnabled(False)
        self.ack.clicked.connect(self.acknowledge_selected)
        self.ack_bed = QPushButton("Acknowledge bed")
        self.ack_bed.setToolTip("Acknowledge every alarm of the selected alarm's bed")
        self.ack_bed.setEnabled(False)
        self.ack_bed.clicked.connect(self.acknowledge_selected_bed)
        top = QHBoxLayout()
        top.addWidget(title)
        top.addStretch(1)
        top.addWidget(self.ack_bed)
        top.addWidget(self.ack)
        # The count on a line of its own, its text never asking for room: grown wider ("64 open,
        # 64 unacknowledged"), it made the splitter take width from the tile grid, which then
        # laid out every tile and plot again (the ward stalled 0.2-1.1 s, `station bench
        # --scenario restart-backlog`).
        self.count.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(top)
        lay.addWidget(self.count)
        lay.addWidget(self.table)

    def alarms(self) -> list[Alarm]:
        """The open alarms in display order."""
        return sorted(self._alarms.values(), key=Alarm.sort_key)

    def update_alarm(self, alarm: Alarm) -> None:
        """Apply one snapshot from the core."""
        if alarm.state == AlarmState.CLEARED:
            self._alarms.pop(alarm.alarm_id, None)
        else:
            self._alarms[alarm.alarm_id] = alarm
        # Rebuilt once per frame, not per snapshot: a broker outage over a 64-bed ward brings
        # dozens of changes at once, and the GUI thread must stay free.
        self._dirty = True

    def set_bed_pauses(self, pauses: dict[str, int]) -> None:
        """The beds whose alarm audio is paused, with the seconds left (once a second)."""
        if pauses != self._pauses:
            self._pauses = dict(pauses)
            self._dirty = True

    def render_if_dirty(self) -> None:
        """Rebuild the table if snapshots arrived since the last frame (render timer)."""
        if self._dirty:
            self._dirty = False
            self._render()

    def selected_id(self) -> str | None:
        """The alarm id of the selected row, if any."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def acknowledge_selected(self) -> None:
        """Ask the core to acknowledge the selected alarm, if it is still active."""
        alarm_id = self.selected_id()
        alarm = self._alarms.get(alarm_id) if alarm_id else None
        if alarm is not None and alarm.state in UNACKNOWLEDGED:
            self.acknowledge_requested.emit(alarm.alarm_id)

    def acknowledge_selected_bed(self) -> None:
        """Ask to acknowledge every alarm of the selected alarm's bed."""
        alarm_id = self.selected_id()
        alarm = self._alarms.get(alarm_id) if alarm_id else None
        if alarm is not None and alarm.bed and self._waiting_on(alarm.bed):
            self.acknowledge_bed_requested.emit(alarm.bed)

    def _waiting_on(self, bed: str) -> int:
        return sum(a.bed == bed and a.state in UNACKNOWLEDGED for a in self._alarms.values())

    def _selection_changed(self) -> None:
        alarm_id = self.selected_id()
        alarm = self._alarms.get(alarm_id) if alarm_id else None
        self.ack.setEnabled(alarm is not None and alarm.state in UNACKNOWLEDGED)
        self.ack_bed.setEnabled(
            alarm is not None and bool(alarm.bed) and self._waiting_on(alarm.bed) > 0
        )

    def _render(self) -> None:
        """Bring the table in line with the open alarms, touching only rows whose content
        changed: rebuilding every item each time cost a sixth of the GUI thread at 64 beds
        (measured with ``py-spy`` during ``station bench --scenario alarms``). A new alarm is
        inserted as a row and a cleared one removed, so the rows below are moved by Qt, not
        rewritten: rewriting them made this the longest part of a frame (59 ms p99, 94 ms max
        in the same bench) and held a new alarm off the screen."""
        keep = self.selected_id()
        alarms = self.alarms()
        wanted = {a.alarm_id for a in alarms}
        for row in range(len(self._rows) - 1, -1, -1):
            if self._rows[row][1] not in wanted:
                self.table.removeRow(row)
                del self._rows[row]
        for row, alarm in enumerate(alarms):
            shown = self._row_content(alarm, self._pauses.get(alarm.bed))
            if row < len(self._rows) and self._rows[row] == shown:
                continue
            if row >= len(self._rows) or self._rows[row][1] != alarm.alarm_id:
                # New here, or moved up (acknowledged alarms sort lower): its old row, if
                # any, comes out further down; the rows between stay as they are.
                for old in range(row + 1, len(self._rows)):
                    if self._rows[old][1] == alarm.alarm_id:
                        self.table.removeRow(old)
                        del self._rows[old]
                        break
                self.table.insertRow(row)
                self._rows.insert(row, shown)
            else:
                self._rows[row] = shown
            self._fill(row, shown)
        for row in range(len(self._rows) - 1, len(alarms) - 1, -1):  # none expected; stay exact
            self.table.removeRow(row)
            del self._rows[row]
        self.table.clearSelection()
        for row, alarm in enumerate(alarms):
            if alarm.alarm_id == keep:
                self.table.selectRow(row)
        active = sum(a.state in UNACKNOWLEDGED for a in alarms)
        self.count.setText(f"{len(alarms)} open, {active} unacknowledged" if alarms else "none")
        self._selection_changed()

    def _fill(self, row: int, shown: tuple[tuple[str, ...], str, tuple[str, str, bool]]) -> None:
        """Write one row's cells."""
        cells, alarm_id, colours = shown
        for col, text in enumerate(cells):
            item = self.table.item(row, col)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(row, col, item)
            item.setText(text)
            item.setToolTip(plain_tooltip(cells[2]))  # the column may cut a long message
            item.setData(Qt.ItemDataRole.UserRole, alarm_id)
            painted = colours if col == 0 or colours[2] else None
            item.setBackground(QBrush(QColor(painted[0])) if painted else QBrush())
            item.setForeground(QBrush(QColor(painted[1])) if painted else QBrush())

    @staticmethod
    def _row_content(
        alarm: Alarm, paused_s: int | None = None
    ) -> tuple[tuple[str, ...], str, tuple[str, str, bool]]:
        """The cells, the alarm id and the colours (fill, text, whether the whole row takes
        them: only while unacknowledged) of one alarm's row; ``paused_s``: the seconds left
        of its bed's audio pause."""
        technical = alarm.kind == AlarmKind.TECHNICAL
        bg = theme.TECHNICAL_BG if technical else theme.ALARM_BG[alarm.priority]
        fg = "#ffffff" if technical else theme.ALARM_FG[alarm.priority]
        state = alarm.state.value
        if alarm.by:
            state += f" by {alarm.by}"
        if paused_s is not None:
            minutes, seconds = divmod(paused_s, 60)
            state += f" · audio paused {minutes}:{seconds:02d}"
        since = datetime.fromtimestamp(alarm.raised_at).strftime("%H:%M:%S")
        cells = (alarm.priority.mark, alarm.bed or "station", alarm.message, state, since)
        return cells, alarm.alarm_id, (bg, fg, alarm.state in UNACKNOWLEDGED)
