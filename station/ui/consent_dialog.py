"""Record and withdraw a patient's consent, per purpose (GDPR), at the bedside.

Each purpose shows where it stands (given or not, by whom, captured by whom, under which policy
version, when) and can be given or withdrawn; who gives it is the patient or a named
representative, who captures it is the logged-in user. What each purpose governs is said next to
it, because a nurse must know what a refusal does and does not stop:

- display at the station: without it the patient's name is not shown on the ward screen, while
  the vitals and alarms stay on screen for their care;
- storage in the historian: without it nothing of the patient goes to InfluxDB;
- export and sharing: without it exports leave the patient out.

Every event is saved on the ward admin's worker thread and audited by
:class:`~station.presenters.ward_admin.WardAdmin`; the buttons wait ("Saving…") until it is kept.

Signals:
    answered(bool): a consent came back: kept (True) or refused (False, :attr:`message` says why).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.patients.records import LABELS, ConsentEvent, Patient, Purpose
from station.domain.timefmt import local_text
from station.presenters.ward_admin import WardAdmin
from station.ui import theme

EFFECT = {
    Purpose.DISPLAY: "Without it the name is hidden on the ward screen; vitals and alarms stay "
    "on screen for care.",
    Purpose.STORAGE: "Without it nothing of this patient goes to the historian (InfluxDB).",
    Purpose.EXPORT: "Without it exports leave this patient out.",
}


def describe(event: ConsentEvent | None) -> str:
    """One line on where a purpose stands."""
    if event is None:
        return "not recorded (treated as not given)"
    who = "the patient" if event.given_by == "patient" else f"{event.representative} (rep.)"
    state = "GIVEN" if event.granted else "WITHDRAWN"
    return (
        f"{state} by {who}, {local_text(event.at)}, captured by {event.captured_by},"
        f" policy {event.policy_version}"
    )


class ConsentDialog(QDialog):
    """See the module docstring. ``user``: who captures (checked by the action layer)."""

    answered = Signal(bool)

    def __init__(
        self, admin: WardAdmin, patient: Patient, user: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._admin, self.patient, self._user = admin, patient, user
        self.setWindowTitle(f"Consent · {patient.name} · {patient.bed or 'discharged'}")
        self.given_by = QComboBox()
        self.given_by.addItem("the patient", "patient")
        self.given_by.addItem("a representative", "representative")
        self.representative = QLineEdit()
        self.representative.setPlaceholderText("representative's name and relation")
        self.note = QLineEdit()
        self.note.setPlaceholderText("optional note")
        form = QFormLayout()
        form.addRow("Given by", self.given_by)
        form.addRow("Representative", self.representative)
        form.addRow("Note", self.note)
        grid = QGridLayout()
        self.state: dict[Purpose, QLabel] = {}
        self.give: dict[Purpose, QPushButton] = {}
        self.withdraw: dict[Purpose, QPushButton] = {}
        for row, purpose in enumerate(Purpose):
            title = QLabel(f"<b>{LABELS[purpose]}</b><br><small>{EFFECT[purpose]}</small>")
            title.setWordWrap(True)
            self.state[purpose] = QLabel("")
            self.state[purpose].setWordWrap(True)
            self.give[purpose] = QPushButton("Give")
            self.give[purpose].clicked.connect(lambda _=False, p=purpose: self.record(p, True))
            self.withdraw[purpose] = QPushButton("Withdraw")
            self.withdraw[purpose].clicked.connect(lambda _=False, p=purpose: self.record(p, False))
            grid.addWidget(title, 2 * row, 0, 1, 3)
            grid.addWidget(self.state[purpose], 2 * row + 1, 0)
            grid.addWidget(self.give[purpose], 2 * row + 1, 1)
            grid.addWidget(self.withdraw[purpose], 2 * row + 1, 2)
        self.history = QListWidget()
        self.history.setStyleSheet(f"background:{theme.TILE}; color:{theme.TEXT};")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(grid)
        lay.addWidget(QLabel("History"))
        lay.addWidget(self.history)
        lay.addWidget(self.message)
        self.refresh()

    def refresh(self) -> None:
        """Show each purpose's latest event and the whole history."""
        events = self._admin.consents(self.patient)
        for purpose in Purpose:
            latest = next((e for e in reversed(events) if e.purpose is purpose), None)
            self.state[purpose].setText(describe(latest))
            given = latest is not None and latest.granted
            colour = theme.OK if given else theme.WARN
            self.state[purpose].setStyleSheet(f"color:{colour};")
        self.history.clear()
        for event in events:
            self.history.addItem(f"{LABELS[event.purpose]}: {describe(event)}")

    def record(self, purpose: Purpose, granted: bool) -> None:
        """Record that consent for ``purpose`` was given or withdrawn (saved on the worker;
        :attr:`answered` follows)."""
        given_by = str(self.given_by.currentData())
        representative = self.representative.text().strip() if given_by != "patient" else ""
        self._busy(True)
        self.message.setStyleSheet("")
        self.message.setText("Saving…")
        self._admin.record_consent(
            self.patient,
            purpose,
            granted=granted,
            given_by=given_by,
            representative=representative,
            user=self._user,
            note=self.note.text().strip(),
            done=lambda _event: self._answer(
                f"{LABELS[purpose]}: {'given' if granted else 'withdrawn'}.", ok=True
            ),
            failed=lambda exc: self._answer(str(exc), ok=False),
            context=self,
        )

    def _busy(self, busy: bool) -> None:
        for button in (*self.give.values(), *self.withdraw.values()):
            button.setEnabled(not busy)

    def _answer(self, text: str, ok: bool) -> None:
        self._busy(False)
        self.message.setStyleSheet(f"color:{theme.OK if ok else theme.BAD};")
        self.message.setText(text)
        if ok:
            self.refresh()
        self.answered.emit(ok)
