"""The admin's devices dialog: the registry, the unassigned devices, and what can be done to them.

Two tables: onboarded devices (bed, signing, state) and the **unassigned devices** — those whose
messages reach no bed because nobody onboarded them — with when each was first and last seen and
how many messages it sent, for the admin to onboard. Decommissioning shows what to undo on the
broker (its password entry and ACL lines), where the device's login stays valid until then, or,
in the demo, that the embedded broker refuses it already. Moving, releasing and revoking go through
:class:`~station.presenters.ward_admin.WardAdmin`, which writes the registry; the core audits and
applies the change within a second. The registry is read and written on the ward admin's worker
thread; the table fills, and the buttons come back, when it answers.

Signals:
    refreshed(): the registry table shows the file as it was just read.
    answered(bool): a move or decommission came back: done (True) or refused (False).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.broker_credentials import CredentialRemoval
from station.domain.devices import DeviceBook
from station.domain.timefmt import local_text
from station.domain.ward import Unassigned
from station.presenters.ward_admin import WardAdmin
from station.ui import theme
from station.ui.plain_table import fill_plain, plain_table

RELEASE = "(release: no bed)"


class DevicesDialog(QDialog):
    """See the module docstring.

    Args:
        unassigned: the core's latest list of devices without a bed (from its stats).
        onboard: opens the onboarding dialog.
    """

    refreshed = Signal()
    answered = Signal(bool)

    def __init__(
        self,
        admin: WardAdmin,
        user: str,
        unassigned: Callable[[], tuple[Unassigned, ...]],
        onboard: Callable[[], object],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._admin, self._user, self._unassigned = admin, user, unassigned
        self.setWindowTitle("Devices")
        self.resize(760, 520)
        self.registry = plain_table(["Device", "Model", "Serial", "Bed", "Signing", "State"])
        self.waiting = plain_table(["Device", "First seen", "Last seen", "Messages", "Note"])
        onboard_button = QPushButton("Onboard a device…")
        onboard_button.clicked.connect(onboard)
        self.target = QComboBox()
        self.target.addItem(RELEASE, "")
        for bed in admin.beds:
            self.target.addItem(bed, bed)
        self.move_button = QPushButton("Move selected to")
        self.move_button.clicked.connect(self.move_selected)
        self.revoke_button = QPushButton("Decommission selected")
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.broker_lines = QPlainTextEdit()  # a revoked device's lines, to copy to the broker
        self.broker_lines.setReadOnly(True)
        self.broker_lines.setVisible(False)
        admission = admin.admission_text()
        actions = QHBoxLayout()
        actions.addWidget(self.move_button)
        actions.addWidget(self.target)
        actions.addStretch(1)
        actions.addWidget(self.revoke_button)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"<b>Onboarded devices</b> · {admission}"))
        lay.addWidget(self.registry, 2)
        lay.addLayout(actions)
        lay.addWidget(QLabel("<b>Unassigned devices</b>: their messages reach no bed"))
        lay.addWidget(self.waiting, 1)
        lay.addWidget(onboard_button)
        lay.addWidget(self.message)
        lay.addWidget(self.broker_lines)
        admin.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Reload both tables (the registry read on the worker; :attr:`refreshed` follows)."""
        self.show_unassigned(self._unassigned())
        self._admin.load_book(self._show_book, self._unreadable, context=self)

    def _unreadable(self, exc: Exception) -> None:
        self._say(f"Device registry unreadable: {exc}", ok=False)

    def _show_book(self, book: DeviceBook) -> None:
        fill_plain(
            self.registry,
            [
                [
                    r.device_id,
                    r.model,
                    r.serial,
                    r.bed or "—",
                    "yes" if r.signing else "no",
                    "active"
                    if r.active
                    else f"decommissioned {local_text(r.revoked_at or 0)} by {r.revoked_by}",
                ]
                for r in book
            ],
        )
        self.refreshed.emit()

    def show_unassigned(self, devices: tuple[Unassigned, ...]) -> None:
        """Refresh the unassigned panel (the window calls this with each stats update)."""
        fill_plain(
            self.waiting,
            [
                [
                    u.device_id,
                    local_text(u.first_seen, seconds=True),
                    local_text(u.last_seen, seconds=True),
                    str(u.count),
                    "onboarded, no bed" if u.onboarded else "not onboarded",
                ]
                for u in devices
            ],
        )

    def _selected(self) -> str | None:
        rows = self.registry.selectionModel().selectedRows()
        if not rows:
            self._say("Select a device in the upper table first.", ok=False)
            return None
        item = self.registry.item(rows[0].row(), 0)
        return item.text() if item is not None else None

    def _say(self, text: str, ok: bool) -> None:
        self.message.setStyleSheet(f"color:{theme.OK if ok else theme.BAD};")
        self.message.setText(text)

    def _busy(self, busy: bool) -> None:
        for button in (self.move_button, self.revoke_button):
            button.setEnabled(not busy)
        if busy:
            self.message.setStyleSheet("")
            self.message.setText("Saving…")

    def _answer(self, text: str, ok: bool) -> None:
        self._busy(False)
        self._say(text, ok)
        self.answered.emit(ok)

    def move_selected(self) -> bool:
        """Move the selected device to the chosen bed, or release it (on the worker;
        :attr:`answered` follows). False if no device is selected."""
        device = self._selected()
        if device is None:
            return False
        bed = str(self.target.currentData())
        self._busy(True)
        self._admin.reassign(
            device,
            bed,
            self._user,
            done=lambda _none: self._answer(f"{device} → {bed or 'no bed'}.", ok=True),
            failed=lambda exc: self._answer(str(exc), ok=False),
            context=self,
        )
        return True

    def revoke_selected(self) -> bool:
        """Decommission the selected device: its later messages are refused (on the worker;
        :attr:`answered` follows). False if no device is selected."""
        device = self._selected()
        if device is None:
            return False
        self._busy(True)
        self._admin.revoke(
            device,
            self._user,
            done=lambda removal: self._revoked(device, removal),
            failed=lambda exc: self._answer(str(exc), ok=False),
            context=self,
        )
        return True

    def _revoked(self, device: str, removal: CredentialRemoval | None) -> None:
        text = f"{device} decommissioned: its messages are refused from now on."
        if removal is not None and removal.applied:
            text += " The demo's embedded broker refuses its login already."
        elif removal is not None:
            text += " Its broker login is still valid: apply these lines on the broker."
        self.broker_lines.setPlainText("" if removal is None else "\n".join(removal.lines()))
        self.broker_lines.setVisible(removal is not None and not removal.applied)
        self._answer(text, ok=True)
