"""The audit trail as CSV for the auditor's export bundle.

Auditors open this file in a spreadsheet, so it is written for one: UTF-8 with a byte order mark
(without it Excel guesses the ANSI code page and garbles every accented user name), CRLF rows and
RFC 4180 quoting from the :mod:`csv` module, so a value holding a newline, a quote or a comma
stays one cell instead of forging rows.

Every text in a record may come from an attacker (a device id, a user name, an alarm message), and
a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (CSV
injection). Such cells, and those starting with tab or carriage return, get a leading ``'``
(OWASP's advice), which the spreadsheet shows as text. Integers (``seq``) are the one exception:
``-5`` typed as a number is a number, never a formula, and the ``'`` would break sorting.

Stdlib only; no Qt, no file or network access: the caller writes the bytes where it wants them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

CSV_COLUMNS = (
    "seq",
    "ts",
    "actor",
    "role",
    "action",
    "target",
    "outcome",
    "where",
    "details",
    "hash",
)
"""The header row, in column order. ``details`` is compact sorted-key JSON."""

# A spreadsheet evaluates a cell starting with one of these as a formula. Tab and carriage return
# are on OWASP's list too: some spreadsheets skip them and read the formula behind.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_BOM = "\ufeff"


def neutralise(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would otherwise run it as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _json(value: Any) -> str:
    """Compact, sorted-key JSON, as in the trail itself, so the cell diffs and greps alike.

    ``default=str`` keeps a record that did not come from JSON (a ``datetime`` in ``details``)
    exportable instead of failing the whole bundle on one value.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _cell(value: Any) -> str:
    """One cell: empty for a missing value, digits for an integer, neutralised text otherwise."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = value if isinstance(value, str) else _json(value)
    return neutralise(text)


def _details_cell(value: Any) -> str:
    """Always JSON (even a bare string), so the cell parses back to exactly what was recorded."""
    return "" if value is None else neutralise(_json(value))


def _row(record: Mapping[str, Any]) -> list[str]:
    return [
        _details_cell(record.get(column)) if column == "details" else _cell(record.get(column))
        for column in CSV_COLUMNS
    ]


def records_csv(records: Iterable[Mapping[str, Any]]) -> bytes:
    """The records as UTF-8 CSV bytes with a BOM, a header row (:data:`CSV_COLUMNS`) and CRLF rows.

    A missing key (or ``null``) is an empty cell. ``details`` is written as JSON, so it parses back
    to the dict; a non-text value elsewhere (a hostile file may put a list in ``actor``) is written
    as JSON too rather than as a Python ``repr``. Each text cell is neutralised against formula
    injection (see the module docstring). A lone surrogate, which only a damaged or forged trail
    holds, is written as ``?`` so one bad record does not stop the export.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_row(record) for record in records)
    return (_BOM + out.getvalue()).encode("utf-8", errors="replace")
