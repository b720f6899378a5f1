"""Writes :class:`~station.config.settings.Settings` back to its TOML file, and says what changed.

The admin's settings dialog saves through here. Python reads TOML (``tomllib``) but does not
write it; the file needs only a small, well-defined subset (tables, strings, integers, floats,
booleans, arrays of those), so it is written here rather than adding a dependency. Every write
is checked before it replaces anything: the text must parse back, through the same schema as at
start, to the very settings given, so a save can never leave a file the station refuses.

The file is complete (every key, with the schema's description as a comment), so it documents
itself like ``config/station.example.toml``. It is written atomically (a private temporary file
in the same folder, fsynced, then renamed over the old one), mode 0600, and it never holds a
secret: a key that looks like one is refused, as CONTRACT §4 keeps secrets in the keyring.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from station.config.private_file import write_private
from station.config.settings import Settings, from_mapping

HEADER = """\
# Central monitoring station — written by the settings dialog; every key is shown.
# Secrets are never written here: the MQTT password and the InfluxDB token live in the OS
# keyring, or for an unattended service in STATION_MQTT_PASSWORD / STATION_INFLUX_TOKEN.
# station.example.toml (/usr/share/station/examples/, or config/ in a source tree) explains
# each key; the station reads this file only at start.
"""

# Words that never name a settings key: their values belong in the keyring.
SECRET_WORDS = frozenset({"password", "passwd", "token", "secret", "pin", "passphrase"})

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"

Change = tuple[str, object, object]
"""One changed setting: dotted key, old value, new value (JSON-like, as in the audit trail)."""


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest as is."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"text {text!r} holds a lone surrogate, which TOML cannot carry")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else _string(name)


def _value(value: object, where: str) -> str:
    """The TOML text of one value (no tables: those are written as sections)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest text that reads back to the same float; always has . or e
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item, where) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = (f"{_key(str(k))} = {_value(v, f'{where}.{k}')}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }" if value else "{}"
    if value is None:
        raise ValueError(f"{where}: no value (None) cannot be written to TOML")
    raise ValueError(f"{where}: cannot write a {type(value).__name__} to TOML")


def _check_not_secret(dotted: str) -> None:
    words = set(re.split(r"[^a-z0-9]+", dotted.rsplit(".", 1)[-1].lower()))
    if words & SECRET_WORDS:
        raise ValueError(f"{dotted}: looks like a secret; secrets go to the keyring, not the file")


def _description(model: BaseModel, name: str) -> str | None:
    field = type(model).model_fields.get(name)
    return None if field is None else field.description


def _header(path: str) -> str:
    return f"[{'.'.join(_key(part) for part in path.split('.'))}]"


def _table(model: BaseModel, data: Mapping[str, object], path: str, lines: list[str]) -> None:
    """Write ``[path]`` with its keys, then its sub-tables (TOML needs that order): sections
    such as ``[alarms.heartrate]``, and mappings such as ``[ward.devices]`` when not empty."""
    lines.append("")
    # A section's docstring reads "[mqtt]: the broker ..."; a per-parameter table's is generic.
    doc = (type(model).__doc__ or "").strip().splitlines()
    if doc and doc[0].startswith(f"[{path}]: "):
        text = doc[0].removeprefix(f"[{path}]: ")
        lines.append(f"# {text[:1].upper()}{text[1:]}")
    lines.append(_header(path))
    later: list[tuple[str, object]] = []
    for name, value in data.items():
        dotted = f"{path}.{name}"
        _check_not_secret(dotted)
        description = _description(model, name)
        if isinstance(getattr(model, name), BaseModel) or (isinstance(value, Mapping) and value):
            later.append((name, value))
            continue
        if description:
            lines.append(f"# {description}")
        lines.append(f"{_key(name)} = {_value(value, dotted)}")
    for name, value in later:
        assert isinstance(value, Mapping)
        attr = getattr(model, name)
        if isinstance(attr, BaseModel):
            _table(attr, value, f"{path}.{name}", lines)
            continue
        lines.append("")
        description = _description(model, name)
        if description:
            lines.append(f"# {description}")
        lines.append(_header(f"{path}.{name}"))
        lines.extend(
            f"{_key(str(k))} = {_value(v, f'{path}.{name}.{k}')}" for k, v in value.items()
        )


def to_toml(settings: Settings) -> str:
    """The complete TOML text of ``settings``, every key shown, with comments.

    Raises:
        ValueError: a value TOML cannot hold (an alarm limit set to None: the file has no way to
            switch a default limit off) or a key that looks like a secret.
    """
    data = settings.model_dump(mode="json")
    lines = [HEADER.rstrip("\n")]
    for name, section in data.items():
        _check_not_secret(name)
        model = getattr(settings, name)
        assert isinstance(model, BaseModel)
        assert isinstance(section, Mapping)
        _table(model, section, name, lines)
    return "\n".join(lines) + "\n"


def write_settings(settings: Settings, path: Path) -> None:
    """Write ``settings`` to ``path`` atomically, mode 0600, checked to load back equal.

    The folder is created (mode 0700) if missing. A failure leaves the old file as it was.

    Raises:
        ValueError: the settings cannot be written faithfully (see :func:`to_toml`), or the text
            does not load back to the same settings (a bug here: nothing is replaced then).
        OSError: the folder or file cannot be written.
    """
    text = to_toml(settings)
    try:
        again = from_mapping(tomllib.loads(text), source=str(path))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: the written settings would not load back: {exc}") from exc
    if again != settings:
        raise ValueError(f"{path}: the written settings would load back different")
    write_private(path, text.encode("utf-8"))


def _flatten(data: Mapping[str, object], prefix: str, out: dict[str, object]) -> None:
    for name, value in data.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping):
            _flatten(value, f"{dotted}.", out)
        else:
            out[dotted] = value


def flat(settings: Settings) -> dict[str, object]:
    """Every setting by dotted key (``mqtt.port``, ``alarms.heartrate.low``,
    ``ward.devices.<id>``), as JSON-like values (tuples become lists, enums their text)."""
    out: dict[str, object] = {}
    _flatten(settings.model_dump(mode="json"), "", out)
    return out


def settings_diff(old: Settings, new: Settings) -> list[Change]:
    """What changed from ``old`` to ``new``: ``(dotted key, old, new)`` in file order.

    A key present on one side only (a device added to or removed from ``[ward.devices]``) has
    None on the other. Values are JSON-like, ready for the audit trail.
    """
    before, after = flat(old), flat(new)
    keys = list(before) + [k for k in after if k not in before]
    return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]
