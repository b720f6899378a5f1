"""Log in, switch user, or — for an alarm — acknowledge in an emergency without a login.

Non-modal towards the ward: the screen behind keeps painting and sounding while it is open. The
password (or PIN) is checked by the action layer on a worker thread; this dialog only shows the
outcome. An emergency acknowledge needs a reason, which goes into the audit trail; the action
layer decides whether one is allowed (a physiological alarm, a few in a while), and when it is
not, the dialog says why as it opens and the login is the way to acknowledge.

What is typed into the user field goes only to the action layer's check, which never names it in
the audit trail unless it is an existing account: it may be a password typed into the wrong field.
"""

from __future__ import annotations

import contextlib

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.session import SessionView
from station.presenters.actions import ActionLayer
from station.ui import theme


class LoginDialog(QDialog):
    """See the module docstring. ``alarm_id``: offer the emergency acknowledge for that alarm."""

    def __init__(
        self,
        actions: ActionLayer,
        why: str,
        alarm_id: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._actions = actions
        self._alarm_id = alarm_id
        self._waiting = False  # this dialog asked for a check and awaits its answer
        self.emergency_done = False
        self.setWindowTitle("Log in")
        self.why = QLabel(why)
        self.why.setWordWrap(True)
        self.user = QComboBox()
        self.user.setEditable(True)
        # A password typed into the name field by mistake must not become a list entry.
        self.user.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.user.addItems([name for name, _role, _locked in actions.accounts.users()])
        last = actions.session.view().last_user
        if last:
            self.user.setCurrentText(last)
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.returnPressed.connect(self.submit)
        self.use_pin = QCheckBox("PIN (quick switch; not for admins or auditors)")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color:{theme.BAD}; font-weight:700;")
        form = QFormLayout()
        form.addRow("User", self.user)
        form.addRow("Password", self.secret)
        form.addRow("", self.use_pin)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.why)
        lay.addLayout(form)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)
        self.reason = QLineEdit()
        self.emergency = QPushButton("Acknowledge without login")
        self.emergency_note = QLabel("")
        self.emergency_note.setWordWrap(True)
        if alarm_id is not None:
            box = QGroupBox("Emergency: no time to log in")
            inner = QFormLayout(box)
            self.reason.setPlaceholderText("Why (recorded in the audit trail)")
            inner.addRow("Reason", self.reason)
            inner.addRow("", self.emergency)
            inner.addRow(self.emergency_note)
            self.emergency.clicked.connect(self.emergency_acknowledge)
            refused = actions.emergency_refusal(alarm_id)
            if refused:  # said before a reason is typed in vain; the login still works
                self.emergency_note.setText(f"Without a login: no — {refused}.")
                self.reason.setEnabled(False)
                self.emergency.setEnabled(False)
            lay.addWidget(box)
        actions.login_failed.connect(self._failed)
        actions.session_changed.connect(self._changed)

    def submit(self) -> None:
        """Ask the action layer to check the login (on its thread)."""
        name = self.user.currentText().strip()
        if not name or not self.secret.text():
            self.message.setText("Enter the user and the password (or PIN).")
            return
        started = self._actions.login(name, self.secret.text(), pin=self.use_pin.isChecked())
        self.secret.clear()  # the text is not kept in the widget longer than needed
        if not started:
            self.message.setText("Another login is being checked; try again in a moment.")
            return
        self._waiting = True
        self.message.setText("Checking…")
        self.buttons.setEnabled(False)

    def emergency_acknowledge(self) -> None:
        """Acknowledge the alarm without a login; the reason is required."""
        if self._alarm_id is None:
            return
        refused = self._actions.emergency_acknowledge(self._alarm_id, self.reason.text())
        if refused:  # a short reason, a technical alarm, or too many: the login remains
            self.message.setText(refused)
            return
        self.emergency_done = True
        self.accept()

    def _failed(self, reason: str) -> None:
        if not self._waiting:
            return  # the answer to another dialog's attempt
        self._waiting = False
        self.buttons.setEnabled(True)
        self.message.setText(f"Not logged in: {reason}")

    def _changed(self, view: SessionView) -> None:
        if not self._waiting:
            return
        self._waiting = False
        self.buttons.setEnabled(True)
        if view.user is not None and self.isVisible():
            self.accept()

    def done(self, result: int) -> None:
        """Stop listening to the action layer when closed."""
        for signal, slot in (
            (self._actions.login_failed, self._failed),
            (self._actions.session_changed, self._changed),
        ):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)
        super().done(result)
