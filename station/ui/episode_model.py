"""The alarm history's table: a read-only model over a list of immutable episodes, newest first,
so a history of 100 000 alarms costs only the rows on screen. GUI thread only."""

from __future__ import annotations

import re
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QWidget

from station.domain.alarm_history import AlarmEpisode
from station.domain.alarms import LABELS, AlarmKind
from station.ui import theme

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
STATION_BED = "station"  # technical alarms of the station itself have no bed
_Index = QModelIndex | QPersistentModelIndex


def _when(ts: float | None) -> str:
    # Local time on screen, as on the rest of the station; the CSV export carries UTC.
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def span_text(seconds: float | None) -> str:
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


def bed_order(bed: str) -> list[int | str]:
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
            span_text(e.time_to_ack_s),
            span_text(e.duration_s) if e.cleared_at is not None else "open",
            _when(e.cleared_at),
            e.comment_text,
        )
        return cells[column] if 0 <= column < len(cells) else ""
