"""The alarm history dialog: past alarms per bed, alarm-fatigue figures and a CSV export.

GUI thread only. It reads an :class:`~station.domain.alarm_history.AlarmHistory` (which the
station fills from the alarm snapshots) when opened and on :meth:`AlarmHistoryDialog.refresh`;
it never changes the history. The table is a model over a list of immutable episodes, so a
history of 100 000 alarms costs only the rows on screen.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from station.domain.alarm_history import AlarmEpisode, AlarmHistory
from station.domain.alarms import LABELS, AlarmKind
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
)
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
        self.setWindowTitle("Alarm history")
        self.resize(1000, 560)
        self.bed_filter = QComboBox()
        self.bed_filter.currentIndexChanged.connect(lambda _i: self._show())
        self.model = EpisodeModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
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
        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.bed_filter)
        top.addStretch(1)
        top.addWidget(refresh_button)
        top.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
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

    def _show(self) -> None:
        bed = self.selected_bed()
        self.model.set_episodes(self._history.episodes(bed=bed))
        self.summary.setText(self._summary(bed))

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
