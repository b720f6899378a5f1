"""Admit, transfer and discharge the patient of one bed (nurse or admin).

Not modal: the ward stays in view and usable behind it. Identity typed here goes only to the
encrypted patient table (:class:`~station.services.ward_admin.WardAdmin`); the audit trail gets
the patient's pseudonymous id. Every refusal is shown in words in the dialog, never as a crash.
"""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.devices import RegistryError
from station.domain.patients import PatientError
from station.domain.timefmt import local_text
from station.services.patient_store import PatientStoreError
from station.services.ward_admin import WardAdmin
from station.ui import theme


class PatientDialog(QDialog):
    """See the module docstring. ``user``: who acts (checked by the action layer)."""

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
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self._admit_form = QWidget()
        form = QFormLayout(self._admit_form)
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

    def admit(self) -> bool:
        """Admit the typed patient to this bed."""
        qd = self.birth.date()
        try:
            self._admin.admit(
                self.bed,
                self.name.text(),
                self.mrn.text(),
                date(qd.year(), qd.month(), qd.day()),
                self._user,
            )
        except (PatientError, PatientStoreError, RegistryError, OSError) as exc:
            self._say(str(exc), ok=False)
            return False
        self.name.clear()
        self.mrn.clear()
        self._say(f"Admitted to {self.bed}. Record consent from the bed's menu.", ok=True)
        return True

    def transfer(self) -> bool:
        """Move the patient to the chosen bed."""
        target = self.target.currentText()
        try:
            self._admin.transfer(self.bed, target, self._user)
        except (PatientError, PatientStoreError, RegistryError) as exc:
            self._say(str(exc), ok=False)
            return False
        self._say(f"Transferred to {target}.", ok=True)
        return True

    def _ask_discharge(self) -> None:
        answer = QMessageBox.question(
            self, "Discharge", f"Discharge the patient of {self.bed}? The bed goes to standby."
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.discharge()

    def discharge(self) -> bool:
        """Discharge the patient: the bed goes to standby and its alarms end."""
        try:
            self._admin.discharge(self.bed, self._user)
        except (PatientError, PatientStoreError) as exc:
            self._say(str(exc), ok=False)
            return False
        self._say(f"Discharged; {self.bed} is on standby.", ok=True)
        return True
