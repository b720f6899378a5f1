"""Text from the audit trail made safe to show: every character visible, a cell one line long.

Every text from the trail is hostile until shown otherwise, so it reaches the screen only as
plain text (the table's display role, a read-only plain-text box, labels fixed to
``Qt.PlainText``, no tool tip with record text, which Qt would take for rich text), with line
breaks, control and bidi characters shown as ``\\n`` or ``\\u202e`` escapes: a name cannot fake
a second row or a second field, or hide what it holds. The table, the record box, the banner,
the filter choices and the export line all take their text from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from station.domain.timefmt import local_text
from station.ui.audit.source import Record

CELL_MAX = 200  # characters of a cell; the record box below shows all of it
READING_ORDER = ("seq", "ts", "actor", "role", "action", "target", "outcome", "where", "epoch")
"""Fields first in the record box, in the order a person reads them; the rest follow."""


def _escape(ch: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    if code > 0xFFFF:  # as JSON writes it, so the record box stays valid JSON
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def visible_text(text: str) -> str:
    """``text`` with every character that is not visible (line and paragraph separators,
    control, bidi and other format characters, odd spaces, lone surrogates) as an escape."""
    if text.isprintable():  # the usual case, checked in C
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def one_line(value: object, limit: int = CELL_MAX) -> str:
    """A value as one visible line of at most about ``limit`` characters, for a table cell."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + "…"
    return visible_text(text)


def details_text(details: object) -> str:
    """``key=value, ...`` of a record's details, compact for the Details column."""
    if not isinstance(details, Mapping):
        return one_line(details) if details not in (None, "") else ""
    parts = []
    for key, value in details.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown}")
    return one_line(", ".join(parts))


def pretty_record(record: Record) -> str:
    """The whole record as indented JSON, who-did-what first and the chain fields last (the
    trail stores keys sorted, which puts ``action`` first and ``seq`` in the middle). Invisible
    characters become JSON escapes, so the text stays valid JSON and a hostile value cannot add
    a line that looks like a field."""
    ordered = {key: record[key] for key in READING_ORDER if key in record}
    ordered.update((key, value) for key, value in record.items() if key not in ordered)
    text = json.dumps(ordered, indent=2, ensure_ascii=False, default=str)
    return "\n".join(visible_text(line) for line in text.split("\n"))


def when_text(epoch: float) -> str | None:
    """Station-local time with seconds, or None for a time the platform cannot show locally
    (a hostile ``ts`` in year 1 or 9999)."""
    try:
        return local_text(epoch, seconds=True)
    except (OverflowError, OSError, ValueError):
        return None
