"""The alarm history dialog: past alarms per bed over any period, nurses' comments on them, a
link to the bed's trend at the moment of an alarm, alarm-fatigue figures and a CSV export.

GUI thread only. It reads an :class:`~station.domain.alarm_history.AlarmHistory` (which the
station fills from the alarm snapshots, and after a restart from the alarm store) and, for a
period, the alarm store itself through ``loader`` on a worker (``jobs``): the GUI thread never
reads the file. A comment goes out through ``on_comment`` (the action layer, then the core,
which keeps and audits it) and comes back into the history. The table is a model over a list of
immutable episodes, so a history of 100 000 alarms costs only the rows on screen.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QDate,
    QDateTime,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTime,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from station.domain.alarm_history import COMMENT_MARKS, MAX_COMMENT, AlarmEpisode, AlarmHistory
from station.domain.alarms import LABELS, AlarmKind
from station.services.jobs import Jobs
from station.ui import file_choice, theme

log = logging.getLogger(__name__)

COLUMNS = (
    "Bed",
    "Parameter",
    "",
    "Message",
    "Raised",
    "Acknowledged by",
    "Time to ack",
    "Duration",
    "Cleared",
    "Comments",
)
PERIODS_DAYS = (("Last 24 h", 1), ("Last 7 days", 7), ("Last 30 days", 30), ("Last year", 366))
CHOSEN = 0
"""The period entry whose dates are chosen in the date fields."""
WARD = "Ward"
STATION_BED = "station"  # technical alarms of the station itself have no bed
SUMMARY_WINDOW_S = 86_400.0

_Index = QModelIndex | QPersistentModelIndex


def _when(ts: float | None) -> str:
    # Local time on screen, as on the rest of the station; the CSV export carries UTC.
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _bed_order(bed: str) -> list[int | str]:
    # "Bed 2" before "Bed 10": numbers compare as numbers.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", bed)]


class EpisodeModel(QAbstractTableModel):
    """Read-only table model over a list of episodes, newest first. GUI thread only."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._episodes: list[AlarmEpisode] = []

    def set_episodes(self, episodes: list[AlarmEpisode]) -> None:
        """Replace every row (a reset is cheaper than diffing for a review screen)."""
        self.beginResetModel()
        self._episodes = list(episodes)
        self.endResetModel()

    def episodes(self) -> list[AlarmEpisode]:
        """The episodes shown, in display order."""
        return list(self._episodes)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """Rows of the flat table; a child index has none."""
        return 0 if parent.isValid() else len(self._episodes)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """One column per entry of ``COLUMNS``."""
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> str | None:
        """Column titles; rows have no header."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section] if 0 <= section < len(COLUMNS) else None
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Cell text; the priority mark cell also carries the priority colour."""
        if not index.isValid() or not 0 <= index.row() < len(self._episodes):
            return None
        e = self._episodes[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(e, column)
        if column == 2 and role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole):
            if e.kind == AlarmKind.TECHNICAL:
                colour = theme.TECHNICAL_BG if role == Qt.ItemDataRole.BackgroundRole else "#fff"
            elif role == Qt.ItemDataRole.BackgroundRole:
                colour = theme.ALARM_BG[e.priority]
            else:
                colour = theme.ALARM_FG[e.priority]
            return QBrush(QColor(colour))
        if role == Qt.ItemDataRole.UserRole:
            return e.alarm_id
        return None

    @staticmethod
    def _text(e: AlarmEpisode, column: int) -> str:
        cells = (
            e.bed or STATION_BED,
            LABELS.get(e.parameter, e.parameter),
            e.priority.mark,
            e.message,
            _when(e.raised_at),
            e.acknowledged_by or ("yes" if e.acknowledged_at is not None else ""),
            _span(e.time_to_ack_s),
            _span(e.duration_s) if e.cleared_at is not None else "open",
            _when(e.cleared_at),
            e.comment_text,
        )
        return cells[column] if 0 <= column < len(cells) else ""


