"""The settings form judged by the station's own schema, each complaint placed at its field.

The form is judged by the very schema that judges the file at start (``station.config.settings``,
through :func:`~station.config.settings.from_mapping`, strict JSON mode), so the dialog can never
save what the station would then refuse, and no rule lives twice. Each of the schema's complaints
goes to the field it names: a section-level rule such as "plain MQTT to a remote host" names its
key first, and an alarm parameter's "low below high" goes to its row. No Qt here.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from pydantic import ValidationError

from station.config.settings import ConfigError, Settings, from_mapping

_FIELD_FIRST = re.compile(r"^([a-z_]+): (.*)$", re.DOTALL)


def judge(
    data: dict[str, object], keys: Collection[str]
) -> tuple[Settings | None, dict[str, list[str]]]:
    """The settings ``data`` makes, or None; and the complaints by the field key they belong to
    among ``keys`` (in the form's order; ``""``: not tied to a field)."""
    new: Settings | None = None
    problems: dict[str, list[str]] = {}
    try:
        new = from_mapping(data, source="settings")
    except ConfigError as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            for err in cause.errors():
                key, text = place(tuple(str(p) for p in err["loc"]), err, keys)
                problems.setdefault(key, []).append(text)
        else:  # pragma: no cover - from_mapping always chains the ValidationError
            problems.setdefault("", []).append(str(exc))
    return new, problems


def place(
    loc: tuple[str, ...], err: Mapping[str, object], keys: Collection[str]
) -> tuple[str, str]:
    """The field key among ``keys`` an error belongs to, and its text."""
    text = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        text = "unknown key"
    key = ".".join(loc)
    # A section's own rules name their key first: "tls: plain MQTT to ... is refused".
    named = _FIELD_FIRST.match(text)
    if named and f"{key}.{named[1]}" in keys:
        return f"{key}.{named[1]}", named[2]
    for n in range(len(loc), 0, -1):
        prefix = ".".join(loc[:n])
        if prefix in keys:
            return prefix, text
        inside = [k for k in keys if k.startswith(f"{prefix}.")]
        if inside:  # a rule over a group, e.g. alarms.heartrate: low must be below high
            return inside[0], text
    return "", f"{key}: {text}" if key else text
