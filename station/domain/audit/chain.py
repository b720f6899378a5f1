"""Hash-chained audit records (CONTRACT §6): building, encoding and verifying them. Stdlib only.

Every record carries ``hash``, the SHA-256 of its own canonical JSON, and ``prev``, its
predecessor's ``hash``; ``seq`` counts from 1. So an edited, deleted, inserted or swapped line
breaks the chain at a place :func:`verify_lines` can name. A bare chain cannot see its last records
cut off, so the writer also keeps a *head* (the last ``seq`` and ``hash`` it made durable) that
verification checks the end against. Recomputing the whole chain needs only write access; the
keyed fields that stop that will be listed in :data:`UNHASHED_KEYS`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, NamedTuple

from station.domain.audit import safe_json
from station.domain.timefmt import iso_ms

GENESIS = "0" * 64
"""The ``prev`` of the first record."""

KEYED_KEYS: frozenset[str] = frozenset({"seal", "sig"})
"""What the keyed protection adds over the hash (:mod:`station.domain.audit.keyed`): a record's
``seal`` by its epoch's key, a checkpoint's ``sig`` by the station's key."""

UNHASHED_KEYS: frozenset[str] = frozenset({"hash", *KEYED_KEYS})
"""Keys left out of the hashed body: the hash itself and the keyed fields made over it."""

OUTCOMES = frozenset({"success", "failure", "denied"})
_TEXT_KEYS = ("ts", "actor", "role", "action", "target", "outcome", "prev", "hash")
REQUIRED_KEYS = frozenset({"seq", "details", *_TEXT_KEYS})

# json.dumps(ensure_ascii=False) leaves these raw, but str.splitlines() breaks lines on them; an
# actor name holding one must not look like two records to a reader that splits that way.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on a trail.

    Attributes:
        ok: the trail is intact.
        records: how many records verified before the first fault (all of them when ok).
        line: 1-based line of the first bad record; one past the end for records cut off the end.
        seq: the ``seq`` of that record (or of the first missing one), when known.
        kind: ``edited``, ``deleted``, ``inserted``, ``reordered``, ``truncated`` (records cut
            off the end), ``malformed`` or ``torn_tail``; the keyed layer adds ``recomputed``,
            ``unkeyed``, ``rolled_back`` and ``unsigned_head``.
        message: one sentence for a person, naming the line and seq.
    """

    ok: bool
    records: int
    line: int | None = None
    seq: int | None = None
    kind: str | None = None
    message: str = ""


class _Link(NamedTuple):
    seq: int
    prev: str
    hash: str


_START = _Link(0, "", GENESIS)


def _dumps(obj: Any) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_json(obj: Any) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, UTF-8, JSON escapes for ``\\n`` and ``"``.

    Raises:
        ValueError: for NaN/Infinity or text that is not encodable (a lone surrogate).
    """
    return _dumps(obj).encode("utf-8")


