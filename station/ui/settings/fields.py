"""One field of the settings form: the schema key it edits, its widget, how a value goes in and
comes out, and the labels around it; and the two secrets that sit beside the keys.

A value comes out as the schema expects it (a number typed is a number) or, when it cannot be
one, as the text itself, so that the schema names what is wrong with it. The secrets are not
keys of the file: each is stored in the keyring for an account that is a key
(:data:`ACCOUNT`), and the audit trail names them (:data:`SECRET_NAMES`), never their values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit

from station.ui import theme

Kind = Literal["str", "int", "float", "bool", "choice"]
Widget = QLineEdit | QCheckBox | QComboBox

# The names of secrets in the audit trail (the values never are).
SECRET_NAMES = {"mqtt": "mqtt password", "influx": "influx token"}
SECRET_KEYS = {"mqtt": "mqtt.password", "influx": "influx.token"}
ACCOUNT = {"mqtt": ("mqtt.username", "username"), "influx": ("influx.org", "organisation")}
"""Each secret's account: the key that names it, and that key in words."""


@dataclass(frozen=True, slots=True)
class FormField:
    """One schema key in the form: its widget, how to read it, and where its errors show."""

    key: str
    kind: Kind
    widget: Widget
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


def read_field(field: FormField) -> object:
    """The value ``field`` holds, for the schema."""
    widget = field.widget
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if field.kind in ("int", "float"):
        return _number(widget.text(), field.kind)
    return widget.text()


def write_field(field: FormField, value: object) -> None:
    """Put ``value`` into ``field``'s widget as the admin would.

    Raises:
        ValueError: a choice the field does not offer.
    """
    widget = field.widget
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        index = widget.findData(value)
        if index < 0:
            raise ValueError(f"{field.key}: {value!r} is not offered")
        widget.setCurrentIndex(index)
    else:
        widget.setText(_text(value))


def put(data: dict[str, object], key: str, value: object) -> None:
    """Set the dotted ``key`` in the nested mapping ``data``, making sections as needed."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        assert isinstance(child, dict)
        node = child
    node[last] = value


def error_label() -> QLabel:
    """Where a field's complaints show: red, hidden while there are none."""
    label = QLabel("")
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {theme.BAD};")
    label.hide()
    return label


def hint_label(text: str) -> QLabel:
    """A muted line that explains a field or the dialog."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {theme.MUTED};")
    return label
