"""The admin's settings dialog: broker, TLS files, credentials, historian, alarm defaults and the
station's identity, saved to the TOML file the station starts from.

The form is judged by the very schema that judges the file at start (``station.config.settings``,
through :func:`~station.config.settings.from_mapping`, strict JSON mode), so the dialog can never
save what the station would then refuse, and no rule lives twice. Each of the schema's complaints is
shown in red at the field it names (a section-level rule such as "plain MQTT to a remote host"
names its key first, and an alarm parameter's "low below high" goes to its row); Save stays
disabled while any remains.

Secrets never touch the file: the MQTT password and the InfluxDB token go only to the secure
keyring (:mod:`station.config.credentials`). Without one the dialog says so at the field, names the
environment alternative, and saves the rest. Every save is one ``settings.change`` audit record
with each change as old → new and the names, never the values, of the secrets changed.

Saving never blocks the GUI thread: writing the file (fsync, rename) and the keyring (D-Bus,
which may wait on an unlock prompt) run on the dialog's worker (a
:class:`~station.services.jobs.Jobs`, thread ``settings-save``), which also writes the audit
record; the form waits ("Saving…") and then shows the outcome. "Test connection" runs off the
GUI thread, in a short-lived thread named ``settings-test``, and hands its sentence back through
a queued signal; closing the dialog joins it. The station reads the file only at start, so the
dialog says that saved settings apply at the next start.

Signals:
    saved(object): the new :class:`~station.config.settings.Settings`, after the file was written.
    save_finished(bool): a save came back: everything asked for was kept (True), or not (False:
        the status, the field or the general error says why).
    connection_tested(str, str): ``"broker"`` or ``"historian"`` and the result shown.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from station.config.credentials import (
    ENV,
    SecretStoreError,
    backend_status,
    from_environment,
    secret,
    store_secret,
)
from station.config.settings import ConfigError, Settings, from_mapping
from station.config.settings_file import Change, flat, settings_diff, write_settings
from station.domain.alarms import LABELS, AlarmLimits, Priority
from station.domain.ports import AuditSink
from station.services.ingest.connection_check import check_broker, check_historian
from station.services.jobs import Jobs
from station.ui import theme

log = logging.getLogger(__name__)

Tester = Callable[[Settings, str | None], str]
"""A connection test: the settings to try and the secret (or None); returns a sentence."""

THREAD_NAME = "settings-test"
SAVE_THREAD = "settings-save"
JOIN_TIMEOUT_S = 1.0
RESTART_NOTE = (
    "Saved settings take effect when the station next starts: it reads its file only at start."
)
# The names of secrets in the audit trail (the values never are).
SECRET_NAMES = {"mqtt": "mqtt password", "influx": "influx token"}
SECRET_KEYS = {"mqtt": "mqtt.password", "influx": "influx.token"}
_ACCOUNT = {"mqtt": ("mqtt.username", "username"), "influx": ("influx.org", "organisation")}
_INVALID = f"border: 2px solid {theme.BAD};"
# The ward theme styles no tab widget; without this its light text sits on a light pane.
_TABS_STYLE = f"""
QTabWidget::pane {{ background: {theme.TILE}; border: 1px solid {theme.TILE_BORDER}; }}
QTabBar::tab {{ background: #1b232d; color: {theme.MUTED}; padding: 5px 12px; }}
QTabBar::tab:selected {{ background: {theme.TILE}; color: {theme.TEXT}; }}
"""
_FIELD_FIRST = re.compile(r"^([a-z_]+): (.*)$", re.DOTALL)

Kind = Literal["str", "int", "float", "bool", "choice"]


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What a save on the worker did: nothing to do, the file refused (``error``), or the file
    written with the secrets ``stored`` and those the keyring ``refused`` (kind → why)."""

    new: Settings
    nothing: bool = False
    error: str | None = None
    stored: tuple[str, ...] = ()
    refused: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class FormField:
    """One schema key in the form: its widget, how to read it, and where its errors show."""

    key: str
    kind: Kind
    widget: QLineEdit | QCheckBox | QComboBox
    error: QLabel


def _text(value: object) -> str:
    """A setting as the admin reads it: ``10`` rather than ``10.0``; nothing for None."""
    if value is None:
        return ""
    if isinstance(value, float):
        text = repr(value)
        return text.removesuffix(".0")
    return str(value)


def _number(text: str, kind: Kind) -> object:
    """The number typed, or the text itself so that the schema names what is wrong with it."""
    try:
        value: float = int(text.strip()) if kind == "int" else float(text.strip())
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _put(data: dict[str, object], key: str, value: object) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        assert isinstance(child, dict)
        node = child
    node[last] = value


def _error_label() -> QLabel:
    label = QLabel("")
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {theme.BAD};")
    label.hide()
    return label


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {theme.MUTED};")
    return label


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
    _tested = Signal(str, str)  # from the test thread: which, result

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
        self._user = user
        self._audit = audit
        self._testers: dict[str, Tester] = {
            "broker": test_broker or check_broker,
            "historian": test_historian or check_historian,
        }
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._filling = False
        self.fields: dict[str, FormField] = {}
        self.errors: dict[str, QLabel] = {}
        self.secrets: dict[str, QLineEdit] = {}
        self.keyring_warnings: dict[str, QLabel] = {}
        self._problems: dict[str, str] = {}
        self._store_errors: dict[str, str] = {}  # a secret the keyring refused, until retyped
        self._test_widgets: dict[str, tuple[QPushButton, QLabel]] = {}
        self.keyring = backend_status()

        self.tabs = QTabWidget()
        self.tabs.setStyleSheet(_TABS_STYLE)
        self._tab_keys: list[tuple[str, str]] = []  # (tab title, key prefix)
        self._add_tab("Station", "station.", self._station_tab())
        self._add_tab("Broker", "mqtt.", self._broker_tab())
        self._add_tab("Historian", "influx.", self._historian_tab())
        self._add_tab("Alarm defaults", "alarms.", self._alarms_tab())

        self.general_error = _error_label()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(_hint(f"{RESTART_NOTE} File: {path}"))
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.general_error)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        self._tested.connect(self._on_tested)
        self._fill(settings)

    # -- public ------------------------------------------------------------------------------

    @property
    def save_button(self) -> QPushButton:
        """Save; disabled while any field is refused."""
        return self.buttons.button(QDialogButtonBox.StandardButton.Save)

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
        field = self.fields[key]
        widget = field.widget
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            index = widget.findData(value)
            if index < 0:
                raise ValueError(f"{key}: {value!r} is not offered")
            widget.setCurrentIndex(index)
        else:
            widget.setText(_text(value))

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
            lambda: self._write(new, typed, changes),
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
        button, result = self._test_widgets[which]
        candidate = self._candidate(section)
        if candidate is None:
            result.setText("Fix the fields marked in red on this tab first.")
            return
        typed = self.secrets[kind].text() or None
        account = str(flat(candidate)[_ACCOUNT[kind][0]])
        button.setEnabled(False)
        result.setText("Testing…")
        thread = threading.Thread(
            target=self._run_test,
            args=(which, self._testers[which], candidate, kind, account, typed),
            name=THREAD_NAME,
            daemon=True,  # never keeps the station from exiting; shutdown() joins it
        )
        self._threads.append(thread)
        thread.start()

    def shutdown(self, timeout: float = JOIN_TIMEOUT_S) -> bool:
        """Join running connection tests (results still to come are dropped) and wait for a
        save in progress; True if nothing is left running."""
        tests_done = self._join_tests(timeout)
        return self._jobs.wait(timeout) and tests_done

    def _join_tests(self, timeout: float) -> bool:
        self._closed = True
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._threads:
            log.warning("%d connection test(s) still running after close", len(self._threads))
        return not self._threads

    def done(self, arg__1: int, /) -> None:
        """Close (Save, Cancel, Escape) after joining the connection tests. A save still
        running finishes on its worker (and is audited there): closing does not wait for it."""
        self._join_tests(JOIN_TIMEOUT_S)
        super().done(arg__1)

    def closeEvent(self, arg__1: QCloseEvent, /) -> None:
        """Join the connection tests when the window is closed."""
        self._join_tests(JOIN_TIMEOUT_S)
        super().closeEvent(arg__1)

    def showEvent(self, arg__1: QShowEvent, /) -> None:
        """A dialog shown again takes test results again."""
        self._closed = False
        super().showEvent(arg__1)

    # -- building the form -------------------------------------------------------------------

    def _add_tab(self, title: str, prefix: str, page: QWidget) -> None:
        self.tabs.addTab(page, title)
        self._tab_keys.append((title, prefix))

    def _register(self, key: str, kind: Kind, widget: QLineEdit | QCheckBox | QComboBox) -> None:
        error = self.errors.setdefault(key, _error_label())
        self.fields[key] = FormField(key, kind, widget, error)
        if isinstance(widget, QLineEdit):
            widget.textChanged.connect(self._on_edited)
        elif isinstance(widget, QCheckBox):
            widget.toggled.connect(self._on_edited)
        else:
            widget.currentIndexChanged.connect(self._on_edited)

    def _row(
        self,
        form: QFormLayout,
        label: str,
        key: str,
        kind: Kind = "str",
        *,
        choices: Mapping[str, str] | None = None,
        browse: Literal["file", "folder"] | None = None,
        hint: str = "",
    ) -> None:
        widget: QLineEdit | QCheckBox | QComboBox
        if kind == "bool":
            widget = QCheckBox()
        elif kind == "choice":
            widget = QComboBox()
            for data, text in (choices or {}).items():
                widget.addItem(text, data)
        else:
            widget = QLineEdit()
        self._register(key, kind, widget)
        form.addRow(label, self._cell(widget, self.errors[key], browse, key, hint))

    def _cell(
        self,
        widget: QWidget,
        error: QLabel,
        browse: Literal["file", "folder"] | None,
        key: str,
        hint: str,
    ) -> QWidget:
        cell = QWidget()
        column = QVBoxLayout(cell)
        column.setContentsMargins(0, 0, 0, 0)
        line = QHBoxLayout()
        line.addWidget(widget, 1)
        if browse is not None:
            button = QPushButton("Browse…")
            button.clicked.connect(lambda: self._browse(key, browse))
            line.addWidget(button)
        column.addLayout(line)
        if hint:
            column.addWidget(_hint(hint))
        column.addWidget(error)
        return cell

    def _secret_row(self, form: QFormLayout, label: str, kind: str) -> None:
        edit = QLineEdit()
        edit.setEchoMode(QLineEdit.EchoMode.Password)
        edit.setPlaceholderText("unchanged (leave empty to keep the stored one)")
        edit.textChanged.connect(lambda text: self._secret_edited(kind, text))
        self.secrets[kind] = edit
        key = SECRET_KEYS[kind]
        error = self.errors.setdefault(key, _error_label())
        notes = [f"Kept in the OS keyring, never in the file. Stored per {_ACCOUNT[kind][1]}."]
        if from_environment(kind):
            notes.append(f"{ENV[kind]} is set for this station and wins over the keyring.")
        cell = self._cell(edit, error, None, key, " ".join(notes))
        if not self.keyring.ok:  # said before the admin types a secret that cannot be kept
            warning = _hint(self.keyring.message)
            warning.setStyleSheet(f"color: {theme.WARN};")
            cell_layout = cell.layout()
            assert cell_layout is not None
            cell_layout.addWidget(warning)
            self.keyring_warnings[kind] = warning
        form.addRow(label, cell)

    def _station_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self._row(form, "Station id", "station.id", hint="Used in MQTT topics.")
        self._row(form, "Name", "station.name", hint="Shown in the window title.")
        self._row(
            form,
            "Data folder",
            "station.data_dir",
            browse="folder",
            hint="Audit trail, spool and trends. A new folder starts a new audit trail there; "
            "the old one stays where it is.",
        )
        return page

    def _broker_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self._row(form, "Host", "mqtt.host")
        self._row(form, "Port", "mqtt.port", "int")
        self._row(form, "TLS", "mqtt.tls", "bool", hint="Required for a broker on another host.")
        self._row(form, "CA file", "mqtt.ca_file", browse="file", hint="Empty: the system store.")
        self._row(form, "Client certificate", "mqtt.client_cert", browse="file")
        self._row(form, "Client key", "mqtt.client_key", browse="file")
        self._row(form, "User", "mqtt.username")
        self._secret_row(form, "Password", "mqtt")
        self._row(form, "Client id", "mqtt.client_id", hint="Empty: station-<station id>.")
        self._row(
            form, "Protocol", "mqtt.protocol", "choice", choices={"5": "MQTT 5", "3.1.1": "3.1.1"}
        )
        self._row(form, "Keepalive (s)", "mqtt.keepalive", "int")
        self._row(
            form,
            "Allow plain remote",
            "mqtt.allow_plain_remote",
            "bool",
            hint="Admin override: unencrypted MQTT to another host. Keep off.",
        )
        form.addRow(self._test_row("broker"))
        return page

    def _historian_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self._row(form, "Enabled", "influx.enabled", "bool")
        self._row(form, "URL", "influx.url")
        self._row(form, "Organisation", "influx.org")
        self._row(form, "Bucket", "influx.bucket")
        self._row(form, "Batch size", "influx.batch_size", "int")
        self._row(form, "Flush interval (s)", "influx.flush_interval_s", "float")
        self._secret_row(form, "Token", "influx")
        form.addRow(self._test_row("historian"))
        return page

    def _test_row(self, which: Literal["broker", "historian"]) -> QWidget:
        button = QPushButton("Test connection")
        button.clicked.connect(lambda: self.test_connection(which))
        result = QLabel("")
        result.setWordWrap(True)
        self._test_widgets[which] = (button, result)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(button)
        line.addWidget(result, 1)
        return row

    @property
    def broker_result(self) -> QLabel:
        """Where the broker test's result shows."""
        return self._test_widgets["broker"][1]

    @property
    def historian_result(self) -> QLabel:
        """Where the historian test's result shows."""
        return self._test_widgets["historian"][1]

    def test_button(self, which: Literal["broker", "historian"]) -> QPushButton:
        """The "Test connection" button of the broker or the historian tab."""
        return self._test_widgets[which][0]

    def _alarms_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        form = QFormLayout()
        self._row(form, "No data after (s)", "alarms.no_data_s", "float")
        self._row(form, "Live window (s)", "alarms.live_window_s", "float")
        self._row(form, "Escalate after (s)", "alarms.escalate_after_s", "float")
        self._row(form, "Audio pause (s)", "alarms.audio_pause_s", "float")
        self._row(form, "Reminder every (s)", "alarms.reminder_s", "float")
        self._row(form, "Battery low below (%)", "alarms.battery_low_pct", "float")
        column.addLayout(form)
        grid = QGridLayout()
        titles = ("", "Low", "High", "Priority", "Delay (s)", "Hysteresis", "Latching")
        for col, title in enumerate(titles):
            grid.addWidget(QLabel(title), 0, col)
        for line, parameter in enumerate(AlarmLimits.PARAMETERS, start=1):
            self._limit_row(grid, line, parameter)
        column.addLayout(grid)
        column.addWidget(
            _hint("Defaults for every bed; a bed's own limits are changed from its tile.")
        )
        column.addStretch(1)
        return page

    def _limit_row(self, grid: QGridLayout, line: int, parameter: str) -> None:
        # One error label per parameter, under the row: the schema's "low must be below high"
        # belongs to the pair, and any field's complaint in the row shows there.
        error = _error_label()
        grid.addWidget(QLabel(LABELS.get(parameter, parameter)), 2 * line - 1, 0)
        widgets: list[tuple[str, Kind, QLineEdit | QCheckBox | QComboBox]] = [
            ("low", "float", QLineEdit()),
            ("high", "float", QLineEdit()),
            ("priority", "choice", QComboBox()),
            ("delay_s", "float", QLineEdit()),
            ("hysteresis", "float", QLineEdit()),
            ("latching", "bool", QCheckBox()),
        ]
        for col, (name, kind, widget) in enumerate(widgets, start=1):
            if isinstance(widget, QComboBox):
                for level in Priority:
                    widget.addItem(f"{level.mark} {level.value}", level.value)
            key = f"alarms.{parameter}.{name}"
            self.errors[key] = error
            self._register(key, kind, widget)
            grid.addWidget(widget, 2 * line - 1, col)
        grid.addWidget(error, 2 * line, 1, 1, len(widgets))

    def _browse(self, key: str, what: Literal["file", "folder"]) -> None:
        widget = self.fields[key].widget
        assert isinstance(widget, QLineEdit)
        start = str(Path(widget.text()).expanduser().parent) if widget.text() else ""
        if what == "folder":
            chosen = QFileDialog.getExistingDirectory(self, "Choose the folder", start)
        else:
            chosen, _filter = QFileDialog.getOpenFileName(self, "Choose the file", start)
        if chosen:
            widget.setText(chosen)

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

    def _read(self, field: FormField) -> object:
        widget = field.widget
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QComboBox):
            return widget.currentData()
        if field.kind in ("int", "float"):
            return _number(widget.text(), field.kind)
        return widget.text()

    def _mapping(self) -> dict[str, object]:
        """The current settings overlaid with the form: keys the form does not show (topics,
        the spool, the ward, ...) keep their values."""
        data = self._settings.model_dump(mode="json")
        for key, field in self.fields.items():
            _put(data, key, self._read(field))
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
        new: Settings | None = None
        problems: dict[str, list[str]] = {}
        try:
            new = from_mapping(self._mapping(), source="settings")
        except ConfigError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                for err in cause.errors():
                    key, text = self._place(tuple(str(p) for p in err["loc"]), err)
                    problems.setdefault(key, []).append(text)
            else:  # pragma: no cover - from_mapping always chains the ValidationError
                problems.setdefault("", []).append(str(exc))
        for kind, edit in self.secrets.items():
            if edit.text():
                key, (account_key, account) = SECRET_KEYS[kind], _ACCOUNT[kind]
                if not self._read(self.fields[account_key]):
                    problems.setdefault(key, []).append(
                        f"set the {account} first: the secret is stored for it"
                    )
        self._show(problems)
        return new if not problems else None

    def _place(self, loc: tuple[str, ...], err: Mapping[str, object]) -> tuple[str, str]:
        """The field key an error belongs to, and its text."""
        text = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            text = "unknown key"
        key = ".".join(loc)
        # A section's own rules name their key first: "tls: plain MQTT to ... is refused".
        named = _FIELD_FIRST.match(text)
        if named and f"{key}.{named[1]}" in self.fields:
            return f"{key}.{named[1]}", named[2]
        for n in range(len(loc), 0, -1):
            prefix = ".".join(loc[:n])
            if prefix in self.fields:
                return prefix, text
            inside = [k for k in self.fields if k.startswith(f"{prefix}.")]
            if inside:  # a rule over a group, e.g. alarms.heartrate: low must be below high
                return inside[0], text
        return "", f"{key}: {text}" if key else text

    def _show(self, problems: Mapping[str, list[str]]) -> None:
        self._problems = {key: "; ".join(texts) for key, texts in problems.items()}
        by_label: dict[int, tuple[QLabel, list[str]]] = {}
        for key, label in self.errors.items():
            entry = by_label.setdefault(id(label), (label, []))
            for text in (self._problems.get(key), self._store_errors.get(key)):
                if text and text not in entry[1]:
                    entry[1].append(text)
        for label, texts in by_label.values():
            label.setText("; ".join(texts))
            label.setVisible(bool(texts))
        for key, field in self.fields.items():
            field.widget.setStyleSheet(_INVALID if key in self._problems else "")
        for kind, edit in self.secrets.items():
            edit.setStyleSheet(_INVALID if SECRET_KEYS[kind] in self._problems else "")
        general = self._problems.get("", "")
        self.general_error.setText(general)
        self.general_error.setVisible(bool(general))
        for index, (title, prefix) in enumerate(self._tab_keys):
            bad = any(key.startswith(prefix) for key in self._problems)
            self.tabs.setTabText(index, f"{title} (!)" if bad else title)
        self.save_button.setEnabled(not self._problems and not self._saving)

    # -- saving ------------------------------------------------------------------------------

    def _set_saving(self, saving: bool) -> None:
        self._saving = saving
        self.tabs.setEnabled(not saving)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(not saving)
        self.save_button.setEnabled(not saving and not self._problems)
        if saving:
            self.status.setText("Saving…")

    def _write(self, new: Settings, typed: Mapping[str, str], changes: list[Change]) -> SaveResult:
        """The worker: write the file if anything in it changed (a first save writes the
        defaults), then the typed secrets, then the one audit record."""
        write = bool(changes) or not self._path.exists()
        if not write and not typed:
            return SaveResult(new, nothing=True)
        listed = [{"key": k, "old": old, "new": value} for k, old, value in changes]
        try:
            if write:
                write_settings(new, self._path)
        except (OSError, ValueError) as exc:
            log.error("settings not saved to %s: %s", self._path, exc)
            self._record("failure", {"changes": listed, "secrets_changed": [], "error": str(exc)})
            return SaveResult(new, error=str(exc))
        stored, refused = _store_secrets(new, typed)
        details: dict[str, object] = {"changes": listed, "secrets_changed": stored}
        if refused:
            details["secrets_not_stored"] = [SECRET_NAMES[kind] for kind in refused]
        self._record("failure" if refused else "success", details)
        return SaveResult(new, stored=tuple(stored), refused=refused)

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

    def _record(self, outcome: str, details: dict[str, object]) -> None:
        self._audit.record(
            "settings.change",
            actor=self._user,
            role="admin",
            target=str(self._path),
            outcome=outcome,
            details=details,
        )

    # -- connection tests --------------------------------------------------------------------

    def _run_test(
        self,
        which: str,
        tester: Tester,
        candidate: Settings,
        kind: str,
        account: str,
        typed: str | None,
    ) -> None:
        """The test thread: find the secret (the keyring may block), run the test, report."""
        value = typed
        try:
            if value is None and account:
                value = secret(kind, account)
            text = tester(candidate, value)
        except Exception as exc:  # a test must report, never kill its thread silently
            text = f"Test failed: {type(exc).__name__}: {exc}"
        if value:
            text = text.replace(value, "***")
        with contextlib.suppress(RuntimeError):  # the dialog is gone; nobody is waiting
            self._tested.emit(which, text)

    @Slot(str, str)
    def _on_tested(self, which: str, text: str) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._closed:
            return
        button, result = self._test_widgets[which]
        button.setEnabled(True)
        result.setText(text)
        self.connection_tested.emit(which, text)


def _store_secrets(new: Settings, typed: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """Store each typed secret in the keyring (the worker: it may block); the names stored,
    and the kinds refused with why (shown at the field)."""
    stored: list[str] = []
    refused: dict[str, str] = {}
    values = flat(new)
    for kind, value in typed.items():
        account = str(values[_ACCOUNT[kind][0]])
        try:
            store_secret(kind, account, value)
        except (SecretStoreError, ValueError) as exc:
            refused[kind] = str(exc)
        else:
            stored.append(SECRET_NAMES[kind])
    return stored, refused
