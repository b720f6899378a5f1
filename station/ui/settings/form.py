"""The settings dialog's form: four tabs (station, broker, historian, alarm defaults) of fields,
each with the label where the schema's complaints about it show.

The form only shows and reports: a field edited emits :attr:`SettingsForm.edited`, and the
dialog judges the whole form and hands the complaints back to :meth:`SettingsForm.show_problems`,
which shows each in red at its field and marks its tab. An alarm parameter's row shares one error
label, under the row: "low must be below high" belongs to the pair. A secret's field says where
the secret is kept and, without a secure keyring, that it cannot be kept there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
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

from station.config.credentials import ENV, KeyringStatus, from_environment
from station.domain.alarms import LABELS, AlarmLimits, Priority
from station.ui import file_choice, theme
from station.ui.settings.fields import (
    ACCOUNT,
    SECRET_KEYS,
    FormField,
    Kind,
    Widget,
    error_label,
    hint_label,
)

_INVALID = f"border: 2px solid {theme.BAD};"
# The ward theme styles no tab widget; without this its light text sits on a light pane.
_TABS_STYLE = f"""
QTabWidget::pane {{ background: {theme.TILE}; border: 1px solid {theme.TILE_BORDER}; }}
QTabBar::tab {{ background: #1b232d; color: {theme.MUTED}; padding: 5px 12px; }}
QTabBar::tab:selected {{ background: {theme.TILE}; color: {theme.TEXT}; }}
"""


class SettingsForm(QTabWidget):
    """The tabs of the settings form. GUI thread only.

    Args:
        keyring: whether secrets can be kept here (a secret's field warns when not).
        parent: the dialog.

    Attributes:
        fields: every schema key shown, in form order.
        errors: where each key's complaints show (secrets: ``mqtt.password``, ``influx.token``).
        secrets: the secret fields by kind (``"mqtt"``, ``"influx"``).
        keyring_warnings: the warning at a secret's field when no secure keyring is available.
        test_widgets: the "Test connection" button and its result, by ``"broker"`` or
            ``"historian"``.

    Signals:
        edited(): a field changed.
        secret_edited(str, str): a secret's kind and its new text.
        test_requested(str): "Test connection" clicked for ``"broker"`` or ``"historian"``.
    """

    edited = Signal()
    secret_edited = Signal(str, str)
    test_requested = Signal(str)

    def __init__(self, keyring: KeyringStatus, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(_TABS_STYLE)
        self.keyring = keyring
        self.fields: dict[str, FormField] = {}
        self.errors: dict[str, QLabel] = {}
        self.secrets: dict[str, QLineEdit] = {}
        self.keyring_warnings: dict[str, QLabel] = {}
        self.test_widgets: dict[str, tuple[QPushButton, QLabel]] = {}
        self._tab_keys: list[tuple[str, str]] = []  # (tab title, key prefix)
        self._add_tab("Station", "station.", self._station_tab())
        self._add_tab("Broker", "mqtt.", self._broker_tab())
        self._add_tab("Historian", "influx.", self._historian_tab())
        self._add_tab("Alarm defaults", "alarms.", self._alarms_tab())

    def show_problems(self, problems: Mapping[str, str], store_errors: Mapping[str, str]) -> None:
        """Each complaint (and each secret the keyring refused) at its field, the fields refused
        framed in red, and a ``(!)`` on the tabs that hold one."""
        by_label: dict[int, tuple[QLabel, list[str]]] = {}
        for key, label in self.errors.items():
            entry = by_label.setdefault(id(label), (label, []))
            for text in (problems.get(key), store_errors.get(key)):
                if text and text not in entry[1]:
                    entry[1].append(text)
        for label, texts in by_label.values():
            label.setText("; ".join(texts))
            label.setVisible(bool(texts))
        for key, field in self.fields.items():
            field.widget.setStyleSheet(_INVALID if key in problems else "")
        for kind, edit in self.secrets.items():
            edit.setStyleSheet(_INVALID if SECRET_KEYS[kind] in problems else "")
        for index, (title, prefix) in enumerate(self._tab_keys):
            bad = any(key.startswith(prefix) for key in problems)
            self.setTabText(index, f"{title} (!)" if bad else title)

    # -- rows --------------------------------------------------------------------------------

    def _add_tab(self, title: str, prefix: str, page: QWidget) -> None:
        self.addTab(page, title)
        self._tab_keys.append((title, prefix))

    def _register(self, key: str, kind: Kind, widget: Widget) -> None:
        error = self.errors.setdefault(key, error_label())
        self.fields[key] = FormField(key, kind, widget, error)
        if isinstance(widget, QLineEdit):
            widget.textChanged.connect(self._on_edited)
        elif isinstance(widget, QCheckBox):
            widget.toggled.connect(self._on_edited)
        else:
            widget.currentIndexChanged.connect(self._on_edited)

    def _on_edited(self) -> None:
        self.edited.emit()

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
        widget: Widget
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
        note: str,
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
        if note:
            column.addWidget(hint_label(note))
        column.addWidget(error)
        return cell

    def _secret_row(self, form: QFormLayout, label: str, kind: str) -> None:
        edit = QLineEdit()
        edit.setEchoMode(QLineEdit.EchoMode.Password)
        edit.setPlaceholderText("unchanged (leave empty to keep the stored one)")
        edit.textChanged.connect(lambda text: self.secret_edited.emit(kind, text))
        self.secrets[kind] = edit
        key = SECRET_KEYS[kind]
        error = self.errors.setdefault(key, error_label())
        notes = [f"Kept in the OS keyring, never in the file. Stored per {ACCOUNT[kind][1]}."]
        if from_environment(kind):
            notes.append(f"{ENV[kind]} is set for this station and wins over the keyring.")
        cell = self._cell(edit, error, None, key, " ".join(notes))
        if not self.keyring.ok:  # said before the admin types a secret that cannot be kept
            warning = hint_label(self.keyring.message)
            warning.setStyleSheet(f"color: {theme.WARN};")
            cell_layout = cell.layout()
            assert cell_layout is not None
            cell_layout.addWidget(warning)
            self.keyring_warnings[kind] = warning
        form.addRow(label, cell)

    def _test_row(self, which: Literal["broker", "historian"]) -> QWidget:
        button = QPushButton("Test connection")
        button.clicked.connect(lambda: self.test_requested.emit(which))
        result = QLabel("")
        result.setWordWrap(True)
        self.test_widgets[which] = (button, result)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(button)
        line.addWidget(result, 1)
        return row

    def _browse(self, key: str, what: Literal["file", "folder"]) -> None:
        widget = self.fields[key].widget
        assert isinstance(widget, QLineEdit)
        start = str(Path(widget.text()).expanduser().parent) if widget.text() else ""
        file_choice.choose_path(
            self.window(),
            "Choose the folder" if what == "folder" else "Choose the file",
            lambda path: widget.setText(str(path)),
            mode="folder" if what == "folder" else "open",
            start=start,
        )

    # -- tabs --------------------------------------------------------------------------------

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
        self._row(form, "Keepalive (s)", "mqtt.keepalive_s", "int")
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
        self._row(form, "URL", "influx.url", hint="https:// for a historian on another host.")
        self._row(form, "Organisation", "influx.org")
        self._row(form, "Bucket", "influx.bucket")
        self._row(form, "Batch size", "influx.batch_size", "int")
        self._row(form, "Flush interval (s)", "influx.flush_interval_s", "float")
        self._row(form, "CA file", "influx.ca_file", browse="file", hint="Empty: the system store.")
        self._row(
            form,
            "Allow plain remote",
            "influx.allow_plain_remote",
            "bool",
            hint="Admin override: unencrypted http:// to another host (token and vitals in "
            "clear text). Keep off.",
        )
        self._secret_row(form, "Token", "influx")
        form.addRow(self._test_row("historian"))
        return page

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
            hint_label("Defaults for every bed; a bed's own limits are changed from its tile.")
        )
        column.addStretch(1)
        return page

    def _limit_row(self, grid: QGridLayout, line: int, parameter: str) -> None:
        # One error label per parameter, under the row: the schema's "low must be below high"
        # belongs to the pair, and any field's complaint in the row shows there.
        error = error_label()
        grid.addWidget(QLabel(LABELS.get(parameter, parameter)), 2 * line - 1, 0)
        widgets: list[tuple[str, Kind, Widget]] = [
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