class AlarmHistoryDialog(QDialog):
    """Past alarms with a bed filter, a summary and CSV export. GUI thread only; no signals.

    Args:
        history: the station's alarm history; only read.
        clock: UTC epoch seconds, injected so the per-hour window is testable.
        parent: the owning window.
    """

    def __init__(
        self,
        history: AlarmHistory,
        clock: Callable[[], float],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._history = history
        self._clock = clock
        self.gate: Callable[[], str | None] | None = None
        """Who may export now (the action layer's check); None: no check (tests)."""
        self.on_exported: Callable[[str, int, str], None] | None = None
        """Called with (path, rows, user) after an export, for the audit trail."""
        self.excluded: Callable[[str], list[tuple[float, float]]] | None = None
        """Per bed, times whose alarms may not leave the station (no export consent)."""
        self.loader: Callable[[float, float], list[AlarmEpisode]] | None = None
        """Reads the alarm store for a period (blocking: run on ``jobs``); None: memory only."""
        self.jobs: Jobs | None = None
        self.on_comment: Callable[[str, str, str], None] | None = None
        """A nurse's comment: (alarm id, mark, text), to the action layer."""
        self.on_open_moment: Callable[[str, float], None] | None = None
        """Double-click: open (bed, moment) in the bed's trend."""
        self._generation = 0
        self.setWindowTitle("Alarm history")
        self.resize(1000, 560)
        self.bed_filter = QComboBox()
        self.bed_filter.currentIndexChanged.connect(lambda _i: self._show())
        self.period = QComboBox()
        for text, days in PERIODS_DAYS:
            self.period.addItem(text, days)
        self.period.addItem("Chosen dates", CHOSEN)
        today = QDate.currentDate()
        self.since_date, self.until_date = QDateEdit(today.addDays(-1)), QDateEdit(today)
        for edit in (self.since_date, self.until_date):
            edit.setCalendarPopup(True)
            edit.setEnabled(False)
            edit.dateChanged.connect(lambda _d: self._show())
        self.period.currentIndexChanged.connect(self._on_period)
        self.model = EpisodeModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.doubleClicked.connect(self._open_moment)
        self.table.setToolTip("Double-click an alarm to see the bed's trend at that moment")
        # The ward stylesheet styles QTableWidget; this view gets the same look.
        self.table.setStyleSheet(
            f"QTableView {{ background:{theme.TILE}; color:{theme.TEXT};"
            f" gridline-color:{theme.TILE_BORDER}; font-size:13px; }}"
        )
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.status = QLabel()
        self.status.setStyleSheet(f"color:{theme.MUTED};")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._ask_and_export)
        refresh_button = QPushButton("Refresh")
        refresh_button.clicked.connect(self.refresh)
        self.mark = QComboBox()
        self.mark.addItems(COMMENT_MARKS)
        self.comment_text = QLineEdit()
        self.comment_text.setMaxLength(MAX_COMMENT)
        self.comment_text.setPlaceholderText("Comment (optional)")
        self.comment_button = QPushButton("Add comment")
        self.comment_button.clicked.connect(self._comment)
        comment_row = QHBoxLayout()
        comment_row.addWidget(QLabel("Mark the selected alarm:"))
        comment_row.addWidget(self.mark)
        comment_row.addWidget(self.comment_text, 1)
        comment_row.addWidget(self.comment_button)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.bed_filter)
        top.addWidget(self.period)
        top.addWidget(self.since_date)
        top.addWidget(QLabel("to"))
        top.addWidget(self.until_date)
        top.addStretch(1)
        top.addWidget(refresh_button)
        top.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(comment_row)
        lay.addWidget(self.summary)
        lay.addWidget(self.status)
        self.refresh()

    def selected_bed(self) -> str | None:
        """The bed the filter shows, or None for the whole ward."""
        bed = self.bed_filter.currentData()
        return bed if isinstance(bed, str) else None

    def refresh(self) -> None:
        """Re-read the history: the bed list (keeping the choice), the table and the summary."""
        keep = self.selected_bed()
        self.bed_filter.blockSignals(True)
        try:
            self.bed_filter.clear()
            self.bed_filter.addItem(WARD, None)
            for bed in sorted(self._history.beds(), key=_bed_order):
                self.bed_filter.addItem(bed or STATION_BED, bed)
            found = self.bed_filter.findData(keep) if keep is not None else 0
            self.bed_filter.setCurrentIndex(max(found, 0))
        finally:
            self.bed_filter.blockSignals(False)
        self._show()

    def export_to(self, path: Path) -> int:
        """Write the episodes shown (the current filter) as CSV; return the rows written.

        A failure is reported in a message box and returns 0: an export must never take the
        station down.
        """
        episodes = self.model.episodes()
        left_out = 0
        if self.excluded is not None:
            spans = {bed: self.excluded(bed) for bed in {e.bed for e in episodes}}
            kept = [
                e
                for e in episodes
                if not any(a <= e.raised_at < b for a, b in spans.get(e.bed, ()))
            ]
            left_out, episodes = len(episodes) - len(kept), kept
        try:
            path.write_text(self._history.to_csv(episodes), encoding="utf-8", newline="")
        except OSError as exc:
            log.warning("alarm history export to %s failed: %s", path, exc)
            # Said here, not in a modal box over the ward.
            self.status.setText(f"Export failed: could not write {path}: {exc.strerror or exc}")
            return 0
        note = f" {left_out} left out: no export consent." if left_out else ""
        self.status.setText(f"Exported {len(episodes)} alarms to {path}.{note}")
        return len(episodes)

    def _ask_and_export(self) -> None:
        user = None
        if self.gate is not None:
            user = self.gate()
            if user is None:
                return  # refused and audited by the action layer, which asks for a login

        def chosen(path: Path) -> None:
            rows = self.export_to(path)
            if rows and self.on_exported is not None:
                self.on_exported(str(path), rows, user or "")

        file_choice.choose_path(
            self,
            "Export alarm history",
            chosen,
            start="alarm-history.csv",
            name_filter="CSV files (*.csv)",
        )

    def period_span(self) -> tuple[float, float]:
        """The period chosen: ``[since, until)`` in UTC epoch seconds."""
        days = self.period.currentData()
        if days == CHOSEN:
            start = QDateTime(self.since_date.date(), QTime(0, 0)).toSecsSinceEpoch()
            end = QDateTime(self.until_date.date().addDays(1), QTime(0, 0)).toSecsSinceEpoch()
            return float(start), float(end)
        now = self._clock()
        return now - float(days) * 86_400.0, now + 1.0

    def _on_period(self, _index: int) -> None:
        chosen = self.period.currentData() == CHOSEN
        self.since_date.setEnabled(chosen)
        self.until_date.setEnabled(chosen)
        self._show()

    def _show(self) -> None:
        bed = self.selected_bed()
        since, until = self.period_span()
        live = self._history.episodes(bed=bed, since=since, until=until)
        self.model.set_episodes(live)
        self.summary.setText(self._summary(bed))
        loader, jobs = self.loader, self.jobs
        if loader is None or jobs is None:
            return
        self._generation += 1
        generation = self._generation
        self.status.setText("Reading the alarm store…")

        def stored(found: list[AlarmEpisode]) -> None:
            if generation != self._generation:
                return  # another period or bed was chosen meanwhile
            merged = {e.alarm_id: e for e in found if bed is None or e.bed == bed}
            # What this session holds is newer (the store is written once a second).
            merged.update((e.alarm_id, e) for e in self._history.episodes(bed, since, until))
            episodes = sorted(merged.values(), key=lambda e: e.raised_at, reverse=True)
            self.model.set_episodes(episodes)
            self.status.setText(f"{len(episodes)} alarms in this period.")

        def failed(exc: Exception) -> None:
            if generation == self._generation:
                self.status.setText(f"Alarm store unreadable, this session only: {exc}")

        jobs.submit(lambda: loader(since, until), stored, failed, context=self)

    def selected_episode(self) -> AlarmEpisode | None:
        """The episode of the selected row, if any."""
        rows = self.table.selectionModel().selectedRows()
        episodes = self.model.episodes()
        if not rows or not 0 <= rows[0].row() < len(episodes):
            return None
        return episodes[rows[0].row()]

    def _comment(self) -> None:
        episode = self.selected_episode()
        if episode is None:
            self.status.setText("Select an alarm to comment on.")
            return
        if self.on_comment is not None:
            self.on_comment(episode.alarm_id, self.mark.currentText(), self.comment_text.text())
        self.comment_text.clear()

    def _open_moment(self, index: QModelIndex) -> None:
        episodes = self.model.episodes()
        if self.on_open_moment is None or not 0 <= index.row() < len(episodes):
            return
        episode = episodes[index.row()]
        if episode.bed:
            self.on_open_moment(episode.bed, episode.raised_at)

    def _summary(self, bed: str | None) -> str:
        rates = self._history.per_bed_per_hour(self._clock(), SUMMARY_WINDOW_S)
        if bed is not None:
            rates = {bed: rates.get(bed, 0.0)}
        rate_text = ", ".join(
            f"{b or STATION_BED} {r:.2f}"
            for b, r in sorted(rates.items(), key=lambda i: _bed_order(i[0]))
        )
        stats = self._history.time_to_ack_stats(bed)
        if stats["count"]:
            ack_text = (
                f"median {_span(stats['median'])}, p90 {_span(stats['p90'])}"
                f" ({stats['count']} acknowledged)"
            )
        else:
            ack_text = "none acknowledged"
        return (
            f"Alarms per bed per hour (last 24 h): {rate_text or 'none'}."
            f"  Time to acknowledge: {ack_text}."
        )
