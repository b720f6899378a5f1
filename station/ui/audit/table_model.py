"""The audit view's table: a read-only Qt model over the records shown, and the table view set
up so that 100 000 rows cost no more than the ones on screen.

Read-only by construction: the model has no ``setData`` and no editable flag. Cells are plain
display text (:mod:`station.ui.audit.text`) and there is no tool tip role, which Qt would render
as rich text. The first bad record's row is marked in red and with a ``✖``, never colour alone.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from station.domain.audit.query import record_time
from station.ui.audit.source import Record
from station.ui.audit.style import BAD_ROW, BAD_TEXT
from station.ui.audit.text import details_text, one_line, when_text

COLUMNS = ("Time (local)", "User", "Role", "Action", "Target", "Outcome", "Details", "Seq")
TIME, USER, ROLE, ACTION, TARGET, OUTCOME, DETAILS, SEQ = range(len(COLUMNS))
_WIDTHS = {TIME: 150, USER: 120, ROLE: 80, ACTION: 170, TARGET: 110, OUTCOME: 75, SEQ: 70}

_Index = QModelIndex | QPersistentModelIndex


def _time_cell(record: Record) -> str:
    when = record_time(record)
    text = when_text(when) if when is not None else None
    return text if text is not None else "unreadable: " + one_line(record.get("ts", ""), 40)


def _cell(record: Record, column: int, bad: bool) -> str:
    if column == SEQ and bad:
        return f"✖ {one_line(record.get('seq', ''))}"  # not by colour alone
    if column == TIME:
        return _time_cell(record)
    if column == DETAILS:
        return details_text(record.get("details"))
    key = ("", "actor", "role", "action", "target", "outcome", "", "seq")[column]
    value = record.get(key, "")
    return one_line(value) if value is not None else ""


class AuditTableModel(QAbstractTableModel):
    """Read-only table model over the records shown; only rows on screen cost anything."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._records: list[Record] = []
        self._bad_seq: int | None = None

    def set_records(self, records: list[Record], bad_seq: int | None = None) -> None:
        """Replace every row (a reset is cheaper than diffing a filtered list); the record
        with ``bad_seq`` is marked as where the chain breaks."""
        self.beginResetModel()
        self._records = records
        self._bad_seq = bad_seq
        self.endResetModel()

    def row_of(self, seq: int) -> int | None:
        """The first row showing the record with ``seq``, or None."""
        return next((i for i, r in enumerate(self._records) if r.get("seq") == seq), None)

    def record(self, row: int) -> Record | None:
        """The record shown on ``row``, or None."""
        return self._records[row] if 0 <= row < len(self._records) else None

    def records(self) -> list[Record]:
        """The records shown, in display (trail) order."""
        return list(self._records)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """Rows of the flat table; a child index has none."""
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """One column per entry of :data:`COLUMNS`."""
        return 0 if parent.isValid() else len(COLUMNS)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        """Selectable, never editable: the auditor reads the trail and cannot change it."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> str | None:
        """Column titles; rows have no header."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section] if 0 <= section < len(COLUMNS) else None
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Plain cell text; a failed or denied outcome also in red and bold, never colour
        alone. No tool tip role: Qt would render a tool tip that looks like HTML as HTML."""
        record = self.record(index.row()) if index.isValid() else None
        if record is None:
            return None
        column = index.column()
        bad = self._bad_seq is not None and record.get("seq") == self._bad_seq
        if role == Qt.ItemDataRole.DisplayRole:
            return _cell(record, column, bad)
        if role == Qt.ItemDataRole.BackgroundRole and bad:
            return QBrush(QColor(BAD_ROW))
        if role == Qt.ItemDataRole.TextAlignmentRole and column == SEQ:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if column == OUTCOME and record.get("outcome") != "success":
            if role == Qt.ItemDataRole.ForegroundRole:
                return QBrush(QColor(BAD_TEXT))
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setBold(True)
                return font
        return None


def audit_table(model: AuditTableModel) -> QTableView:
    """A table over ``model``: whole rows, one at a time, never edited, fixed row heights."""
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)  # a tired eye keeps its row across eight columns
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)
    table.setCornerButtonEnabled(False)
    rows = table.verticalHeader()
    rows.setVisible(False)
    # Fixed, uniform row heights: the view never measures 100 000 rows' contents.
    rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    rows.setDefaultSectionSize(table.fontMetrics().height() + 8)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setSectionResizeMode(DETAILS, QHeaderView.ResizeMode.Stretch)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    for column, width in _WIDTHS.items():
        table.setColumnWidth(column, width)
    return table
