"""pytest-qt: the shift report (issue 15, point 8) of a ward with a Unicode-named patient, an
acknowledged alarm and stored trends, saved as PDF and printed through a real QPrinter, read
back with poppler (``pdftotext``, ``pdftoppm``).

The window, core and ward admin are wired as the app wires them; the trend store, the patient
table and the audit trail are real files; the report renders on the dialog's worker thread.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtPrintSupport import QPrinter
from pytestqt.qtbot import QtBot

from station.config.credentials import use_memory_keyring
from station.config.settings import from_mapping
from station.domain.patients.records import Purpose
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.services.storage.trends import TrendSample, TrendStore
from station.ui.alarm_strip import AlarmStrip
from station.ui.main_window import MainWindow
from station.ui.shift_report_dialog import ShiftReportDialog
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Wiring

NAME, OTHER = "Łukasz Wójcik", "Çağlar Öztürk"


@dataclass
class Ward:
    window: MainWindow
    core: CoreWorker
    admin: WardAdmin
    clock: FakeClock
    qtbot: QtBot

    def dialog(self, bed: str | None) -> ShiftReportDialog:
        self.window.bed_windows.open_report(bed)
        dialog = self.window.bed_windows.report_dialog
        assert dialog is not None
        return dialog

    def save(self, dialog: ShiftReportDialog, path: Path) -> tuple[object, ...]:
        with self.qtbot.waitSignal(self.window.report_made, timeout=20_000) as made:
            dialog.save_to(path, "nurse-ann")
        assert dialog.status.text().startswith(f"Saved {path}")
        return tuple(made.args)


@pytest.fixture
def ward(qtbot: QtBot, wire: Wiring, tmp_path: Path) -> Iterator[Ward]:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping(
        {
            "station": {"data_dir": str(data), "name": "Ward Łódź"},
            "ward": {"beds": 2, "devices": {"mon-1": 1, "mon-2": 2}},
        }
    )
    trends = TrendStore(data / "trends.sqlite", clock=lambda: clock.now)
    trends.open()
    start = clock.now - 4 * 3600
    trends.add(
        [
            TrendSample(bed, dev, int((start + s) * 1000), {"heartrate": 70 + s % 40, "oxygen": 97})
            for s in range(0, 4 * 3600, 30)
            for bed, dev in (("Bed 1", "mon-1"), ("Bed 2", "mon-2"))
        ]
    )
    with use_memory_keyring():
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        admin = WardAdmin(settings, audit, clock=clock)
        screen = wire(settings, clock, audit, user="ann", admin=admin, trends=trends)
        assert screen.core is not None
        yield Ward(screen.window, screen.core, admin, clock, qtbot)
        screen.window.bed_windows.shutdown()
        assert audit.close(5.0)
    trends.close()


def _text(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    )
    return done.stdout


def test_a_shift_report_names_the_patient_and_its_alarms_and_renders(
    ward: Ward, tmp_path: Path
) -> None:
    patient = ward.admin.admit_now("Bed 1", NAME, "MRN-1", date(1960, 1, 2), "nurse-ann")
    for purpose in (Purpose.DISPLAY, Purpose.EXPORT):
        ward.admin.record_consent_now(
            patient, purpose, granted=True, given_by="patient", representative="", user="ann"
        )
    ward.core.on_accepted(accepted("mon-1", ward.clock.now, heartrate=170))
    raised = ward.window.alarm_list.alarms()[0]
    ward.clock.now += 12
    ward.core.acknowledge(raised.alarm_id, OTHER)
    dialog = ward.dialog("Bed 1")
    assert not dialog.isModal()
    assert dialog.findChild(AlarmStrip) is not None  # the ward's alarms stay in reach

    pdf = tmp_path / "shift.pdf"
    how, where, beds, user = ward.save(dialog, pdf)
    assert (how, where, beds, user) == ("shift:pdf", str(pdf), ("Bed 1",), "nurse-ann")
    assert pdf.stat().st_mode & 0o777 == 0o600
    text = _text(pdf)
    for expected in (NAME, OTHER, "Ward Łódź", "HR 170 > 120", "12 s", "Heart rate (bpm)"):
        assert expected in text, expected
    assert "Page 1 of " in text
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True)  # fmt: skip
    page = tmp_path / "page-1.png"
    assert page.read_bytes().startswith(b"\x89PNG")


def test_a_patient_without_export_consent_is_left_out_of_the_file(
    ward: Ward, tmp_path: Path
) -> None:
    ward.admin.admit_now("Bed 2", OTHER, "MRN-2", date(1970, 3, 4), "nurse-ann")
    dialog = ward.dialog(None)
    pdf = tmp_path / "ward.pdf"
    _, _, beds, _ = ward.save(dialog, pdf)
    assert beds == ("Bed 1", "Bed 2")
    text = _text(pdf)
    assert OTHER not in text
    assert "has not consented to export" in text
    assert "no patient admitted" in text  # Bed 1, anonymous, is in


def test_a_file_that_cannot_be_written_is_said_in_the_dialog(ward: Ward, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    dialog = ward.dialog("Bed 1")
    dialog.save_to(blocker / "shift.pdf")
    ward.qtbot.waitUntil(lambda: dialog.status.text().startswith("Report not made"), timeout=20_000)
    assert "could not write" in dialog.status.text()


def test_printing_goes_through_a_real_printer_object(ward: Ward, tmp_path: Path) -> None:
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    out = tmp_path / "printed.pdf"
    printer.setOutputFileName(str(out))
    dialog = ward.dialog("Bed 2")
    with ward.qtbot.waitSignal(ward.window.report_made, timeout=20_000) as made:
        dialog.print_to(printer, "nurse-ann")
    assert made.args[0] == "shift:print"
    assert "Sent 1 page(s)" in dialog.status.text()
    assert "Bed 2" in _text(out)


def test_the_print_button_says_when_no_printer_is_set_up(ward: Ward) -> None:
    dialog = ward.dialog(None)
    ward.qtbot.waitUntil(lambda: dialog.print_button.toolTip() != "Looking for printers…")
    if dialog.print_button.isEnabled():
        assert dialog.print_button.toolTip()  # the printers' names
    else:
        assert dialog.print_button.toolTip() == "No printer is set up on this station"
    assert dialog.windowModality() == Qt.WindowModality.NonModal
