"""Admit, transfer and discharge the patient of one bed (nurse or admin).

Not modal, and nothing modal over the ward: the discharge is confirmed inline. Identity typed
here goes only to the encrypted patient table (:class:`~station.presenters.ward_admin.WardAdmin`);
the audit trail gets the patient's pseudonymous id. Each change is saved on the ward admin's
worker thread: the buttons wait ("Saving…") until it is kept, and every refusal is shown in words
in the dialog, never as a crash.

Signals:
    answered(bool): a change came back: kept (True) or refused (False, :attr:`message` says why).
"""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.adt.feed import Announced
from station.domain.patients.records import Patient
from station.domain.timefmt import local_text
from station.presenters.ward_admin import WardAdmin
from station.ui import theme
from station.ui.adt_view import CensusLookup


class PatientDialog(QDialog):
    """See the module docstring. ``user``: who acts (checked by the action layer)."""

    answered = Signal(bool)

    def __init__(
        self, admin: WardAdmin, bed: str, user: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._admin, self.bed, self._user = admin, bed, user
        self.setWindowTitle(f"Patient · {bed}")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.name = QLineEdit()
        self.name.setMaxLength(120)
        self.mrn = QLineEdit()
        self.mrn.setMaxLength(32)
        self.birth = QDateEdit()
        self.birth.setDisplayFormat("yyyy-MM-dd")
        self.birth.setCalendarPopup(True)
        self.birth.setDate(QDate(1970, 1, 1))
        self.admit_button = QPushButton("Admit")
        self.admit_button.clicked.connect(self.admit)
        self.target = QComboBox()
        self.transfer_button = QPushButton("Transfer")
        self.transfer_button.clicked.connect(self.transfer)
        self.discharge_button = QPushButton("Discharge…")
        self.discharge_button.clicked.connect(self._ask_discharge)
        # The discharge is confirmed here, not in a modal box over the ward.
        self.confirm_button = QPushButton("Discharge now")
        self.confirm_button.clicked.connect(self.discharge)
        self.keep_button = QPushButton("Keep")
        self._confirm = QWidget()
        self.keep_button.clicked.connect(self._confirm.hide)
        confirm = QHBoxLayout(self._confirm)
        confirm.addWidget(QLabel(f"Discharge the patient of {bed}? The bed goes to standby."), 1)
        confirm.addWidget(self.confirm_button)
        confirm.addWidget(self.keep_button)
        self._confirm.setVisible(False)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self._admit_form = QWidget()
        form = QFormLayout(self._admit_form)
        self.lookup: CensusLookup | None = None
        feed = admin.adt_feed
        if feed is not None:  # pick the patient the hospital's ADT feed announced
            self.lookup = CensusLookup(feed.census, bed, self._admitted, lambda: feed.version)
            self.lookup.picked.connect(self._fill)
            form.addRow("From ADT", self.lookup)
        form.addRow("Name", self.name)
        form.addRow("MRN", self.mrn)
        form.addRow("Date of birth", self.birth)
        form.addRow("", self.admit_button)
        self._occupied = QWidget()
        moves = QHBoxLayout(self._occupied)
        moves.addWidget(QLabel("Transfer to"))
        moves.addWidget(self.target, 1)
        moves.addWidget(self.transfer_button)
        moves.addWidget(self.discharge_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(self._admit_form)
        lay.addWidget(self._occupied)
        lay.addWidget(self._confirm)
        lay.addWidget(self.message)
        admin.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Show the bed as it is now: its patient, or the admission form."""
        patient = self._admin.occupant(self.bed)
        self._admit_form.setVisible(patient is None)
        self._occupied.setVisible(patient is not None)
        if self._admin.fault is not None:
            self.summary.setText(f"Admissions unavailable: {self._admin.fault}")
            self._admit_form.setEnabled(False)
            return
        if patient is None:
            self.summary.setText(f"{self.bed}: no patient admitted.")
            return
        devices = ", ".join(patient.devices) or "none"
        self.summary.setText(
            f"<b>{patient.name}</b> · MRN {patient.mrn} · born {patient.birth_date.isoformat()}"
            f"<br>Admitted {local_text(patient.admitted_at)} by {patient.admitted_by}"
            f" · devices: {devices}"
        )
        self.target.clear()
        for bed in self._admin.beds:
            if bed != self.bed and self._admin.occupant(bed) is None:
                self.target.addItem(bed)
        self.transfer_button.setEnabled(self.target.count() > 0)

    def _say(self, text: str, ok: bool) -> None:
        self.message.setStyleSheet(f"color:{theme.OK if ok else theme.BAD};")
        self.message.setText(text)

    def _busy(self) -> None:
        """A change is on its way to the disk: no second one until it is kept or refused."""
        self._confirm.setVisible(False)
        for widget in (self._admit_form, self._occupied):
            widget.setEnabled(False)
        self.message.setStyleSheet("")
        self.message.setText("Saving…")

    def _answer(self, text: str, ok: bool) -> None:
        for widget in (self._admit_form, self._occupied):
            widget.setEnabled(True)
        self.refresh()
        self._say(text, ok)
        self.answered.emit(ok)

    def _refused(self, exc: Exception) -> None:
        self._answer(str(exc), ok=False)

    def _admitted(self, mrn: str) -> bool:
        return any(p.mrn.upper() == mrn.strip().upper() for p in self._admin.table.active())

    def _fill(self, who: Announced) -> None:
        """The admit form filled from the ADT census; the nurse checks it and presses Admit."""
        self.name.setText(who.name)
        self.mrn.setText(who.mrn)
        if who.birth_date is not None:
            self.birth.setDate(QDate(who.birth_date.year, who.birth_date.month, who.birth_date.day))
        self._say(f"From the ADT feed ({who.event}): check it against the wristband.", ok=True)

    def admit(self) -> None:
        """Admit the typed patient to this bed (saved on the worker; :attr:`answered` follows)."""
        qd = self.birth.date()

        def done(_patient: Patient) -> None:
            self.name.clear()
            self.mrn.clear()
            self._answer(f"Admitted to {self.bed}. Record consent from the bed's menu.", ok=True)

        self._busy()
        self._admin.admit(
            self.bed,
            self.name.text(),
            self.mrn.text(),
            date(qd.year(), qd.month(), qd.day()),
            self._user,
            done=done,
            failed=self._refused,
            context=self,
        )

    def transfer(self) -> None:
        """Move the patient to the chosen bed (:attr:`answered` follows)."""
        target = self.target.currentText()
        self._busy()
        self._admin.transfer(
            self.bed,
            target,
            self._user,
            done=lambda _p: self._answer(f"Transferred to {target}.", ok=True),
            failed=self._refused,
            context=self,
        )

    def _ask_discharge(self) -> None:
        self._confirm.setVisible(True)

    def discharge(self) -> None:
        """Discharge the patient: the bed goes to standby and its alarms end (:attr:`answered`
        follows)."""
        self._busy()
        self._admin.discharge(
            self.bed,
            self._user,
            done=lambda _p: self._answer(f"Discharged; {self.bed} is on standby.", ok=True),
            failed=self._refused,
            context=self,
        )
