"""The auditor's view of the audit trail: filter the records, see the chain's health, export.

Read-only by construction: the table model has no ``setData`` and no editable flag, the record
box is read-only, and the dialog has no action that writes a record; it reads through an
:class:`AuditSource` and asks that source for an export bundle. Every text from the trail is
hostile until shown otherwise, so it reaches the screen only as plain text (the table's display
role, a read-only plain-text box, labels fixed to ``Qt.PlainText``, no tool tip with record
text, which Qt would take for rich text), with line breaks, control and bidi characters shown
as ``\\n`` or ``\\u202e`` escapes: a name cannot fake a second row or a second field, or hide
what it holds.

Threads: the dialog lives in the GUI thread. :meth:`AuditSource.load` (which reads and verifies
the whole trail) and :meth:`AuditSource.export` run on short-lived threads (``audit-load``,
``audit-export``), so a 100 000-record trail never freezes the station's screen; each hands its
result back through a private signal of the dialog, delivered queued in the GUI thread. Closing
the dialog joins them with a timeout; a result that arrives after that is dropped.

Signals:
    loaded(AuditSnapshot): the table and the banner show a new snapshot.
    load_failed(str): the source could not load the trail; the reason is in the banner.
    exported(str): the source's one-line verdict on a finished export.
    export_failed(str): why an export failed; also shown in the dialog.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractTableModel,
    QDateTime,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QBrush, QCloseEvent, QColor, QFont, QFontDatabase, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from station.domain.audit.query import (
    AuditFilter,
    action_groups,
    beds,
    record_time,
    select,
    users,
)
from station.domain.timefmt import local_text
from station.ui import theme

log = logging.getLogger(__name__)

COLUMNS = ("Time (local)", "User", "Role", "Action", "Target", "Outcome", "Details", "Seq")
TIME, USER, ROLE, ACTION, TARGET, OUTCOME, DETAILS, SEQ = range(len(COLUMNS))
_WIDTHS = {TIME: 150, USER: 120, ROLE: 80, ACTION: 170, TARGET: 110, OUTCOME: 75, SEQ: 70}
ANY_USER = "Any user"  # not "Anyone": "anyone" is a real actor (an action allowed without login)
ANY_BED = "Any bed"
ANY_ACTION = "Any action"
LOAD_THREAD = "audit-load"
EXPORT_THREAD = "audit-export"
JOIN_TIMEOUT_S = 2.0
FILTER_DELAY_MS = 250  # typing a name or spinning a time re-filters once, not per keystroke
CELL_MAX = 200  # characters of a cell; the record box below shows all of it
CHECKING = "Checking the audit trail…"
NO_SELECTION = "Select a record to see all of its fields."
DATETIME_FORMAT = "yyyy-MM-dd HH:mm:ss"
EXPORT_SCOPE = (
    "The bundle holds every record between the From and To times (all of them when neither"
    " is ticked). The user, bed and action filters do not apply: an export keeps the chain"
    " whole so it can be verified."
)

_INTACT_STYLE = (
    f"background:#0f2418; color:{theme.OK}; border-left:6px solid {theme.OK};"
    " padding:6px 10px; font-size:15px; font-weight:700;"
)
_BROKEN_STYLE = (
    f"background:#3b0d12; color:#ffd7d7; border:2px solid {theme.BAD};"
    f" border-left:6px solid {theme.BAD}; padding:6px 10px; font-size:15px; font-weight:700;"
)
_CHECKING_STYLE = (
    f"background:{theme.TILE}; color:{theme.MUTED}; border-left:6px solid {theme.MUTED};"
    " padding:6px 10px; font-size:15px; font-weight:700;"
)
_BAD_TEXT = "#ff8a8a"  # theme.BAD is a fill colour; as text on the dark tiles it is too dim
# The ward stylesheet styles buttons, labels and QTableWidget but no input field, check box or
# QTableView: without this their dark default text sits on the dark dialog.
_STYLE = f"""
QCheckBox {{ color: {theme.TEXT}; font-size: 13px; }}
QComboBox, QDateTimeEdit {{ background: {theme.TILE}; color: {theme.TEXT};
    border: 1px solid #3a4759; border-radius: 3px; padding: 3px 6px; font-size: 13px; }}
QComboBox:disabled, QDateTimeEdit:disabled {{ color: {theme.STALE};
    border-color: {theme.TILE_BORDER}; }}
QComboBox QAbstractItemView {{ background: {theme.TILE}; color: {theme.TEXT};
    selection-background-color: #2f3b4a; }}
QTableView {{ background: {theme.TILE}; alternate-background-color: #19212b; color: {theme.TEXT};
    gridline-color: {theme.TILE_BORDER}; selection-background-color: #31506f;
    selection-color: #ffffff; font-size: 13px; }}
QPlainTextEdit {{ background: {theme.TILE}; color: {theme.TEXT};
    border: 1px solid {theme.TILE_BORDER}; font-size: 12px; }}
"""

_BAD_ROW = "#4a161c"  # the first bad record's row: a dark red the light text stays readable on
READING_ORDER = ("seq", "ts", "actor", "role", "action", "target", "outcome", "where", "epoch")
"""Fields first in the record box, in the order a person reads them; the rest follow."""

_Index = QModelIndex | QPersistentModelIndex
_Record = Mapping[str, Any]


@dataclass(frozen=True)
class AuditSnapshot:
    """The trail as read at one moment, with the verdict on its chain.

    Attributes:
        records: the parseable records, in trail order.
        intact: the chain verified (no edit, deletion, insertion, reordering, torn tail).
        health: one line for a person, e.g. ``OK 1234 records, chain intact, signed to seq
            1200`` or ``FAIL line 12 (seq 12): edited: ...``.
        key_id: the station key's fingerprint, or "" when not known.
        bad_seq: the ``seq`` of the first bad record when the source knows it; the table marks
            that row and the banner offers to show it, so nobody scrolls 100 000 rows for it.
    """

    records: list[dict[str, Any]]
    intact: bool
    health: str
    key_id: str = ""
    bad_seq: int | None = None


class AuditSource(Protocol):
    """Where the dialog reads the trail and sends an export. Both are called off the GUI thread."""

    def load(self) -> AuditSnapshot:
        """Read and verify the whole trail."""
        ...

    def export(self, folder: Path, since: float | None, until: float | None) -> str:
        """Write a bundle of the records in ``[since, until)`` into ``folder``.

        Returns:
            A one-line verdict for the auditor.

        Raises:
            OSError: the folder cannot be written.
            ValueError: the request cannot be met (e.g. an empty or reversed span).
        """
        ...


@dataclass(frozen=True)
class _Loaded:
    """A snapshot with what the dialog derives from it, computed on the load thread."""

    snapshot: AuditSnapshot
    users: list[str]
    beds: list[str]
    actions: list[str]
    first: float | None
    last: float | None
    untimed: int


def _prepare(snapshot: AuditSnapshot) -> _Loaded:
    """The filter choices and time span of a snapshot (a few passes over 100k records)."""
    records = snapshot.records
    times = [record_time(r) for r in records]
    known = [t for t in times if t is not None]
    return _Loaded(
        snapshot,
        users(records),
        beds(records),
        action_groups(records),
        min(known, default=None),
        max(known, default=None),
        len(times) - len(known),
    )


def _escape(ch: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    if code > 0xFFFF:  # as JSON writes it, so the record box stays valid JSON
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def visible_text(text: str) -> str:
    """``text`` with every character that is not visible (line and paragraph separators,
    control, bidi and other format characters, odd spaces, lone surrogates) as an escape."""
    if text.isprintable():  # the usual case, checked in C
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def one_line(value: object, limit: int = CELL_MAX) -> str:
    """A value as one visible line of at most about ``limit`` characters, for a table cell."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + "…"
    return visible_text(text)


def details_text(details: object) -> str:
    """``key=value, ...`` of a record's details, compact for the Details column."""
    if not isinstance(details, Mapping):
        return one_line(details) if details not in (None, "") else ""
    parts = []
    for key, value in details.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown}")
    return one_line(", ".join(parts))


def pretty_record(record: _Record) -> str:
    """The whole record as indented JSON, who-did-what first and the chain fields last (the
    trail stores keys sorted, which puts ``action`` first and ``seq`` in the middle). Invisible
    characters become JSON escapes, so the text stays valid JSON and a hostile value cannot add
    a line that looks like a field."""
    ordered = {key: record[key] for key in READING_ORDER if key in record}
    ordered.update((key, value) for key, value in record.items() if key not in ordered)
    text = json.dumps(ordered, indent=2, ensure_ascii=False, default=str)
    return "\n".join(visible_text(line) for line in text.split("\n"))


def when_text(epoch: float) -> str | None:
    """Station-local time with seconds, or None for a time the platform cannot show locally
    (a hostile ``ts`` in year 1 or 9999)."""
    try:
        return local_text(epoch, seconds=True)
    except (OverflowError, OSError, ValueError):
        return None


def _time_cell(record: _Record) -> str:
    when = record_time(record)
    text = when_text(when) if when is not None else None
    return text if text is not None else "unreadable: " + one_line(record.get("ts", ""), 40)


def _cell(record: _Record, column: int, bad: bool) -> str:
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
        self._records: list[_Record] = []
        self._bad_seq: int | None = None

    def set_records(self, records: list[_Record], bad_seq: int | None = None) -> None:
        """Replace every row (a reset is cheaper than diffing a filtered list); the record
        with ``bad_seq`` is marked as where the chain breaks."""
        self.beginResetModel()
        self._records = records
        self._bad_seq = bad_seq
        self.endResetModel()

    def row_of(self, seq: int) -> int | None:
        """The first row showing the record with ``seq``, or None."""
        return next((i for i, r in enumerate(self._records) if r.get("seq") == seq), None)

    def record(self, row: int) -> _Record | None:
        """The record shown on ``row``, or None."""
        return self._records[row] if 0 <= row < len(self._records) else None

    def records(self) -> list[_Record]:
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
            return QBrush(QColor(_BAD_ROW))
        if role == Qt.ItemDataRole.TextAlignmentRole and column == SEQ:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if column == OUTCOME and record.get("outcome") != "success":
            if role == Qt.ItemDataRole.ForegroundRole:
                return QBrush(QColor(_BAD_TEXT))
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setBold(True)
                return font
        return None


def _plain_label(text: str = "") -> QLabel:
    """A label that never interprets its text as rich text, and can be copied from."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _time_edit(tip: str) -> QDateTimeEdit:
    edit = QDateTimeEdit(QDateTime.currentDateTime())
    edit.setDisplayFormat(DATETIME_FORMAT)
    edit.setCalendarPopup(True)
    edit.setEnabled(False)
    edit.setToolTip(tip)
    return edit


def _combo(editable: bool, any_text: str) -> QComboBox:
    box = QComboBox()
    box.setEditable(editable)
    box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)  # typing filters; it adds no choice
    box.setMinimumContentsLength(12)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.addItem(any_text, "")
    line = box.lineEdit()
    if line is not None:
        line.setPlaceholderText(any_text)
    return box


def _epoch(edit: QDateTimeEdit) -> float:
    return edit.dateTime().toMSecsSinceEpoch() / 1000.0


def _set_epoch(edit: QDateTimeEdit, epoch: float) -> None:
    edit.setDateTime(QDateTime.fromMSecsSinceEpoch(int(epoch * 1000)))


def _run(job: Callable[[], object], deliver: Callable[[object], None], what: str) -> None:
    """Body of a worker thread: run ``job`` and deliver its result or the text of its error.

    Any exception is caught: a source that fails in an unforeseen way must leave a message in
    the dialog, not a banner that says "Checking…" for ever.
    """
    result: object
    try:
        result = job()
    except Exception as exc:
        if not isinstance(exc, OSError | ValueError):
            log.exception("audit %s failed", what)
        result = exc
    try:
        deliver(result)
    except RuntimeError:  # the dialog was deleted meanwhile; nobody is waiting for this
        log.debug("audit %s result dropped: view gone", what)


def _finished(thread: threading.Thread | None) -> None:
    """Join a worker that has delivered its result: it is only returning, so this is at once,
    and no thread of a finished load or export outlives the result the dialog shows."""
    if thread is not None:
        thread.join(JOIN_TIMEOUT_S)


class AuditView(QDialog):
    """See the module docstring. GUI thread only.

    Args:
        source: reads the trail and writes export bundles (off the GUI thread).
        parent: the owning window.

    Attributes:
        choose_folder: asks where an export goes (None: cancelled); replaceable for tests.
    """

    loaded = Signal(object)
    load_failed = Signal(str)
    exported = Signal(str)
    export_failed = Signal(str)
    _load_done = Signal(int, object)  # (generation, _Loaded | Exception) from the load thread
    _export_done = Signal(object)  # the verdict (str) or the Exception, from the export thread

    def __init__(self, source: AuditSource, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source = source
        self._loaded: _Loaded | None = None
        self._generation = 0
        self._load_thread: threading.Thread | None = None
        self._export_thread: threading.Thread | None = None
        self._closed = False
        self.choose_folder: Callable[[], Path | None] = self._ask_folder
        self._load_done.connect(self._on_load_done, Qt.ConnectionType.QueuedConnection)
        self._export_done.connect(self._on_export_done, Qt.ConnectionType.QueuedConnection)
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self.apply_filter)
        self.setWindowTitle("Audit trail (read-only)")
        self.resize(1180, 720)
        self.setStyleSheet(theme.STYLESHEET + _STYLE)  # same look whether parented or not
        self._build()
        self.refresh()

    # -- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.banner = _plain_label(CHECKING)
        self.model = AuditTableModel(self)
        self.table = self._build_table()
        self.record_box = QPlainTextEdit()
        self.record_box.setReadOnly(True)
        self.record_box.setPlaceholderText(NO_SELECTION)
        self.record_box.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.record_box.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.record_box)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        self.count = _plain_label()
        self.count.setStyleSheet(f"color:{theme.MUTED};")
        self.export_status = _plain_label()
        self.goto_bad_button = QPushButton("Show the bad record")
        self.goto_bad_button.setVisible(False)
        self.goto_bad_button.clicked.connect(self.show_bad_record)
        top = QHBoxLayout()
        top.addWidget(self.banner, 1)
        top.addWidget(self.goto_bad_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(self._build_filters())
        lay.addWidget(self.count)
        lay.addWidget(split, 1)
        lay.addWidget(self.export_status)
        lay.addLayout(self._build_buttons())
        self._show_banner(_CHECKING_STYLE, CHECKING)

    def _build_table(self) -> QTableView:
        table = QTableView()
        table.setModel(self.model)
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
        table.selectionModel().currentRowChanged.connect(self._on_current_row)
        return table

    def _build_filters(self) -> QVBoxLayout:
        self.since_on = QCheckBox("From")
        self.since_edit = _time_edit("Records at or after this local time")
        self.until_on = QCheckBox("To")
        self.until_edit = _time_edit("Records before this local time (not at it)")
        self.user_box = _combo(True, ANY_USER)
        self.bed_box = _combo(True, ANY_BED)
        self.action_box = _combo(False, ANY_ACTION)
        self.clear_button = QPushButton("Clear filters")
        for check, edit in ((self.since_on, self.since_edit), (self.until_on, self.until_edit)):
            check.toggled.connect(edit.setEnabled)
            check.toggled.connect(lambda _on: self.apply_filter())
            edit.dateTimeChanged.connect(lambda _t: self._filter_timer.start())
        for box in (self.user_box, self.bed_box):
            box.editTextChanged.connect(lambda _t: self._filter_timer.start())
            box.activated.connect(lambda _i: self.apply_filter())  # picked: no need to wait
        self.action_box.currentIndexChanged.connect(lambda _i: self.apply_filter())
        self.clear_button.clicked.connect(self.clear_filters)
        times = QHBoxLayout()
        for widget in (self.since_on, self.since_edit, self.until_on, self.until_edit):
            times.addWidget(widget)
        times.addStretch(1)
        who = QHBoxLayout()
        for text, box in (("User", self.user_box), ("Bed", self.bed_box)):
            who.addWidget(QLabel(text))
            who.addWidget(box, 1)
        who.addWidget(QLabel("Action"))
        who.addWidget(self.action_box, 1)
        who.addWidget(self.clear_button)
        lay = QVBoxLayout()
        lay.addLayout(times)
        lay.addLayout(who)
        return lay

    def _build_buttons(self) -> QHBoxLayout:
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.export_button = QPushButton("Export bundle…")
        self.export_button.setToolTip(EXPORT_SCOPE)
        self.export_button.clicked.connect(self._ask_and_export)
        self.close_button = QPushButton("Close")
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.reject)
        lay = QHBoxLayout()
        lay.addWidget(self.refresh_button)
        lay.addWidget(self.export_button)
        lay.addStretch(1)
        lay.addWidget(self.close_button)
        return lay

    # -- state for callers and tests ---------------------------------------------------------

    @property
    def snapshot(self) -> AuditSnapshot | None:
        """The snapshot shown, or None before the first load."""
        return self._loaded.snapshot if self._loaded is not None else None

    @property
    def loading(self) -> bool:
        """A load is running."""
        return self._load_thread is not None

    @property
    def exporting(self) -> bool:
        """An export is running."""
        return self._export_thread is not None

    def current_filter(self) -> AuditFilter:
        """What the filter bar asks for now (the To/From times as UTC epoch seconds)."""
        return AuditFilter(
            since=_epoch(self.since_edit) if self.since_on.isChecked() else None,
            until=_epoch(self.until_edit) if self.until_on.isChecked() else None,
            user=self._choice(self.user_box, ANY_USER),
            bed=self._choice(self.bed_box, ANY_BED),
            action=str(self.action_box.currentData() or ""),
        )

    @staticmethod
    def _choice(box: QComboBox, any_text: str) -> str:
        """The raw value chosen (items show escaped text) or the text typed; "" for any."""
        text = box.currentText()
        index = box.currentIndex()
        if index >= 0 and text == box.itemText(index):
            return str(box.itemData(index) or "")
        text = text.strip()
        return "" if text == any_text else text

    # -- loading -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the trail again off the GUI thread; :attr:`loaded` follows. The filters stay.
        Ignored while a load is running."""
        if self._load_thread is not None:
            return
        self._generation += 1
        generation = self._generation

        def deliver(result: object) -> None:
            self._load_done.emit(generation, result)

        def job() -> _Loaded:
            return _prepare(self._source.load())

        self._load_thread = threading.Thread(
            target=_run, args=(job, deliver, "load"), name=LOAD_THREAD, daemon=True
        )
        self.refresh_button.setEnabled(False)
        self._show_banner(_CHECKING_STYLE, CHECKING)
        self._load_thread.start()

    @Slot(int, object)
    def _on_load_done(self, generation: int, result: object) -> None:
        _finished(self._load_thread)
        self._load_thread = None
        self.refresh_button.setEnabled(True)
        if generation != self._generation:  # the dialog was closed meanwhile
            if not self._closed:
                self.refresh()  # and opened again while this load was still running
            return
        if not isinstance(result, _Loaded):
            text = f"Could not read the audit trail: {result}"
            self._show_banner(_BROKEN_STYLE, text)
            self.load_failed.emit(text)
            return
        self._loaded = result
        self._fill_choices(result)
        self._default_times(result)
        self._show_health(result.snapshot)
        self.apply_filter()
        self.loaded.emit(result.snapshot)

    def _show_health(self, snapshot: AuditSnapshot) -> None:
        key = f"Station key: {snapshot.key_id}" if snapshot.key_id else "Station key: not known"
        bad = snapshot.bad_seq
        listed = bad is not None and any(r.get("seq") == bad for r in snapshot.records)
        self.goto_bad_button.setText(f"Show seq {bad}")
        self.goto_bad_button.setVisible(not snapshot.intact and listed)
        if snapshot.intact:
            self._show_banner(_INTACT_STYLE, snapshot.health, key)
        else:
            self._show_banner(_BROKEN_STYLE, f"NOT INTACT — {snapshot.health}", key)

    def _show_banner(self, style: str, *lines: str) -> None:
        """One banner line per argument; a line break inside one is shown as ``\\n``."""
        self.banner.setText("\n".join(visible_text(line) for line in lines))
        self.banner.setStyleSheet(style)

    def _fill_choices(self, loaded: _Loaded) -> None:
        """New choices for the combo boxes, keeping what the auditor had chosen or typed."""
        self._refill(self.user_box, ANY_USER, loaded.users, lambda v: v)
        self._refill(self.bed_box, ANY_BED, loaded.beds, lambda v: v)
        groups = {a.rsplit(".", 1)[0] for a in loaded.actions if "." in a}
        self._refill(
            self.action_box, ANY_ACTION, loaded.actions, lambda a: f"{a}.*" if a in groups else a
        )

    @staticmethod
    def _refill(
        box: QComboBox, any_text: str, values: Iterable[str], label: Callable[[str], str]
    ) -> None:
        chosen, typed = box.currentData(), box.currentText()
        picked = box.currentIndex() >= 0 and typed == box.itemText(box.currentIndex())
        box.blockSignals(True)
        try:
            box.clear()
            box.addItem(any_text, "")
            for value in values:
                box.addItem(visible_text(label(value)), value)
            index = box.findData(chosen) if picked else -1
            if index >= 0:
                box.setCurrentIndex(index)
            elif box.isEditable():
                box.setEditText(typed)
            else:
                box.setCurrentIndex(0)
        finally:
            box.blockSignals(False)

    def _default_times(self, loaded: _Loaded) -> None:
        """An unticked bound shows the trail's first / last minute, so ticking it changes
        nothing until the auditor narrows it."""
        pairs = (
            (self.since_on, self.since_edit, loaded.first, 0.0),
            (self.until_on, self.until_edit, loaded.last, 60.0),
        )
        for check, edit, when, pad in pairs:
            if when is None or check.isChecked():
                continue
            edit.blockSignals(True)
            try:
                _set_epoch(edit, when // 60 * 60 + pad)
            finally:
                edit.blockSignals(False)

    # -- filtering ---------------------------------------------------------------------------

    def apply_filter(self) -> None:
        """Show the records that match the filter bar now (typing waits for a pause)."""
        self._filter_timer.stop()
        loaded = self._loaded
        if loaded is None:
            return
        flt = self.current_filter()
        snapshot = loaded.snapshot
        bad = None if snapshot.intact else snapshot.bad_seq
        self.model.set_records(select(snapshot.records, flt), bad)
        self.record_box.clear()
        self._show_count(loaded, flt)

    def _show_count(self, loaded: _Loaded, flt: AuditFilter) -> None:
        shown, total = self.model.rowCount(), len(loaded.snapshot.records)
        text = f"{shown:,} of {total:,} records"
        if flt.bounded and loaded.untimed:
            text += f" — {loaded.untimed:,} with an unreadable time are hidden by the time filter"
        self.count.setText(text)

    def clear_filters(self) -> None:
        """Every filter back to "any", applied once."""
        widgets = (self.since_on, self.until_on, self.user_box, self.bed_box, self.action_box)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.since_on.setChecked(False)
            self.until_on.setChecked(False)
            for box in (self.user_box, self.bed_box, self.action_box):
                box.setCurrentIndex(0)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.since_edit.setEnabled(False)
        self.until_edit.setEnabled(False)
        self.apply_filter()

    def show_bad_record(self) -> None:
        """Select the record where the chain breaks, clearing the filters if they hide it."""
        snapshot = self.snapshot
        if snapshot is None or snapshot.bad_seq is None:
            return
        row = self.model.row_of(snapshot.bad_seq)
        if row is None:
            self.clear_filters()
            row = self.model.row_of(snapshot.bad_seq)
        if row is not None:
            self.table.selectRow(row)
            self.table.scrollTo(
                self.model.index(row, 0), QAbstractItemView.ScrollHint.PositionAtCenter
            )
            self.table.setFocus()

    @Slot(QModelIndex, QModelIndex)
    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        record = self.model.record(current.row()) if current.isValid() else None
        if record is None:
            self.record_box.clear()
        else:
            self.record_box.setPlainText(pretty_record(record))

    # -- export ------------------------------------------------------------------------------

    def _ask_folder(self) -> Path | None:
        name = QFileDialog.getExistingDirectory(self, "Choose a folder for the audit bundle")
        return Path(name) if name else None

    def _ask_and_export(self) -> None:
        folder = self.choose_folder()
        if folder is not None:
            self.export_to(folder)

    def export_to(self, folder: Path) -> bool:
        """Ask the source for a bundle in ``folder`` with the current From/To bounds, off the
        GUI thread; :attr:`exported` or :attr:`export_failed` follows. False (and nothing
        follows) while another export is running."""
        if self._export_thread is not None:
            return False
        flt = self.current_filter()
        since, until = flt.since, flt.until

        def job() -> str:
            return self._source.export(folder, since, until)

        self._export_thread = threading.Thread(
            target=_run,
            args=(job, self._export_done.emit, "export"),
            name=EXPORT_THREAD,
            daemon=True,
        )
        self.export_button.setEnabled(False)
        # Said here, not only in the button's tool tip: the bundle ignores the other filters.
        span = self._span_text(since, until)
        self._show_export(
            f"Exporting {span} (every user, bed and action) to {folder}…", theme.MUTED
        )
        self._export_thread.start()
        return True

    @staticmethod
    def _span_text(since: float | None, until: float | None) -> str:
        if since is None and until is None:
            return "the whole trail"
        start = (when_text(since) if since is not None else None) or "the start"
        end = (when_text(until) if until is not None else None) or "the end"
        return f"the records from {start} to {end}"

    @Slot(object)
    def _on_export_done(self, result: object) -> None:
        _finished(self._export_thread)
        self._export_thread = None
        self.export_button.setEnabled(True)
        if isinstance(result, str):
            colour = ""
            if result.startswith("OK"):
                colour = theme.OK
            elif "FAIL" in result:  # the source verified the bundle and it did not hold
                colour = _BAD_TEXT
            self._show_export(result, colour)
            self.exported.emit(result)
            return
        reason = str(result) or type(result).__name__
        text = f"Export failed: {reason}"
        self._show_export(text, _BAD_TEXT)
        self.export_failed.emit(text)

    def _show_export(self, text: str, colour: str) -> None:
        self.export_status.setText(visible_text(text))
        self.export_status.setStyleSheet(f"color:{colour};" if colour else "")

    # -- closing -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Join the worker threads (at most :data:`JOIN_TIMEOUT_S` each) and drop any result
        still in flight. Called when the dialog closes."""
        self._closed = True
        self._generation += 1
        self._filter_timer.stop()
        for thread in (self._load_thread, self._export_thread):
            if thread is not None:
                thread.join(JOIN_TIMEOUT_S)
                if thread.is_alive():
                    log.warning("%s thread still running after %.1f s", thread.name, JOIN_TIMEOUT_S)

    def done(self, arg__1: int, /) -> None:
        """Close the dialog (Close, Escape) after its threads."""
        self.shutdown()
        super().done(arg__1)

    def closeEvent(self, arg__1: QCloseEvent, /) -> None:
        """Join the threads when the window is closed."""
        self.shutdown()
        super().closeEvent(arg__1)

    def showEvent(self, arg__1: QShowEvent, /) -> None:
        """A view closed and shown again reads the trail again: it may have grown."""
        super().showEvent(arg__1)
        if self._closed:
            self._closed = False
            self.refresh()
