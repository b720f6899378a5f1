"""The shift report dialog: one bed or the whole ward, over the last 8, 12 or 24 h, saved as a PDF
or sent to a printer.

Not modal (nothing may stand between a nurse and an acknowledgement), and the GUI thread only
gathers what the screen holds (:func:`bed_sheet`): trend queries, plots, layout, the file and the
printer are a :class:`~station.services.jobs.Jobs` worker's. The result, or why it failed, is said
in the dialog itself. GUI thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtPrintSupport import QPrintDialog, QPrinter, QPrinterInfo
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.config.private_file import write_export
from station.domain.alarm_history import AlarmHistory
from station.services.jobs import Jobs
from station.services.printing.pdf import paint_pages
from station.services.printing.shift_report import (
    BedSheet,
    ShiftReport,
    render_shift_report,
    shift_report_document,
)
from station.services.storage.trends import TrendStore
from station.ui import file_choice
from station.ui.beddata import BedData

log = logging.getLogger(__name__)

PERIODS_H = (8, 12, 24)
WARD = ""
"""The scope entry for every bed."""

Spans = Callable[[str], list[tuple[float, float]]]
Reported = Callable[[str, str, tuple[str, ...], str], None]
"""(how: ``<report>:pdf`` or ``<report>:print``, where: the path or printer, beds, user): for
the audit trail (``report.<report>``)."""


def bed_sheet(
    data: BedData, history: AlarmHistory, start: float, end: float, excluded: Spans | None
) -> BedSheet:
    """What the screen knows of ``data``'s bed for a report from ``start`` to ``end``: its
    patient as the tile shows it, device, state, limits and the alarms raised in the period."""
    episodes = tuple(reversed(history.episodes(data.label, since=start, until=end)))
    state = f"MONITORING SUSPENDED · {data.suspended}" if data.suspended else ""
    if data.standby and not data.suspended:
        state = "STANDBY · discharged, not monitored"
    spans = tuple(excluded(data.label)) if excluded is not None else ()
    device = data.device_id or ""
    return BedSheet(data.label, data.patient_text, device, state, data.limits, episodes, spans)


class ShiftReportDialog(QDialog):
    """Choose the beds and the period, then save a PDF or print. GUI thread only."""

    def __init__(
        self,
        beds: Mapping[str, BedData],
        history: AlarmHistory,
        trends: TrendStore | None,
        station: str,
        clock: Callable[[], float],
        jobs: Jobs,
        parent: QWidget | None = None,
        *,
        capture_s: float = 300.0,
    ) -> None:
        super().__init__(parent)
        self._capture_s = capture_s
        self.setWindowTitle("Shift report")
        self._beds, self._history, self._trends = beds, history, trends
        self._station, self._clock, self._jobs = station, clock, jobs
        self.gate: Callable[[], str | None] | None = None
        """Who may take patient data off the station now (the action layer); None: no check."""
        self.excluded: Spans | None = None
        self.on_reported: Reported | None = None
        self.scope = QComboBox()
        self.scope.addItem("Whole ward", WARD)
        for bed in beds:
            self.scope.addItem(bed, bed)
        self.period = QComboBox()
        for hours in PERIODS_H:
            self.period.addItem(f"last {hours} h", hours)
        self.save_button = QPushButton("Save PDF…")
        self.print_button = QPushButton("Print…")
        self.print_button.setEnabled(False)
        self.print_button.setToolTip("Looking for printers…")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Beds", self.scope)
        form.addRow("Period", self.period)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.print_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.status)
        lay.addLayout(buttons)
        self.save_button.clicked.connect(self._ask_and_save)
        self.print_button.clicked.connect(self._ask_and_print)
        self._printer: QPrinter | None = None
        # Asking CUPS for its printers is a socket round trip: the worker's.
        self._jobs.submit(QPrinterInfo.availablePrinterNames, self._printers, context=self)

    def show_for(self, bed: str | None) -> None:
        """Show the dialog with ``bed`` (None: the whole ward) chosen."""
        index = self.scope.findData(bed or WARD)
        self.scope.setCurrentIndex(max(index, 0))
        self.show()
        self.raise_()

    def report(self, user: str) -> ShiftReport:
        """The report the dialog's choices describe, as the screen holds it now."""
        end = self._clock()
        start = end - float(self.period.currentData()) * 3600
        bed = self.scope.currentData()
        chosen = [bed] if bed else list(self._beds)
        sheets = tuple(
            bed_sheet(self._beds[b], self._history, start, end, self.excluded) for b in chosen
        )
        return ShiftReport(self._station, start, end, user, end, sheets, self._capture_s)

    def save_to(self, path: Path, user: str = "") -> None:
        """Render the report and write it to ``path`` on the worker; the outcome is said here."""
        report = self.report(user)
        trends = self._trends
        self.status.setText(f"Writing {path}…")

        def work() -> int:
            data = render_shift_report(report, trends)
            write_export(path, data)
            return len(data)

        def done(size: int) -> None:
            self.status.setText(f"Saved {path} ({size // 1024} KB).")
            self._reported("shift:pdf", str(path), report, user)

        self._jobs.submit(work, done, self._failed(f"could not write {path}"), context=self)

    def print_to(self, printer: QPrinter, user: str = "") -> None:
        """Render the report onto ``printer`` on the worker."""
        report = self.report(user)
        trends = self._trends
        self._printer = printer  # kept alive until the job is done
        where = printer.printerName() or printer.outputFileName() or "printer"
        self.status.setText(f"Printing on {where}…")

        def work() -> int:
            doc = shift_report_document(report, trends)
            return paint_pages(printer, doc.title, doc.html, doc.images)

        def done(pages: int) -> None:
            self.status.setText(f"Sent {pages} page(s) to {where}.")
            self._reported("shift:print", where, report, user)

        self._jobs.submit(work, done, self._failed(f"could not print on {where}"), context=self)

    def _reported(self, how: str, where: str, report: ShiftReport, user: str) -> None:
        if self.on_reported is not None:
            self.on_reported(how, where, tuple(s.bed for s in report.beds), user)

    def _failed(self, what: str) -> Callable[[Exception], None]:
        def failed(exc: Exception) -> None:
            log.warning("shift report: %s: %s", what, exc)
            self.status.setText(f"Report not made: {what}: {exc}")

        return failed

    def _printers(self, names: Sequence[str]) -> None:
        self.print_button.setEnabled(bool(names))
        self.print_button.setToolTip(
            ", ".join(names) if names else "No printer is set up on this station"
        )

    def _user(self) -> str | None:
        """Who takes the report (asked of the action layer), or None when refused."""
        if self.gate is None:
            return ""
        return self.gate()

    def _ask_and_save(self) -> None:
        user = self._user()
        if user is None:
            return  # refused and audited by the action layer, which asks for a login
        scope = self.scope.currentData() or "ward"
        name = f"shift-report-{scope.replace(' ', '-').lower()}.pdf"
        file_choice.choose_path(
            self,
            "Save shift report",
            lambda path: self.save_to(path, user),
            start=name,
            name_filter="PDF files (*.pdf)",
        )

    def _ask_and_print(self) -> None:
        user = self._user()
        if user is None:
            return
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        dialog = QPrintDialog(printer, self)
        dialog.setWindowModality(Qt.WindowModality.NonModal)  # never over the ward's alarms
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.print_to(printer, user))
        dialog.show()
