"""What the admin and the admit dialog see of the hospital's ADT feed.

- :class:`AdtMessagesDialog` (Manage ▾ ADT messages…, admin): the messages received, newest
  first: time, event, bed, the ACK sent and what the station did, and why. A patient is shown as
  the tile shows them (the name with display consent, else hidden), looked up by the pseudonym
  the journal keeps; nothing else of their identity is kept there. Opening it tells the feed the
  refusals are seen (the "ADT message refused" alarm ends).
- :class:`CensusLookup` (in the admit form): the patients the feed announced for this ward, found
  by name or MRN, so that a nurse picks the patient instead of typing name, MRN and birth date.

Both read the :class:`~station.domain.adt.feed.AdtFeed` in memory on the GUI thread (no I/O)
and redraw on a one-second timer when its ``version`` moved, never per message. Text from the
network is shown as plain text only (table and list items, plain labels).

Signals (CensusLookup):
    picked(Announced): the nurse chose a patient of the census.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.adt.feed import AdtFeed, Announced, Census
from station.domain.patients.records import Purpose
from station.domain.timefmt import local_text
from station.presenters.ward_admin import WardAdmin
from station.ui.plain_table import fill_plain, plain_table

REFRESH_MS = 1000
COLUMNS = ["Time", "Message", "Bed", "ACK", "Outcome", "Reason", "Patient", "Control id", "From"]


def patient_shown(admin: WardAdmin) -> Callable[[str], str]:
    """How the view names the patient of a pseudonymous id: as the tile does (the name with
    display consent, else hidden), or as no longer on record."""

    def shown(patient_id: str) -> str:
        patient = admin.table.patient(patient_id)
        if patient is None:
            return "(no longer on record)"
        if admin.allows(patient, Purpose.DISPLAY):
            return patient.name
        return "Name hidden (no consent)"

    return shown


def _plain(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


class AdtMessagesDialog(QDialog):
    """See the module docstring. GUI thread only.

    Args:
        feed: the feed's journal and state.
        patient_text: how a pseudonymous id is shown (as the tile shows that patient).
        now: wall time, for "today".
        parent: the owning window.
    """

    def __init__(
        self,
        feed: AdtFeed,
        patient_text: Callable[[str], str],
        now: Callable[[], float],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._feed, self._patient_text, self._now = feed, patient_text, now
        self._shown = -1
        self.setWindowTitle("ADT messages")
        self.resize(1000, 560)
        self.summary = _plain()
        self.table = plain_table(COLUMNS)
        lay = QVBoxLayout(self)  # a box layout: the ward's alarm strip goes on top
        lay.addWidget(self.summary)
        lay.addWidget(self.table, 1)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    def refresh(self) -> None:
        """Redraw when the feed changed since the last time (or on the first call)."""
        if self._feed.version == self._shown:
            return
        self._shown = self._feed.version
        entries = list(reversed(self._feed.journal.entries()))
        refused = sum(1 for e in entries if e.ack in {"AE", "AR"})
        self.summary.setText(
            f"ADT feed: {self._feed.state} · {self._feed.today(self._now())} messages today"
            f" · {refused} of the {len(entries)} listed refused"
        )
        rows = [
            [
                local_text(e.at, seconds=True),
                e.event or "?",
                e.bed,
                e.ack or "none",
                e.outcome,
                e.reason,
                self._patient_text(e.patient) if e.patient else "",
                e.control_id,
                e.peer,
            ]
            for e in entries
        ]
        fill_plain(self.table, rows)

    def showEvent(self, event: QShowEvent) -> None:
        """Shown: the refusals listed are seen."""
        super().showEvent(event)
        self._feed.seen()


class CensusLookup(QWidget):
    """See the module docstring. GUI thread only.

    Args:
        census: the patients the feed announced.
        bed: the admit dialog's bed (its patients are listed first).
        admitted: whether an MRN is admitted at the station already (not offered).
        version: the feed's change counter (the list redraws when it moves).
    """

    picked = Signal(object)

    def __init__(
        self,
        census: Census,
        bed: str,
        admitted: Callable[[str], bool],
        version: Callable[[], int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._census, self._bed, self._admitted, self._version = census, bed, admitted, version
        self._shown = -1
        self._found: list[Announced] = []
        self.search = QLineEdit()
        self.search.setPlaceholderText("Name or MRN, as the hospital's ADT feed sent it")
        self.search.textChanged.connect(lambda _text: self.refresh(force=True))
        self.matches = QListWidget()
        self.matches.setMaximumHeight(120)
        self.matches.itemDoubleClicked.connect(lambda _item: self.use())
        self.use_button = QPushButton("Use")
        self.use_button.clicked.connect(lambda _checked: self.use())
        row = QHBoxLayout()
        row.addWidget(self.search, 1)
        row.addWidget(self.use_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.matches)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """List the census entries matching the search (this bed's first); redrawn only when
        the search or the feed changed."""
        if not force and self._version() == self._shown:
            return
        self._shown = self._version()
        found = [w for w in self._census.find(self.search.text()) if not self._admitted(w.mrn)]
        found.sort(key=lambda w: w.bed != self._bed)  # stable: newest first within each
        self._found = found
        self.matches.clear()
        for who in found:
            born = who.birth_date.isoformat() if who.birth_date else "birth date unknown"
            where = f"{who.bed} ({who.event})" if who.bed else f"no bed here ({who.event})"
            self.matches.addItem(QListWidgetItem(f"{who.name} · MRN {who.mrn} · {born} · {where}"))
        if found:
            self.matches.setCurrentRow(0)
        self.use_button.setEnabled(bool(found))

    def use(self) -> None:
        """Hand the selected patient to the admit form (:attr:`picked`)."""
        row = self.matches.currentRow()
        if 0 <= row < len(self._found):
            self.picked.emit(self._found[row])
