"""The admin's user accounts dialog: add, reset a password or PIN, unlock, remove.

Opened only through the action layer (``users``), except on the first run, when there is no
account at all and the first one — an admin — must be created. Every change is audited with the
admin's name; no password or PIN ever reaches the audit trail or a log. Hashing a password
(scrypt, ~0.3 s) and writing ``users.json`` run on the accounts' worker thread (the action
layer's :class:`~station.services.jobs.Jobs`, shared with login checks so the file's writes stay
in order); the buttons wait ("Saving…") until the change is kept or refused, and the ward keeps
painting meanwhile. The window closes the dialog when the session is locked or changes hands.

Signals:
    answered(bool): a change came back: done (True) or refused (False, :attr:`message` says).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
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

from station.domain.ports import AuditSink
from station.domain.roles import LABELS, Role
from station.services.jobs import Jobs
from station.services.storage.accounts import Accounts
from station.ui import theme


class UsersDialog(QDialog):
    """See the module docstring. ``admin``: who acts (None on the first run); ``jobs``: the
    accounts' worker (the action layer's; the dialog makes its own when none is given)."""

    answered = Signal(bool)

    def __init__(
        self,
        accounts: Accounts,
        audit: AuditSink,
        admin: str | None,
        parent: QWidget | None = None,
        jobs: Jobs | None = None,
    ) -> None:
        super().__init__(parent)
        self._accounts, self._audit, self._admin = accounts, audit, admin
        self._jobs = jobs if jobs is not None else Jobs("accounts", self)
        first = not accounts.has_users()
        self._first = first
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

    def _run(
        self, work: Callable[[], object], text: str, then: Callable[[], None] | None = None
    ) -> None:
        """``work`` on the accounts' worker; then ``text`` (or the refusal) here."""
        self._busy(True)
        self.message.setStyleSheet("")
        self.message.setText("Saving…")

        def done(_result: object) -> None:
            self._answer(text, True)
            if then is not None:
                then()

        self._jobs.submit(work, done, lambda exc: self._answer(str(exc), False), context=self)

    def _busy(self, busy: bool) -> None:
        for button in (self.add_button, self.reset_button, self.unlock_button, self.remove_button):
            button.setEnabled(not busy)

    def _answer(self, text: str, ok: bool) -> None:
        self._busy(False)
        self._say(text, ok)
        self.refresh()
        self.answered.emit(ok)

    def add(self) -> None:
        """Create the account typed in the form (hashed and saved on the worker)."""
        secrets = self._secrets()
        if secrets is None:
            return
        name, role = self.name.text().strip(), self.role.currentData()
        password, pin = secrets
        self._clear()

        def work() -> None:
            self._accounts.create(name, role, password, pin)
            self._record("user.create", name, {"role": role.value, "pin": pin is not None})

        self._run(work, f"{name} ({LABELS[role]}) created.", self.accept if self._first else None)

    def reset(self) -> None:
        """Set the selected user's password (and PIN, if typed); whatever changed is audited,
        also when the second step is refused."""
        name, secrets = self._selected(), self._secrets()
        if name is None or secrets is None:
            return
        password, pin = secrets
        self._clear()

        def work() -> None:
            changed: list[str] = []
            try:
                self._accounts.set_password(name, password)
                changed.append("password")
                if pin is not None:
                    self._accounts.set_pin(name, pin)
                    changed.append("pin")
            finally:
                if changed:
                    self._record("user.password_reset", name, {"changed": changed})

        what = "Password and PIN" if pin is not None else "Password"
        self._run(work, f"{what} of {name} set.")

    def unlock(self) -> None:
        """Clear the selected user's lockout."""
        name = self._selected()
        if name is None:
            return

        def work() -> None:
            self._accounts.unlock(name)
            self._record("user.unlock", name, {})

        self._run(work, f"{name} unlocked.")

    def remove(self) -> None:
        """Delete the selected account (never the last admin)."""
        name = self._selected()
        if name is None:
            return

        def work() -> None:
            self._accounts.remove(name)
            self._record("user.remove", name, {})

        self._run(work, f"{name} removed.")
