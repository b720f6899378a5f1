"""Saving a report as PDF or printing it, from any window, without the GUI thread touching a file
or a printer.

The window only builds the report's inputs (what it shows); ``make`` lays the document out and
the :class:`~station.services.jobs.Jobs` worker paints it, writes the file (owner-only) or drives
the printer. The chooser and the print dialog are not modal (nothing stands between a nurse and
an acknowledgement), and the outcome is said in the window's own status label. GUI thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QLabel, QWidget

from station.config.private_file import write_export
from station.services.jobs import Jobs
from station.services.printing.pdf import html_pdf, paint_pages
from station.services.printing.shift_report import Document
from station.ui import file_choice

log = logging.getLogger(__name__)

Made = Callable[[str, str], None]
"""(how: ``pdf`` or ``print``, where: the path or printer), once the report has gone out."""


class PdfOutput:
    """One window's PDF and print output. ``make`` is called on the worker thread."""

    def __init__(self, parent: QWidget, jobs: Jobs, status: QLabel) -> None:
        self._parent, self._jobs, self._status = parent, jobs, status
        self._printer: QPrinter | None = None

    def ask_save(self, make: Callable[[], Document], name: str, done: Made) -> None:
        """Ask where (a chooser that is not modal), then :meth:`save_to`."""
        file_choice.choose_path(
            self._parent,
            "Save as PDF",
            lambda path: self.save_to(path, make, done),
            start=name,
            name_filter="PDF files (*.pdf)",
        )

    def save_to(self, path: Path, make: Callable[[], Document], done: Made) -> None:
        """Lay out, render and write the PDF on the worker; the outcome in the status label."""
        self._status.setText(f"Writing {path}…")

        def work() -> int:
            doc = make()
            data = html_pdf(doc.title, doc.html, images=doc.images)
            write_export(path, data)
            return len(data)

        def written(size: int) -> None:
            self._status.setText(f"Saved {path} ({size // 1024} KB).")
            done("pdf", str(path))

        self._jobs.submit(
            work, written, self._failed(f"could not write {path}"), context=self._parent
        )

    def ask_print(self, make: Callable[[], Document], done: Made) -> None:
        """The print dialog (not modal), then :meth:`print_to` the printer chosen."""
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        dialog = QPrintDialog(printer, self._parent)
        dialog.setWindowModality(Qt.WindowModality.NonModal)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.print_to(printer, make, done))
        dialog.show()

    def print_to(self, printer: QPrinter, make: Callable[[], Document], done: Made) -> None:
        """Paint the document onto ``printer`` on the worker."""
        self._printer = printer  # alive until the job is done
        where = printer.printerName() or printer.outputFileName() or "printer"
        self._status.setText(f"Printing on {where}…")

        def work() -> int:
            doc = make()
            return paint_pages(printer, doc.title, doc.html, doc.images)

        def printed(pages: int) -> None:
            self._status.setText(f"Sent {pages} page(s) to {where}.")
            done("print", where)

        self._jobs.submit(
            work, printed, self._failed(f"could not print on {where}"), context=self._parent
        )

    def _failed(self, what: str) -> Callable[[Exception], None]:
        def failed(exc: Exception) -> None:
            log.warning("report: %s: %s", what, exc)
            self._status.setText(f"Report not made: {what}: {exc}")

        return failed
