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
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import (
    QDate,
    QDateTime,
    QModelIndex,
    QTime,
)
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

from station.config.private_file import write_export
from station.domain.alarm_history import COMMENT_MARKS, MAX_COMMENT, AlarmEpisode, AlarmHistory
from station.services.jobs import Jobs
from station.services.printing.shift_report import Document, alarm_report_document
from station.ui import file_choice, theme
from station.ui.episode_model import STATION_BED, EpisodeModel, bed_order, span_text
from station.ui.pdf_output import PdfOutput

log = logging.getLogger(__name__)

PERIODS_DAYS = (("Last 24 h", 1), ("Last 7 days", 7), ("Last 30 days", 30), ("Last year", 366))
CHOSEN = 0
"""The period entry whose dates are chosen in the date fields."""
WARD = "Ward"
SUMMARY_WINDOW_S = 86_400.0


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
        self.on_report: Callable[[str, str, tuple[str, ...], str], None] | None = None
        """An alarm report went out: (how, where, beds, user), for the audit trail."""
        self.station = ""
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
        self.pdf_button = QPushButton("Save PDF…")
        self.pdf_button.clicked.connect(lambda: self._report("pdf"))
        self.print_button = QPushButton("Print…")
        self.print_button.clicked.connect(lambda: self._report("print"))
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
        top.addWidget(self.pdf_button)
        top.addWidget(self.print_button)
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
            for bed in sorted(self._history.beds(), key=bed_order):
                self.bed_filter.addItem(bed or STATION_BED, bed)
            found = self.bed_filter.findData(keep) if keep is not None else 0
            self.bed_filter.setCurrentIndex(max(found, 0))
        finally:
            self.bed_filter.blockSignals(False)
        self._show()

    def export_to(self, path: Path) -> int:
        """Write the episodes shown (the current filter) as CSV here and now, owner-only;
        return the rows written (the tests' way; the button writes on the worker:
        :meth:`export_on_worker`). A failure is said in the dialog and returns 0: an export
        must never take the station down."""
        episodes, left_out = self._exportable(self.model.episodes())
        try:
            write_export(path, self._history.to_csv(episodes).encode("utf-8"))
        except OSError as exc:
            self._export_failed(path, exc)
            return 0
        self._exported(path, len(episodes), left_out)
        return len(episodes)

    def export_on_worker(self, path: Path, done: Callable[[int], None]) -> None:
        """Write the CSV on the ``jobs`` worker (the GUI thread never writes a file); ``done``
        gets the rows written."""
        jobs = self.jobs
        if jobs is None:
            rows = self.export_to(path)
            if rows:
                done(rows)
            return
        episodes, left_out = self._exportable(self.model.episodes())
        data = self._history.to_csv(episodes).encode("utf-8")
        self.status.setText(f"Writing {path}…")

        def written(_none: None) -> None:
            self._exported(path, len(episodes), left_out)
            done(len(episodes))

        jobs.submit(
            lambda: write_export(path, data),
            written,
            lambda exc: self._export_failed(path, exc),
            context=self,
        )

    def _exported(self, path: Path, rows: int, left_out: int) -> None:
        note = f" {left_out} left out: no export consent." if left_out else ""
        self.status.setText(f"Exported {rows} alarms to {path}.{note}")

    def _export_failed(self, path: Path, exc: Exception) -> None:
        log.warning("alarm history export to %s failed: %s", path, exc)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        self.status.setText(f"Export failed: could not write {path}: {reason}")

    def _ask_and_export(self) -> None:
        user = None
        if self.gate is not None:
            user = self.gate()
            if user is None:
                return  # refused and audited by the action layer, which asks for a login

        def chosen(path: Path) -> None:
            def done(rows: int) -> None:
                if rows and self.on_exported is not None:
                    self.on_exported(str(path), rows, user or "")

            self.export_on_worker(path, done)

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

    def report_document(self, user: str) -> Document:
        """The alarm report of what the table shows (patients without export consent left out,
        as in the CSV). Pure layout: the worker calls it."""
        episodes = self._exportable(self.model.episodes())[0]
        since, until = self.period_span()
        scope = self.bed_filter.currentText()
        now = self._clock()
        return alarm_report_document(
            self.station, scope, since, min(until, now), episodes, user, now
        )

    def _report(self, how: str) -> None:
        jobs = self.jobs
        user = ""
        if self.gate is not None:
            gated = self.gate()
            if gated is None:
                return  # refused and audited by the action layer, which asks for a login
            user = gated
        if jobs is None:
            self.status.setText("Reports are not available here.")
            return
        document = self.report_document(user)  # built here: the table is the GUI's
        output = PdfOutput(self, jobs, self.status)
        beds = tuple(sorted({e.bed for e in self.model.episodes()}))

        def done(out: str, where: str) -> None:
            if self.on_report is not None:
                self.on_report(f"alarms:{out}", where, beds, user)

        if how == "pdf":
            output.ask_save(lambda: document, "alarm-report.pdf", done)
        else:
            output.ask_print(lambda: document, done)

    def _exportable(self, episodes: list[AlarmEpisode]) -> tuple[list[AlarmEpisode], int]:
        """The episodes that may leave the station, and how many were left out."""
        if self.excluded is None:
            return episodes, 0
        spans = {bed: self.excluded(bed) for bed in {e.bed for e in episodes}}
        kept = [
            e for e in episodes if not any(a <= e.raised_at < b for a, b in spans.get(e.bed, ()))
        ]
        return kept, len(episodes) - len(kept)

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
            for b, r in sorted(rates.items(), key=lambda i: bed_order(i[0]))
        )
        stats = self._history.time_to_ack_stats(bed)
        if stats["count"]:
            ack_text = (
                f"median {span_text(stats['median'])}, p90 {span_text(stats['p90'])}"
                f" ({stats['count']} acknowledged)"
            )
        else:
            ack_text = "none acknowledged"
        return (
            f"Alarms per bed per hour (last 24 h): {rate_text or 'none'}."
            f"  Time to acknowledge: {ack_text}."
        )
