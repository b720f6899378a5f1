"""The admin's settings dialog: the form judged as it is edited, saved off the GUI thread, and
the broker and historian tried from it.

The form (:mod:`station.ui.settings.form`) is judged by the station's own schema at every edit
(:mod:`station.ui.settings.validation`); each complaint is shown in red at the field it names,
and Save stays disabled while any remains. Without a secure keyring the dialog says so at the
secret's field, names the environment alternative, and saves the rest.

Saving never blocks the GUI thread: writing the file and the keyring run on the dialog's worker
(a :class:`~station.services.jobs.Jobs`, thread ``settings-save``,
:mod:`station.ui.settings.saving`), which also writes the audit record; the form waits
("Saving…") and then shows the outcome. "Test connection" runs off the GUI thread, in a
short-lived thread named ``settings-test`` (:mod:`station.ui.settings.connection_test`), and hands
its sentence back through a queued signal; closing the dialog joins it. The station reads the
file only at start, so the dialog says that saved settings apply at the next start.

Signals:
    saved(object): the new :class:`~station.config.settings.Settings`, after the file was written.
    save_finished(bool): a save came back: everything asked for was kept (True), or not (False:
        the status, the field or the general error says why).
    connection_tested(str, str): ``"broker"`` or ``"historian"`` and the result shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout, QWidget

from station.config.credentials import backend_status
from station.config.settings import ConfigError, Settings, from_mapping
from station.config.settings_file import flat, settings_diff
from station.domain.ports import AuditSink
from station.services.ingest.connection_check import check_broker, check_historian
from station.services.jobs import Jobs
from station.ui.settings.connection_test import ConnectionTests, Tester
from station.ui.settings.fields import (
    ACCOUNT,
    SECRET_KEYS,
    SECRET_NAMES,
    error_label,
    hint_label,
    put,
    read_field,
    write_field,
)
from station.ui.settings.form import SettingsForm
from station.ui.settings.saving import SAVE_THREAD, SaveResult, SettingsWriter
from station.ui.settings.validation import judge

JOIN_TIMEOUT_S = 1.0
RESTART_NOTE = (
    "Saved settings take effect when the station next starts: it reads its file only at start."
)


class SettingsDialog(QDialog):
    """The station's settings, for an admin. GUI thread only.

    Args:
        settings: the settings now (as loaded from ``path``, or the defaults).
        path: the TOML file to write.
        user: the admin, for the audit trail.
        audit: where the ``settings.change`` record goes.
        parent: the owning widget.
        test_broker: the broker test (default :func:`check_broker`).
        test_historian: the historian test (default :func:`check_historian`).
        jobs: where saves run (default: the dialog's own worker, ``settings-save``).
    """

    saved = Signal(object)
    save_finished = Signal(bool)
    connection_tested = Signal(str, str)

    def __init__(
        self,
        settings: Settings,
        path: Path,
        user: str,
        audit: AuditSink,
        parent: QWidget | None = None,
        test_broker: Tester | None = None,
        test_historian: Tester | None = None,
        jobs: Jobs | None = None,
    ) -> None:
        super().__init__(parent)
        self._jobs = jobs if jobs is not None else Jobs(SAVE_THREAD, self)
        self._saving = False
        self.setWindowTitle("Station settings")
        self._settings = settings
        self._path = path
        self._writer = SettingsWriter(path, user, audit)
        self._testers: dict[str, Tester] = {
            "broker": test_broker or check_broker,
            "historian": test_historian or check_historian,
        }
        self._tests = ConnectionTests(self)
        self._filling = False
        self._problems: dict[str, str] = {}
        self._store_errors: dict[str, str] = {}  # a secret the keyring refused, until retyped
        self.keyring = backend_status()

        self.tabs = SettingsForm(self.keyring)
        # The form's parts under the names callers and tests know them by.
        self.fields = self.tabs.fields
        self.errors = self.tabs.errors
        self.secrets = self.tabs.secrets
        self.keyring_warnings = self.tabs.keyring_warnings
        self.tabs.edited.connect(self._on_edited)
        self.tabs.secret_edited.connect(self._secret_edited)
        self.tabs.test_requested.connect(self.test_connection)

        self.general_error = error_label()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(hint_label(f"{RESTART_NOTE} File: {path}"))
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.general_error)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        self._tests.finished.connect(self._on_tested)
        self._fill(settings)

    # -- public ------------------------------------------------------------------------------

    @property
    def save_button(self) -> QPushButton:
        """Save; disabled while any field is refused."""
        return self.buttons.button(QDialogButtonBox.StandardButton.Save)

    @property
    def broker_result(self) -> QLabel:
        """Where the broker test's result shows."""
        return self.tabs.test_widgets["broker"][1]

    @property
    def historian_result(self) -> QLabel:
        """Where the historian test's result shows."""
        return self.tabs.test_widgets["historian"][1]

    def test_button(self, which: Literal["broker", "historian"]) -> QPushButton:
        """The "Test connection" button of the broker or the historian tab."""
        return self.tabs.test_widgets[which][0]

    def error_text(self, key: str) -> str:
        """The message shown at ``key``'s field ("" when none); secrets: ``mqtt.password``,
        ``influx.token``."""
        label = self.errors[key]
        return "" if label.isHidden() else label.text()

    def problems(self) -> dict[str, str]:
        """What the schema refuses now, by dotted key (``""``: not tied to a field here)."""
        return dict(self._problems)

    def set_value(self, key: str, value: object) -> None:
        """Put ``value`` into ``key``'s field as the admin would (tests, scripted setup)."""
        write_field(self.fields[key], value)

    def settings(self) -> Settings | None:
        """The settings the form holds, or None while the schema refuses them."""
        return self._validate()

    def save(self) -> bool:
        """Start a save on the worker: write the file, store typed secrets in the keyring,
        audit; :attr:`saved` (once the file is written) and :attr:`save_finished` follow on
        the GUI thread. The dialog closes only when everything asked for was saved; a secret
        the keyring cannot take is reported at its field, and the rest is saved anyway.

        Returns whether a save started: False while the form is refused or a save runs.
        """
        if self._saving:
            return False
        new = self._validate()
        if new is None:
            self.status.setText("Not saved: fix the fields marked in red first.")
            return False
        typed = {kind: edit.text() for kind, edit in self.secrets.items() if edit.text()}
        changes = settings_diff(self._settings, new)
        self._set_saving(True)
        self._jobs.submit(
            lambda: self._writer.write(new, typed, changes),
            lambda result: self._written(result, typed),
            self._broken,
            context=self,
        )
        return True

    def accept(self) -> None:
        """Enter or the Save button: save, and close only if everything was saved."""
        self.save()

    def test_connection(self, which: Literal["broker", "historian"]) -> None:
        """Try the broker or the historian with the form's values, off the GUI thread.

        The result appears beside the button and in :attr:`connection_tested`.
        """
        section, kind = ("mqtt", "mqtt") if which == "broker" else ("influx", "influx")
        button, result = self.tabs.test_widgets[which]
        candidate = self._candidate(section)
        if candidate is None:
            result.setText("Fix the fields marked in red on this tab first.")
            return
        typed = self.secrets[kind].text() or None
        account = str(flat(candidate)[ACCOUNT[kind][0]])
        button.setEnabled(False)
        result.setText("Testing…")
        self._tests.start(which, self._testers[which], candidate, kind, account, typed)

    def shutdown(self, timeout: float = JOIN_TIMEOUT_S) -> bool:
        """Join running connection tests (results still to come are dropped) and wait for a
        save in progress; True if nothing is left running."""
        tests_done = self._tests.join(timeout)
        return self._jobs.wait(timeout) and tests_done

    def done(self, arg__1: int, /) -> None:
        """Close (Save, Cancel, Escape) after joining the connection tests. A save still
        running finishes on its worker (and is audited there): closing does not wait for it."""
        self._tests.join(JOIN_TIMEOUT_S)
        super().done(arg__1)

    def closeEvent(self, arg__1: QCloseEvent, /) -> None:
        """Join the connection tests when the window is closed."""
        self._tests.join(JOIN_TIMEOUT_S)
        super().closeEvent(arg__1)

    def showEvent(self, arg__1: QShowEvent, /) -> None:
        """A dialog shown again takes test results again."""
        self._tests.reopen()
        super().showEvent(arg__1)

    # -- values and validation ---------------------------------------------------------------

    def _fill(self, settings: Settings) -> None:
        values = flat(settings)
        self._filling = True
        try:
            for key in self.fields:
                self.set_value(key, values[key])
        finally:
            self._filling = False
        self._validate()

    def _mapping(self) -> dict[str, object]:
        """The current settings overlaid with the form: keys the form does not show (topics,
        the spool, the ward, ...) keep their values."""
        data = self._settings.model_dump(mode="json")
        for key, field in self.fields.items():
            put(data, key, read_field(field))
        return data

    def _candidate(self, section: str) -> Settings | None:
        """The saved settings with only ``section`` taken from the form, if the schema takes it:
        a broker test need not wait for a typo on the alarm tab."""
        if any(key.startswith(f"{section}.") for key in self._problems):
            return None
        data = self._settings.model_dump(mode="json")
        data[section] = self._mapping()[section]
        try:
            return from_mapping(data, source="settings")
        except ConfigError:
            return None

    def _on_edited(self) -> None:
        if not self._filling:
            self._validate()

    def _secret_edited(self, kind: str, text: str) -> None:
        if text:  # a new try: the last refusal no longer applies
            self._store_errors.pop(SECRET_KEYS[kind], None)
        self._on_edited()

    def _validate(self) -> Settings | None:
        """Run the schema over the form; show each complaint at its field. None if refused."""
        new, problems = judge(self._mapping(), self.fields)
        for kind, edit in self.secrets.items():
            if edit.text():
                key, (account_key, account) = SECRET_KEYS[kind], ACCOUNT[kind]
                if not read_field(self.fields[account_key]):
                    problems.setdefault(key, []).append(
                        f"set the {account} first: the secret is stored for it"
                    )
        self._show(problems)
        return new if not problems else None

    def _show(self, problems: Mapping[str, list[str]]) -> None:
        self._problems = {key: "; ".join(texts) for key, texts in problems.items()}
        self.tabs.show_problems(self._problems, self._store_errors)
        general = self._problems.get("", "")
        self.general_error.setText(general)
        self.general_error.setVisible(bool(general))
        self.save_button.setEnabled(not self._problems and not self._saving)

    # -- saving ------------------------------------------------------------------------------

    def _set_saving(self, saving: bool) -> None:
        self._saving = saving
        self.tabs.setEnabled(not saving)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(not saving)
        self.save_button.setEnabled(not saving and not self._problems)
        if saving:
            self.status.setText("Saving…")

    def _written(self, result: SaveResult, typed: Mapping[str, str]) -> None:
        """The GUI thread: show what the save did; close if everything was kept."""
        self._set_saving(False)
        if result.nothing:
            self.status.setText("Nothing changed.")
            super().accept()
            self.save_finished.emit(True)
            return
        if result.error is not None:
            self.general_error.setText(f"Not saved: {result.error}")
            self.general_error.show()
            self.status.setText("")
            self.save_finished.emit(False)
            return
        refused = result.refused or {}
        for kind, why in refused.items():
            self._store_errors[SECRET_KEYS[kind]] = why
        for kind in typed:
            self.secrets[kind].clear()  # re-validates, which shows a refusal at its field
        self._settings = result.new
        self.saved.emit(result.new)
        if refused:
            names = ", ".join(SECRET_NAMES[kind] for kind in refused)
            self.status.setText(
                f"Settings saved to {self._path}; not stored: {names} (see the field). "
                f"{RESTART_NOTE}"
            )
            self.save_finished.emit(False)
            return
        self.status.setText(f"Saved to {self._path}. {RESTART_NOTE}")
        super().accept()
        self.save_finished.emit(True)

    def _broken(self, exc: Exception) -> None:
        """A save that failed unexpectedly (a bug): said, never silent."""
        self._set_saving(False)
        self.general_error.setText(f"Not saved: {type(exc).__name__}: {exc}")
        self.general_error.show()
        self.save_finished.emit(False)

    # -- connection tests --------------------------------------------------------------------

    @Slot(str, str)
    def _on_tested(self, which: str, text: str) -> None:
        button, result = self.tabs.test_widgets[which]
        button.setEnabled(True)
        result.setText(text)
        self.connection_tested.emit(which, text)
