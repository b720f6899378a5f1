"""The admin's user accounts dialog: add, reset a password or PIN, unlock, remove.

Opened only through the action layer (``users``), except on the first run, when there is no
account at all and the first one — an admin — must be created. Every change is audited with the
admin's name; no password or PIN ever reaches the audit trail or a log. Setting a password
hashes it here, on the GUI thread (~0.3 s): an admin task, rare enough to accept the pause.
The window closes the dialog when the session is locked or changes hands.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.roles import LABELS, Role
from station.services.accounts import AccountError, Accounts
from station.services.core import AuditSink
from station.ui import theme


class UsersDialog(QDialog):
    """See the module docstring. ``admin``: who acts (None on the first run)."""

    def __init__(
        self, accounts: Accounts, audit: AuditSink, admin: str | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._accounts, self._audit, self._admin = accounts, audit, admin
        first = not accounts.has_users()
        self.setWindowTitle("Create the administrator" if first else "User accounts")
        self.listing = QListWidget()
        self.name = QLineEdit()
        self.role = QComboBox()
        for role in Role:
            self.role.addItem(LABELS[role], role)
        if first:
            self.role.setCurrentIndex(list(Role).index(Role.ADMIN))
            self.role.setEnabled(False)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm = QLineEdit()
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin = QLineEdit()
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin.setPlaceholderText("optional, 4–8 digits; nurses and ward staff only")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.add_button = QPushButton("Create admin" if first else "Add user")
        self.add_button.clicked.connect(self.add)
        self.reset_button = QPushButton("Set password (and PIN) of selected")
        self.reset_button.clicked.connect(self.reset)
        self.unlock_button = QPushButton("Unlock selected")
        self.unlock_button.clicked.connect(self.unlock)
        self.remove_button = QPushButton("Remove selected")
        self.remove_button.clicked.connect(self.remove)
        form = QFormLayout()
        form.addRow("User name", self.name)
        form.addRow("Role", self.role)
        form.addRow("Password", self.password)
        form.addRow("Password again", self.confirm)
        form.addRow("PIN", self.pin)
        row = QHBoxLayout()
        for button in (self.reset_button, self.unlock_button, self.remove_button):
            row.addWidget(button)
            button.setVisible(not first)
        lay = QVBoxLayout(self)
        if not first:
            lay.addWidget(self.listing)
            lay.addLayout(row)
        lay.addLayout(form)
        lay.addWidget(self.add_button)
        lay.addWidget(self.message)
        self.refresh()

    def refresh(self) -> None:
        """List the accounts."""
        self.listing.clear()
        for name, role, locked in self._accounts.users():
            self.listing.addItem(f"{name} · {LABELS[role]}{' · LOCKED' if locked else ''}")

    def _selected(self) -> str | None:
        item = self.listing.currentItem()
        return None if item is None else item.text().split(" · ")[0]

    def _say(self, text: str, ok: bool) -> None:
        self.message.setStyleSheet(f"color:{theme.OK if ok else theme.BAD}; font-weight:700;")
        self.message.setText(text)

    def _secrets(self) -> tuple[str, str | None] | None:
        if self.password.text() != self.confirm.text():
            self._say("The two passwords differ.", False)
            return None
        pin = self.pin.text() or None
        return self.password.text(), pin

    def _clear(self) -> None:
        for field in (self.password, self.confirm, self.pin):
            field.clear()

    def _record(self, action: str, target: str, details: dict[str, object]) -> None:
        self._audit.record(
            action,
            actor=self._admin or target,
            role="admin",
            target=target,
            details=details,
        )

    def add(self) -> None:
        """Create the account typed in the form."""
        secrets = self._secrets()
        if secrets is None:
            return
        name, role = self.name.text().strip(), self.role.currentData()
        try:
            self._accounts.create(name, role, secrets[0], secrets[1])
        except AccountError as exc:
            self._say(str(exc), False)
            return
        finally:
            self._clear()
        self._record("user.create", name, {"role": role.value, "pin": secrets[1] is not None})
        self._say(f"{name} ({LABELS[role]}) created.", True)
        self.refresh()
        if self.windowTitle() == "Create the administrator":
            self.accept()

    def reset(self) -> None:
        """Set the selected user's password (and PIN, if typed); whatever changed is audited,
        also when the second step is refused."""
        name, secrets = self._selected(), self._secrets()
        if name is None or secrets is None:
            return
        changed: list[str] = []
        try:
            self._accounts.set_password(name, secrets[0])
            changed.append("password")
            if secrets[1] is not None:
                self._accounts.set_pin(name, secrets[1])
                changed.append("pin")
        except AccountError as exc:
            self._say(str(exc), False)
        else:
            self._say(f"{' and '.join(changed).capitalize()} of {name} set.", True)
        finally:
            self._clear()
            if changed:
                self._record("user.password_reset", name, {"changed": changed})

    def unlock(self) -> None:
        """Clear the selected user's lockout."""
        name = self._selected()
        if name is None:
            return
        self._accounts.unlock(name)
        self._record("user.unlock", name, {})
        self._say(f"{name} unlocked.", True)
        self.refresh()

    def remove(self) -> None:
        """Delete the selected account (never the last admin)."""
        name = self._selected()
        if name is None:
            return
        try:
            self._accounts.remove(name)
        except AccountError as exc:
            self._say(str(exc), False)
            return
        self._record("user.remove", name, {})
        self._say(f"{name} removed.", True)
        self.refresh()
