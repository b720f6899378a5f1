"""The auditor's dialog over the audit trail: the chain's health, the filtered table, the whole
record below it, and the export of a bundle.

Threads: the dialog lives in the GUI thread. :meth:`AuditSource.load` (which reads and verifies
the whole trail) and :meth:`AuditSource.export` run on short-lived threads (``audit-load``,
``audit-export``, :mod:`station.ui.audit.workers`), so a 100 000-record trail never freezes the
station's screen; each hands its result back through a private signal of the dialog, delivered
queued in the GUI thread. Closing the dialog joins them with a timeout; a result that arrives
after that is dropped.

An export is a signed bundle in the name of the auditor who opened the view (the source records
it so). So the view is closed when the station locks or changes hands
(:class:`~station.ui.admin_dialogs.AdminDialogs`), and each export asks the action layer again
(:attr:`AuditView.gate`) at the moment it starts: whoever finds the view open after a lock must
log in first, and only its owner exports from it.

Signals:
    loaded(AuditSnapshot): the table and the banner show a new snapshot.
    load_failed(str): the source could not load the trail; the reason is in the banner.
    exported(str): the source's one-line verdict on a finished export.
    export_failed(str): why an export failed; also shown in the dialog.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QFontDatabase, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from station.domain.audit.query import AuditFilter, select
from station.services.audit.snapshot import AuditSnapshot
from station.ui import file_choice, theme
from station.ui.audit import workers
from station.ui.audit.filters import FilterBar
from station.ui.audit.source import AuditSource, Loaded, prepare
from station.ui.audit.style import BAD_TEXT, BROKEN_STYLE, CHECKING_STYLE, INTACT_STYLE, STYLE
from station.ui.audit.table_model import AuditTableModel, audit_table
from station.ui.audit.text import pretty_record, visible_text, when_text

log = logging.getLogger(__name__)

CHECKING = "Checking the audit trail…"
NO_SELECTION = "Select a record to see all of its fields."
EXPORT_SCOPE = (
    "The bundle holds every record between the From and To times (all of them when neither"
    " is ticked). The user, bed and action filters do not apply: an export keeps the chain"
    " whole so it can be verified."
)


def _plain_label(text: str = "") -> QLabel:
    """A label that never interprets its text as rich text, and can be copied from."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class AuditView(QDialog):
    """See the module docstring. GUI thread only.

    Args:
        source: reads the trail and writes export bundles (off the GUI thread).
        parent: the owning window.

    Attributes:
        choose_folder: None (the default): a chooser that is not modal asks where an export
            goes; a test sets a callable that answers at once (None: cancelled).
        gate: who may export now (the action layer's check: a denial is audited and asks for a
            login), asked when an export is asked for and again when it starts; None: no
            check (a view of its own, a test).
        owner: the user the source exports in the name of; a gate that names someone else is
            refused. None: anyone the gate allows.
    """

    loaded = Signal(object)
    load_failed = Signal(str)
    exported = Signal(str)
    export_failed = Signal(str)
    _load_done = Signal(int, object)  # (generation, Loaded | Exception) from the load thread
    _export_done = Signal(object)  # the verdict (str) or the Exception, from the export thread

    def __init__(self, source: AuditSource, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source = source
        self._loaded: Loaded | None = None
        self._generation = 0
        self._load_thread: threading.Thread | None = None
        self._export_thread: threading.Thread | None = None
        self._closed = False
        self.choose_folder: Callable[[], Path | None] | None = None
        self.gate: Callable[[], str | None] | None = None
        self.owner: str | None = None
        self._load_done.connect(self._on_load_done, Qt.ConnectionType.QueuedConnection)
        self._export_done.connect(self._on_export_done, Qt.ConnectionType.QueuedConnection)
        self.setWindowTitle("Audit trail (read-only)")
        self.resize(1180, 720)
        self.setStyleSheet(theme.STYLESHEET + STYLE)  # same look whether parented or not
        self._build()
        self.refresh()

    # -- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.banner = _plain_label(CHECKING)
        self.model = AuditTableModel(self)
        self.table = audit_table(self.model)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)
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
        self._show_banner(CHECKING_STYLE, CHECKING)

    def _build_filters(self) -> QVBoxLayout:
        self.filters = bar = FilterBar(self)
        bar.changed.connect(self.apply_filter)
        # The bar's widgets under the names callers and tests know them by.
        self.since_on, self.since_edit = bar.since_on, bar.since_edit
        self.until_on, self.until_edit = bar.until_on, bar.until_edit
        self.user_box, self.bed_box, self.action_box = bar.user_box, bar.bed_box, bar.action_box
        self.clear_button = bar.clear_button
        return bar.rows

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
        return self.filters.current()

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

        def job() -> Loaded:
            return prepare(self._source.load())

        self._load_thread = threading.Thread(
            target=workers.run,
            args=(job, deliver, "load"),
            name=workers.LOAD_THREAD,
            daemon=True,
        )
        self.refresh_button.setEnabled(False)
        self._show_banner(CHECKING_STYLE, CHECKING)
        self._load_thread.start()

    @Slot(int, object)
    def _on_load_done(self, generation: int, result: object) -> None:
        workers.finished(self._load_thread)
        self._load_thread = None
        self.refresh_button.setEnabled(True)
        if generation != self._generation:  # the dialog was closed meanwhile
            if not self._closed:
                self.refresh()  # and opened again while this load was still running
            return
        if not isinstance(result, Loaded):
            text = f"Could not read the audit trail: {result}"
            self._show_banner(BROKEN_STYLE, text)
            self.load_failed.emit(text)
            return
        self._loaded = result
        self.filters.offer(result)
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
            self._show_banner(INTACT_STYLE, snapshot.health, key)
        else:
            self._show_banner(BROKEN_STYLE, f"NOT INTACT — {snapshot.health}", key)

    def _show_banner(self, style: str, *lines: str) -> None:
        """One banner line per argument; a line break inside one is shown as ``\\n``."""
        self.banner.setText("\n".join(visible_text(line) for line in lines))
        self.banner.setStyleSheet(style)

    # -- filtering ---------------------------------------------------------------------------

    def apply_filter(self) -> None:
        """Show the records that match the filter bar now (typing waits for a pause)."""
        self.filters.timer.stop()
        loaded = self._loaded
        if loaded is None:
            return
        flt = self.current_filter()
        snapshot = loaded.snapshot
        bad = None if snapshot.intact else snapshot.bad_seq
        self.model.set_records(select(snapshot.records, flt), bad)
        self.record_box.clear()
        self._show_count(loaded, flt)

    def _show_count(self, loaded: Loaded, flt: AuditFilter) -> None:
        shown, total = self.model.rowCount(), len(loaded.snapshot.records)
        text = f"{shown:,} of {total:,} records"
        if flt.bounded and loaded.untimed:
            text += f" — {loaded.untimed:,} with an unreadable time are hidden by the time filter"
        self.count.setText(text)

    def clear_filters(self) -> None:
        """Every filter back to "any", applied once."""
        self.filters.clear()

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

    def _may_export(self) -> bool:
        """Whether the session may export from this view now; a refusal is said in the view
        (and, by the gate, audited with a login asked for)."""
        if self.gate is None:
            return True
        user = self.gate()
        if user is None:
            self._show_export(
                "Export refused: it needs an auditor's login. Log in and open the audit trail"
                " again.",
                BAD_TEXT,
            )
            return False
        if self.owner is not None and user != self.owner:
            log.warning("audit export from %s's view refused to %s", self.owner, user)
            self._show_export(
                f"Export refused: this view exports in the name of {self.owner}. Open the audit"
                " trail again to export as yourself.",
                BAD_TEXT,
            )
            return False
        return True

    def _ask_and_export(self) -> None:
        if not self._may_export():
            return
        if self.choose_folder is not None:
            folder = self.choose_folder()
            if folder is not None:
                self.export_to(folder)
            return
        file_choice.choose_path(
            self, "Choose a folder for the audit bundle", self.export_to, mode="folder"
        )

    def export_to(self, folder: Path) -> bool:
        """Ask the source for a bundle in ``folder`` with the current From/To bounds, off the
        GUI thread; :attr:`exported` or :attr:`export_failed` follows. False (and nothing
        follows) while another export is running, or when :attr:`gate` refuses: the folder may
        have been chosen after the station locked."""
        if self._export_thread is not None or not self._may_export():
            return False
        flt = self.current_filter()
        since, until = flt.since, flt.until

        def job() -> str:
            return self._source.export(folder, since, until)

        self._export_thread = threading.Thread(
            target=workers.run,
            args=(job, self._export_done.emit, "export"),
            name=workers.EXPORT_THREAD,
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
        workers.finished(self._export_thread)
        self._export_thread = None
        self.export_button.setEnabled(True)
        if isinstance(result, str):
            colour = ""
            if result.startswith("OK"):
                colour = theme.OK
            elif "FAIL" in result:  # the source verified the bundle and it did not hold
                colour = BAD_TEXT
            self._show_export(result, colour)
            self.exported.emit(result)
            return
        reason = str(result) or type(result).__name__
        text = f"Export failed: {reason}"
        self._show_export(text, BAD_TEXT)
        self.export_failed.emit(text)

    def _show_export(self, text: str, colour: str) -> None:
        self.export_status.setText(visible_text(text))
        self.export_status.setStyleSheet(f"color:{colour};" if colour else "")

    # -- closing -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Join the worker threads (at most :data:`~station.ui.audit.workers.JOIN_TIMEOUT_S`
        each) and drop any result still in flight. Called when the dialog closes."""
        self._closed = True
        self._generation += 1
        self.filters.timer.stop()
        for thread in (self._load_thread, self._export_thread):
            workers.let_go(thread)

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
