"""Onboard a device from its voucher (admin): verify, place on a bed, hand out its credential.

The admin pastes or loads the voucher and sees what it claims and whether it verifies (with the
reason when it does not) before anything changes. Onboarding enrols the device in the registry
and shows its broker credential once: a generated password and the Mosquitto ``password_file``
and ACL lines to deploy. The password is not kept anywhere by the station (the password line is a
salted hash); in ``--demo`` the credential is given to the embedded broker at once.

Reading the voucher file, verifying (trust folder and registry) and enrolling (the registry under
its lock) run on the ward admin's worker thread; the buttons wait until the answer is back.

Signals:
    verified(object): the :class:`VoucherCheck` shown, or None when it could not be checked.
    answered(bool): an onboarding came back: done (True) or refused (False, the message says).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.broker_credentials import DeviceCredential
from station.domain.timefmt import local_text
from station.domain.vouchers.model import VoucherCheck
from station.presenters.ward_admin import WardAdmin
from station.ui import file_choice, theme

NO_BED = "(no bed yet)"


class OnboardingDialog(QDialog):
    """See the module docstring. ``user``: the admin (checked by the action layer)."""

    verified = Signal(object)
    answered = Signal(bool)

    def __init__(
        self, admin: WardAdmin, user: str, demo: bool = False, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._admin, self._user, self._demo = admin, user, demo
        self.setWindowTitle("Onboard a device")
        self.voucher = QPlainTextEdit()
        self.voucher.setPlaceholderText("Paste the device's voucher (JSON) or load its file")
        load = QPushButton("Load file…")
        load.clicked.connect(self._load_file)
        self.verify_button = QPushButton("Verify")
        self.verify_button.clicked.connect(self.verify)
        self.claims = QLabel("")
        self.claims.setWordWrap(True)
        self.bed = QComboBox()
        self.bed.addItem(NO_BED, "")
        for bed in admin.beds:
            self.bed.addItem(bed, bed)
        self.signing = QCheckBox("The device signs its messages (reject unsigned ones)")
        self.signing.setChecked(True)
        self.signing.setStyleSheet(f"color:{theme.TEXT};")
        self.onboard_button = QPushButton("Onboard")
        self.onboard_button.clicked.connect(self.onboard)
        self.onboard_button.setEnabled(False)
        self.credential = QPlainTextEdit()
        self.credential.setReadOnly(True)
        self.credential.setVisible(False)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(load)
        buttons.addWidget(self.verify_button)
        buttons.addStretch(1)
        form = QFormLayout()
        form.addRow("Bed", self.bed)
        form.addRow("", self.signing)
        lay = QVBoxLayout(self)
        lay.addWidget(self.voucher, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.claims)
        lay.addLayout(form)
        lay.addWidget(self.onboard_button)
        lay.addWidget(self.message)
        lay.addWidget(self.credential, 1)
        self.voucher.textChanged.connect(lambda: self.onboard_button.setEnabled(False))

    def _load_file(self) -> None:
        file_choice.choose_path(
            self, "Voucher", self.load, mode="open", name_filter="Vouchers (*.json);;All (*)"
        )

    def load(self, path: Path) -> None:
        """Put a voucher file's text in the box and verify it (read on the worker)."""

        def done(text: str) -> None:
            self.voucher.setPlainText(text)
            self.verify()

        def failed(exc: Exception) -> None:
            self._say(f"Cannot read {path}: {exc}", ok=False)
            self.verified.emit(None)

        self._admin.jobs.submit(
            lambda: path.read_text(encoding="utf-8"), done, failed, context=self
        )

    def _say(self, text: str, ok: bool) -> None:
        self.message.setStyleSheet(f"color:{theme.OK if ok else theme.BAD};")
        self.message.setText(text)

    def verify(self) -> None:
        """Check the voucher (on the worker), then show what it claims and the verdict;
        :attr:`verified` follows."""
        self.verify_button.setEnabled(False)
        self.onboard_button.setEnabled(False)
        self.message.setStyleSheet("")
        self.message.setText("Verifying…")
        self._admin.check_voucher(
            self.voucher.toPlainText(), self._checked, self._not_checked, context=self
        )

    def _not_checked(self, exc: Exception) -> None:
        self.verify_button.setEnabled(True)
        self._say(f"Cannot verify: {exc}", ok=False)
        self.verified.emit(None)

    def _checked(self, check: VoucherCheck) -> None:
        self.verify_button.setEnabled(True)
        c = check.claims
        if c is not None:
            chain = " → ".join((c.manufacturer, *check.owners))
            self.claims.setText(
                f"Device <b>{c.device_id}</b> · model {c.model} · serial {c.serial}<br>"
                f"Ownership: {chain} · valid {local_text(c.issued_at)} – "
                f"{local_text(c.expires_at)}"
            )
        else:
            self.claims.setText("")
        verdict = "Voucher verifies." if check.ok else f"Refused: {check.reason}"
        self._say(verdict, ok=check.ok)
        self.onboard_button.setEnabled(check.ok)
        self.verified.emit(check)

    def onboard(self) -> None:
        """Enrol the device (on the worker) and show its credential once; :attr:`answered`
        follows."""
        bed = str(self.bed.currentData())
        self.onboard_button.setEnabled(False)
        self.verify_button.setEnabled(False)
        self.message.setStyleSheet("")
        self.message.setText("Onboarding…")
        self._admin.onboard(
            self.voucher.toPlainText(),
            bed,
            self.signing.isChecked(),
            self._user,
            done=lambda cred: self._onboarded(cred, bed),
            failed=self._refused,
            context=self,
        )

    def _refused(self, exc: Exception) -> None:
        self.verify_button.setEnabled(True)
        self.onboard_button.setEnabled(True)  # another bed, say, may be tried
        self._say(str(exc), ok=False)
        self.answered.emit(False)

    def _onboarded(self, cred: DeviceCredential, bed: str) -> None:
        self.verify_button.setEnabled(True)
        applied = (
            "Applied to the demo's embedded broker."
            if self._demo
            else "Add the lines to the broker's password_file and ACL, then reload it."
        )
        self.credential.setPlainText(
            f"User name: {cred.username}\nPassword (shown once, not kept): {cred.password}\n\n"
            f"# password_file\n{cred.password_line}\n\n# acl_file\n" + "\n".join(cred.acl)
        )
        self.credential.setVisible(True)
        self._say(f"{cred.username} onboarded to {bed or 'no bed'}. {applied}", ok=True)
        self.answered.emit(True)