def encode_line(record: Mapping[str, Any]) -> bytes:
    """One record as one line of the trail, newline included; no content can start another line."""
    text = _dumps(record)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text.encode("utf-8") + b"\n"


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 hex over the canonical JSON of ``record`` without :data:`UNHASHED_KEYS`."""
    body = {key: value for key, value in record.items() if key not in UNHASHED_KEYS}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _text(value: object) -> str:
    # A lone surrogate (from a hostile JSON "\ud800") cannot be written as UTF-8; "?" it.
    return str(value).encode("utf-8", "replace").decode("utf-8")


def _json_safe(value: Any) -> Any:
    """Details as plain JSON, so the writer never fails on a caller's odd value."""
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {_text(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return _text(value)


def make_record(
    seq: int,
    ts: float,
    actor: str,
    role: str,
    action: str,
    target: str,
    outcome: str,
    details: Mapping[str, Any] | None,
    prev: str,
    *,
    where: str = "",
    epoch: int = 0,
) -> dict[str, Any]:
    """Build the next record of a chain, ``hash`` included.

    Args:
        seq: its position, 1 for the first record.
        ts: when it happened, UTC epoch seconds.
        actor: who (a user name, or ``station``); untrusted text is fine.
        role: the actor's role when it acted.
        action: dotted verb, e.g. ``alarm.acknowledge``.
        target: what it acted on (a bed, device, alarm id), or ``""``.
        outcome: ``success``, ``failure`` or ``denied``.
        details: extra JSON-able facts; other values are stored as their text.
        prev: the previous record's ``hash``, :data:`GENESIS` for the first.
        where: the station and host it happened at (NIST AU-3 "where").
        epoch: the key epoch that seals it (0: not keyed), see :mod:`station.domain.audit.keyed`.

    Raises:
        ValueError: for a bad ``seq`` or ``outcome`` (a programming error, not bad data).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
    if seq < 1:
        raise ValueError(f"seq starts at 1, got {seq}")
    record: dict[str, Any] = {
        "seq": seq,
        "ts": iso_ms(ts),
        "actor": _text(actor),
        "role": _text(role),
        "action": _text(action),
        "target": _text(target),
        "outcome": outcome,
        "details": _json_safe(dict(details or {})),
        "where": _text(where),
        "epoch": epoch,
        "prev": prev,
    }
    record["hash"] = record_hash(record)
    return record


def load_object(line: str | bytes) -> dict[str, Any] | str:
    """The JSON object on a line, or why there is none (:func:`safe_json.loads`: bounded in
    length and depth, no duplicated keys, no number that is not finite)."""
    try:
        obj = safe_json.loads(line)
    except ValueError as exc:
        return f"not a JSON object ({str(exc)[:80]})"
    if not isinstance(obj, dict):
        return "not a JSON object"
    return obj


def _shape_error(obj: Mapping[str, Any]) -> str | None:
    missing = REQUIRED_KEYS - obj.keys()
    if missing:
        return f"missing {', '.join(sorted(missing))}"
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return "seq is not a positive integer"
    bad = [key for key in _TEXT_KEYS if not isinstance(obj[key], str)]
    if bad:
        return f"{', '.join(bad)} not text"
    if not isinstance(obj["details"], dict):
        return "details is not an object"
    if obj["outcome"] not in OUTCOMES:
        return f"unknown outcome {obj['outcome']!r}"
    return None


def parse_record(line: str | bytes) -> dict[str, Any] | None:
    """The record on a line if it has the record's shape (its hash is not checked), else None."""
    obj = load_object(line)
    if isinstance(obj, str) or _shape_error(obj) is not None:
        return None
    return obj


def last_chain_state(lines: Iterable[str | bytes]) -> tuple[int, str]:
    """``(seq, hash)`` of the last parseable record, ``(0, GENESIS)`` if none: where to resume."""
    state = (0, GENESIS)
    for line in lines:
        obj = parse_record(line)
        if obj is not None:
            state = (obj["seq"], obj["hash"])
    return state


def _numbered(lines: Iterable[str | bytes]) -> Iterator[tuple[int, str | bytes, bool]]:
    """``(line number, line, is last)``; a final empty string (from ``split``) is no line."""
    it = iter(lines)
    current = next(it, None)
    number = 1
    while current is not None:
        following = next(it, None)
        if following is None and not current:
            return
        yield number, current, following is None
        current, number = following, number + 1


def _follows(rec: _Link | None, before: _Link) -> bool:
    return rec is not None and rec.seq == before.seq + 1 and rec.prev == before.hash


def failure(line: int, seq: int | None, kind: str, why: str) -> VerifyResult:
    """The verdict on a trail whose first bad record is on ``line``."""
    # Every line before the first bad one is a verified record, so `records` is line - 1.
    where = f"line {line} (seq {seq if seq is not None else '?'})"
    return VerifyResult(False, line - 1, line, seq, kind, f"{where}: {why}")


def _check(line: str | bytes, is_last: bool, number: int) -> _Link | VerifyResult:
    """The line as a link whose own hash holds, or the verdict on why it is not one."""
    obj = load_object(line)
    if isinstance(obj, str):
        ended = line.endswith(b"\n") if isinstance(line, bytes) else line.endswith("\n")
        if is_last and not ended:
            return failure(number, None, "torn_tail", f"last line is cut short: {obj}")
        return failure(number, None, "malformed", obj)
    claimed = obj.get("seq") if isinstance(obj.get("seq"), int) else None
    if not isinstance(obj.get("hash"), str):
        return failure(number, claimed, "malformed", "no hash")
    try:
        intact = record_hash(obj) == obj["hash"]
    except (ValueError, RecursionError) as exc:  # NaN, a lone surrogate, absurd nesting
        return failure(number, claimed, "malformed", f"cannot be hashed: {exc}")
    if not intact:
        return failure(number, claimed, "edited", "content does not match its hash")
    problem = _shape_error(obj)
    if problem is not None:
        return failure(number, claimed, "malformed", problem)
    return _Link(obj["seq"], obj["prev"], obj["hash"])


def verify_lines(
    lines: Iterable[str | bytes],
    *,
    head: tuple[int, str] | None = None,
    start: tuple[int, str] | None = None,
    links: dict[int, tuple[int, str]] | None = None,
) -> VerifyResult:
    """Check a trail's lines in order and name the first bad record and what was done to it.

    Where the chain breaks, the next two lines decide between the readings of a single change:
    a swap (the out-of-place record chains after its neighbour), an insertion (the chain carries
    on around one line), a deletion (``seq`` jumps and the chain carries on from there).

    Args:
        lines: the file's lines, newline kept (a last line without one that does not parse is a
            torn tail: the writer died mid-line, which is not tampering but is not intact).
        head: ``(seq, hash)`` the writer last made durable. With it, records cut off the end are
            found, and so is a change at the very end whose two readings the lines cannot tell.
        start: ``(seq, prev)`` of the first record when the lines are a slice of a trail (an
            export from a date on); by default the trail starts at seq 1 after :data:`GENESIS`.
        links: filled with ``{seq: (line, hash)}`` of every record verified, for a caller that
            needs them without parsing the lines again.

    Returns:
        The verdict; ``ok`` with 0 records for an empty trail.
    """
    before = last = _START if start is None else _Link(start[0] - 1, "", start[1])
    records = 0
    head_seen: tuple[int, str] | None = None
    entries = _numbered(lines)
    for number, line, is_last in entries:
        checked = _check(line, is_last, number)
        if isinstance(checked, VerifyResult):
            if checked.kind == "torn_tail" and head is not None and head[0] > last.seq:
                # The head is written only after the batch is durable: a power cut cannot
                # leave it ahead of a half-written line, so this tail was cut.
                why = f"breaks off mid-line after seq {last.seq}, but seq {head[0]} was written"
                return failure(number, last.seq + 1, "truncated", why)
            return checked
        if not _follows(checked, last):
            ahead = [_check(text, False, n) for n, text, _ in islice(entries, 2)]
            return _classify(number, checked, last, before, ahead=ahead, head=head)
        before, last = last, checked
        records += 1
        if links is not None:
            links[checked.seq] = (number, checked.hash)
        if head is not None and checked.seq == head[0]:
            head_seen = (number, checked.hash)
    if head is not None and head[0] > last.seq:
        why = f"the trail ends at seq {last.seq}, but seq {head[0]} was written: tail cut off"
        return failure(records + 1, last.seq + 1, "truncated", why)
    if head is not None and head_seen is not None and head_seen[1] != head[1]:
        why = "differs from the record written at that seq: edited and re-hashed"
        return failure(head_seen[0], head[0], "edited", why)
    return VerifyResult(True, records, message=f"{records} records, chain intact")


def _classify(
    j: int,
    rec: _Link,
    last: _Link,
    before: _Link,
    *,
    ahead: list[_Link | VerifyResult],
    head: tuple[int, str] | None,
) -> VerifyResult:
    """Name the change that best explains ``rec`` (line ``j``) not following ``last``."""
    # A line ahead that is itself bad (or missing) tells nothing about this one.
    nxt, nxt2 = (a if isinstance(a, _Link) else None for a in [*ahead, None, None][:2])
    earlier = j > 1  # line j-1 holds `last`, which may itself be the intruder
    if nxt is not None:
        if _follows(nxt, last) and _follows(rec, nxt) and (nxt2 is None or _follows(nxt2, rec)):
            why = f"comes before seq {nxt.seq} on line {j + 1}: the two were swapped"
            return failure(j, rec.seq, "reordered", why)
        if _follows(nxt, last):
            why = f"is not in the chain: line {j + 1} carries on from seq {last.seq}"
            return failure(j, rec.seq, "inserted", why)
        if earlier and _follows(rec, before) and _follows(nxt, rec):
            why = f"is not in the chain: line {j} carries on from the record before it"
            return failure(j - 1, last.seq, "inserted", why)
    elif head is not None and earlier:
        if head == (last.seq, last.hash):
            why = f"is not in the chain: the last record written was seq {last.seq} on line {j - 1}"
            return failure(j, rec.seq, "inserted", why)
        if head == (rec.seq, rec.hash) and _follows(rec, before):
            why = f"is not in the chain: line {j} carries on from the record before it"
            return failure(j - 1, last.seq, "inserted", why)
    expected = last.seq + 1
    if rec.seq > expected:
        gap = f"seq {expected}" + (f" to {rec.seq - 1}" if rec.seq - 1 > expected else "")
        return failure(j, rec.seq, "deleted", f"follows seq {last.seq}: {gap} deleted")
    if rec.seq == expected and earlier and (nxt is None or _follows(nxt, rec)):
        why = f"no longer has the hash line {j} chains to: edited and re-hashed"
        return failure(j - 1, last.seq, "edited", why)
    if rec.seq == expected:
        return failure(j, rec.seq, "edited", "its prev was changed and it was re-hashed")
    # A seq the chain has passed: a swap or a move would have shown as a gap or a swap by now,
    # so this is a twin or a replay of an earlier record.
    where = f"of line {j - 1}" if rec.seq == last.seq else "from earlier in the trail"
    return failure(j, rec.seq, "inserted", f"repeats seq {rec.seq} {where}: inserted")
