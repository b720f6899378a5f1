"""Filtering the audit trail for the auditor's view: by time, user, bed and action. Stdlib only.

The auditor narrows a trail of up to some 100 000 records to the ones a question is about
("what did nurse.kim do to Bed 3 last night?"), so a filter is a plain value and matching is a
pure function the dialog and a test can share. Records are read as the writer made them (see
:mod:`station.domain.audit.chain`), but a filter never trusts their shape: a key that is missing or
holds the wrong type simply does not match.

Matching rules, chosen so that what a person types finds what they mean:

* time: ``since`` inclusive, ``until`` exclusive (UTC epoch seconds), so consecutive windows
  neither overlap nor leave a gap; a record whose ``ts`` cannot be read is kept only while no
  time bound is set (a bound cannot say where it lies, and hiding it silently is worse);
* user: the ``actor``, exactly but case-insensitively (log-in names are case-insensitive);
* bed: the ``target``, or ``details`` ``bed`` / ``from`` / ``to`` (a transfer or a device move
  names the bed there), exactly but case-insensitively;
* action: the whole dotted name, or a dotted prefix of it: ``alarm`` finds ``alarm.raise`` but
  not ``alarms.export``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BED_DETAIL_KEYS = ("bed", "from", "to")
"""The ``details`` keys that name a bed (a device's bed, a transfer's beds)."""

_BED_LABEL = re.compile(r"[^\W\d_][^\W_]*(?:[ -][^\W\d_][^\W_]*)* \d+[A-Za-z]?")
"""A target that looks like a bed label ("Bed 3", "ICU 12", "Bett 4a") when no detail says."""

_Record = Mapping[str, Any]
_Predicate = Callable[[_Record], bool]


@dataclass(frozen=True)
class AuditFilter:
    """What the auditor asked for; an empty field (or None bound) does not filter.

    Attributes:
        since: UTC epoch seconds, inclusive lower bound on the record's ``ts``.
        until: UTC epoch seconds, exclusive upper bound on the record's ``ts``.
        user: an actor name, matched exactly but case-insensitively.
        bed: a bed label, matched against the target and the details' bed fields.
        action: a dotted action name or a dotted prefix of one (``alarm``).
    """

    since: float | None = None
    until: float | None = None
    user: str = ""
    bed: str = ""
    action: str = ""

    @property
    def bounded(self) -> bool:
        """Whether a time bound is set (records without a readable time are then left out)."""
        return self.since is not None or self.until is not None

    @property
    def empty(self) -> bool:
        """Whether the filter keeps every record."""
        return not (self.bounded or self.user or self.bed or self.action)


def record_time(record: Mapping[str, Any]) -> float | None:
    """The record's ``ts`` as UTC epoch seconds, or None when it is not an ISO 8601 time.

    The writer always writes UTC with a ``Z``; a time without an offset is read as UTC too,
    because the trail has no other zone, rather than as the reader's local time.
    """
    ts = record.get("ts")
    if not isinstance(ts, str):
        return None
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _text(value: object) -> str:
    """A text field's value, or "" for anything else (a hostile or broken record)."""
    return value if isinstance(value, str) else ""


def _details(record: _Record) -> Mapping[str, Any]:
    details = record.get("details")
    return details if isinstance(details, dict | Mapping) else {}


def _time_predicate(since: float | None, until: float | None) -> _Predicate:
    def inside(record: _Record) -> bool:
        when = record_time(record)
        if when is None:
            return False
        return (since is None or when >= since) and (until is None or when < until)

    return inside


def _user_predicate(user: str) -> _Predicate:
    wanted = user.casefold()
    return lambda record: _text(record.get("actor")).casefold() == wanted


def _bed_predicate(bed: str) -> _Predicate:
    wanted = bed.casefold()

    def at_bed(record: _Record) -> bool:
        if _text(record.get("target")).casefold() == wanted:
            return True
        details = _details(record)
        return any(_text(details.get(key)).casefold() == wanted for key in BED_DETAIL_KEYS)

    return at_bed


def _action_predicate(action: str) -> _Predicate:
    prefix = action + "."

    def named(record: _Record) -> bool:
        name = _text(record.get("action"))
        return name == action or name.startswith(prefix)

    return named


def _predicates(flt: AuditFilter) -> list[_Predicate]:
    """One test per criterion that is set; the cheap text tests first, the time parse last."""
    tests: list[_Predicate] = []
    if flt.action:
        tests.append(_action_predicate(flt.action))
    if flt.user:
        tests.append(_user_predicate(flt.user))
    if flt.bed:
        tests.append(_bed_predicate(flt.bed))
    if flt.bounded:
        tests.append(_time_predicate(flt.since, flt.until))
    return tests


def select(records: Iterable[Mapping[str, Any]], flt: AuditFilter) -> list[Mapping[str, Any]]:
    """The records that match every criterion of ``flt``, in their original (trail) order."""
    tests = _predicates(flt)
    if not tests:
        return list(records)
    if len(tests) == 1:  # the usual case, and a third faster without the all() around it
        (test,) = tests
        return [record for record in records if test(record)]
    return [record for record in records if all(test(record) for test in tests)]


def _natural(text: str) -> list[int | str]:
    # "Bed 2" before "Bed 10", "anna" next to "Anna": numbers compare as numbers, case folded.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text.casefold())]


def _distinct(values: Iterable[str]) -> list[str]:
    """Non-empty values, once each (case-insensitively: the filter cannot tell them apart),
    spelled as first seen, in natural order."""
    seen: dict[str, str] = {}
    for value in values:
        if value:
            seen.setdefault(value.casefold(), value)
    return sorted(seen.values(), key=_natural)


def users(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct actors, for the user filter's choices."""
    return _distinct(_text(record.get("actor")) for record in records)


def beds(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct beds named in the trail, for the bed filter's choices.

    A details ``bed`` / ``from`` / ``to`` names a bed wherever it appears. A target is also a
    device id, an alarm id, a path or a host, so it counts only when it looks like a bed label
    or is named as a bed elsewhere; the filter itself (:func:`select`) takes any text.
    """
    named: dict[str, None] = {}  # dicts, not sets: the first spelling seen is the one shown
    targets: dict[str, None] = {}
    for record in records:
        targets[_text(record.get("target"))] = None
        details = _details(record)
        for key in BED_DETAIL_KEYS:
            named[_text(details.get(key))] = None
    known = {name.casefold() for name in named}
    bed_like = (t for t in targets if t.casefold() in known or _BED_LABEL.fullmatch(t))
    return _distinct([*named, *bed_like])


def action_groups(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every action name and each of its dotted prefixes (``alarm``, ``alarm.acknowledge``),
    sorted so that a group comes right before its members."""
    found: set[str] = set()
    for record in records:
        parts = _text(record.get("action")).split(".")
        for end in range(1, len(parts) + 1):
            name = ".".join(parts[:end])
            if name:
                found.add(name)
    return sorted(found, key=lambda name: name.split("."))
