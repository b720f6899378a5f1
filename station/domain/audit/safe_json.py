"""JSON as the audit verifiers read it: bounded, total, and only what the writer could have made.

Why a module of its own: a verifier reads files that whoever rewrote the folder wrote, and must
answer for every one of them with a verdict, never an exception. Python's ``json.loads`` left to
itself accepts ``NaN``, ``Infinity`` and ``1e999`` (read as a float that is not finite, which
``int()`` then refuses with an ``OverflowError``), keeps the last of two duplicated keys, recurses
once per nesting level (a head of ten thousand ``[`` raised ``RecursionError`` and the station
did not start) and reads any length. :func:`loads` refuses each of those with a
:class:`ValueError` naming what was wrong, so every caller catches one exception type and turns
it into a ``FAIL`` line.

The writer never produces any of it: records are canonical JSON of finite numbers (see
:func:`station.domain.audit.chain.canonical_json`), shallow, one line well under
:data:`MAX_RECORD_BYTES`. Pure; any thread.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
"""Nesting levels a record, head, checkpoint or manifest may have; the station writes at most
four or five (a record's ``details`` holding an object of lists)."""
MAX_RECORD_BYTES = 1024 * 1024
"""One line of the trail; the largest record the station writes is a few KiB."""
MAX_SMALL_BYTES = 64 * 1024
"""A head, a published checkpoint, a key file: a few hundred bytes when genuine."""
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""A bundle's manifest (one entry per file it holds: a handful)."""
_CHEAP_BRACKETS = MAX_DEPTH  # fewer opening brackets than this cannot nest deeper
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is not a finite number")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two readers that keep different copies of a duplicated key would see different records.
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def depth(text: str) -> int:
    """How deep the JSON text ``text`` nests (brackets inside strings do not count); a cheap
    upper bound first, the exact count only for a text with many brackets."""
    if text.count("[") + text.count("{") < _CHEAP_BRACKETS:
        return text.count("[") + text.count("{")
    deepest = level = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        level += 1 if bracket in "[{" else -1
        deepest = max(deepest, level)
    return deepest


def loads(
    data: str | bytes, *, max_bytes: int = MAX_RECORD_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Parse JSON that a hostile folder may hold.

    Raises:
        ValueError: longer than ``max_bytes``, not UTF-8, not JSON, nested deeper than
            ``max_depth``, a duplicated key, or a number that is not finite (``NaN``,
            ``Infinity``, ``1e999``) or has more digits than Python reads; the message says which.
    """
    if len(data) > max_bytes:
        raise ValueError(f"longer than {max_bytes} bytes")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    if depth(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except RecursionError:  # cannot happen below max_depth; kept so no caller ever sees it
        raise ValueError("nested too deep") from None
