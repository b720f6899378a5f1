"""A restore's mark in the audit trail: what tells a restored folder from a rolled-back one.

Both look the same from outside: the trail ends before a checkpoint the station published earlier
(the keyring's anchor, the broker's retained message). A rollback hides records; a restore from a
backup (``station restore``) loses them too, but says so: it appends a ``station.restore`` record
naming the backup's head and what it replaced, and that record is **signed by the station key**
(``sig``, over its hash, in its own context) besides the seal of its epoch. The start check reads
the trail without the epoch keys, so only a signature it can check against the station key alone
keeps someone who can write the folder, but has no key, from appending a restore of their own.

The rule (:func:`superseding`): a published checkpoint the trail does not hold is not a rollback
when a signed restore in the trail names it as replaced, or was made after it (its signed time is
later). Every checkpoint made before a restore that the restored trail does not hold was lost by
that restore, which the record states; a checkpoint made after the restore and missing from the
trail means the restored trail was itself put back, and is a rollback like any other. So an old
restore record cannot excuse a later rollback, and a folder copied back by hand has none.

Used by the trail's running end (:mod:`station.services.audit.trail_chain`, the station's start
check and the broker check) and by verification (:mod:`station.services.audit.trail`), so both
apply one rule. Pure functions; any thread.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.domain.audit.chain import parse_record, record_hash
from station.domain.audit.keyed import Published
from station.domain.audit.query import record_time

RESTORE_ACTION = "station.restore"
RESTORE_CONTEXT = b"station-audit-restore/1\n"
_NEEDLE = RESTORE_ACTION.encode("ascii")


@dataclass(frozen=True)
class RestoreMark:
    """A signed restore found in a trail: where, when, and the points it names as replaced."""

    seq: int
    at: float
    replaced: frozenset[tuple[int, str]]


def sign_restore(record: dict[str, Any], station_key: Ed25519PrivateKey) -> None:
    """Add ``sig``: the station key's signature over the restore record's ``hash``."""
    message = RESTORE_CONTEXT + str(record["hash"]).encode("ascii")
    record["sig"] = base64.b64encode(station_key.sign(message)).decode("ascii")


def _signed(record: Mapping[str, Any], public: Ed25519PublicKey) -> bool:
    signature, digest = record.get("sig"), record.get("hash")
    if not isinstance(signature, str) or not isinstance(digest, str):
        return False
    try:
        if record_hash(record) != digest:
            return False
        raw = base64.b64decode(signature, validate=True)
        public.verify(raw, RESTORE_CONTEXT + digest.encode("ascii"))
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError, RecursionError):
        return False
    return True


def _points(details: Mapping[str, Any]) -> frozenset[tuple[int, str]]:
    """The ``(seq, hash)`` points a restore's ``details.replaced`` names."""
    replaced = details.get("replaced")
    found: set[tuple[int, str]] = set()
    if isinstance(replaced, Mapping):
        for point in replaced.values():
            if isinstance(point, Mapping):
                seq, digest = point.get("seq"), point.get("hash")
                if isinstance(seq, int) and not isinstance(seq, bool) and isinstance(digest, str):
                    found.add((seq, digest))
    return frozenset(found)


def restore_mark(record: Mapping[str, Any], public: Ed25519PublicKey) -> RestoreMark | None:
    """The mark of ``record`` if it is a restore intact and signed by ``public``, else None."""
    if record.get("action") != RESTORE_ACTION or not _signed(record, public):
        return None
    at = record_time(record)
    details = record.get("details")
    if at is None or not isinstance(details, Mapping):
        return None
    return RestoreMark(int(record["seq"]), at, _points(details))


def marks_in(lines: Iterable[bytes | str], public: Ed25519PublicKey) -> list[RestoreMark]:
    """The signed restores among a trail's lines, in order (a line that does not even name the
    action is not parsed: this runs over whole trails)."""
    marks: list[RestoreMark] = []
    for line in lines:
        raw = line.encode("utf-8") if isinstance(line, str) else line
        if _NEEDLE not in raw:
            continue
        record = parse_record(raw)
        mark = restore_mark(record, public) if record is not None else None
        if mark is not None:
            marks.append(mark)
    return marks


def superseding(checkpoint: Published, marks: Sequence[RestoreMark]) -> RestoreMark | None:
    """The restore that accounts for ``checkpoint`` missing from the trail, or None (then it is
    a rollback); see the module docstring."""
    made = record_time(checkpoint.record)
    for mark in reversed(marks):
        if (checkpoint.seq, checkpoint.hash) in mark.replaced:
            return mark
        if made is not None and made < mark.at:
            return mark
    return None
