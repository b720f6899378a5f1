"""The station's own check of its trail at start: the chain, every checkpoint, the signed head.

Why a module of its own: the full verification (:func:`station.domain.audit.keyed.verify_trail`)
checks one epoch seal per record, ~0.1 ms each, so seconds for a full day's file, too long to
hold up the station's start. This check costs one hash per record and one signature per
checkpoint, and still finds everything done without the station key: an edited, deleted,
inserted or reordered record breaks the chain; a chain recomputed around a change alters the hash
of the next checkpoint, whose signature then fails; records after the last checkpoint are
vouched for by the signed head (:mod:`station.domain.audit.head`), so a cut tail with a head
rewritten to match is found too. The per-record seals (which also stop a thief of the station key
from re-sealing older records) are checked after the start, off the caller's thread, by the
writer (:mod:`station.services.audit.start_check`). Pure; any thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.domain.audit.chain import VerifyResult, failure, load_object, verify_lines
from station.domain.audit.head import HEAD_KIND, Head, TrailEnd, head_problem
from station.domain.audit.keyed import CHECKPOINT_ACTION, checkpoint_signed

_NEEDLE = CHECKPOINT_ACTION.encode("ascii")


def verify_quick(
    lines: Sequence[bytes],
    station_key: Ed25519PublicKey,
    *,
    head: Head | str | None,
    start: tuple[int, str] | None = None,
    links: dict[int, tuple[int, str]] | None = None,
) -> VerifyResult:
    """Check the chain, the signature of every checkpoint and the head (see the module
    docstring); the head must be signed, or a stop checkpoint end the trail.

    Args:
        lines: the trail's lines in order, or a slice starting at ``start``.
        head: the writer's ``audit.head`` as read (a string: why it could not be read).
        start: ``(seq, prev)`` of the first line of a slice.
        links: filled with ``{seq: (line, hash)}`` of the records verified.
    """
    found: dict[int, tuple[int, str]] = {} if links is None else links
    point = head.point if isinstance(head, Head) else None
    chain = verify_lines(lines, head=point, start=start, links=found)
    stop = len(lines) if chain.ok or chain.line is None else chain.line - 1
    checkpoint, final = 0, False
    for number, line in enumerate(lines[:stop], start=1):
        if _NEEDLE not in line:
            continue
        obj = load_object(line)
        if isinstance(obj, str) or obj.get("action") != CHECKPOINT_ACTION:
            continue
        seq = obj.get("seq") if isinstance(obj.get("seq"), int) else None
        if not checkpoint_signed(obj, station_key):
            why = (
                "checkpoint signature does not verify: forged or recomputed without the station key"
            )
            return failure(number, seq, "recomputed", why)
        details = obj.get("details")
        checkpoint = seq or 0
        final = isinstance(details, dict) and details.get("opens") is None
    if not chain.ok:
        return chain
    last = max(found, default=(start[0] - 1) if start else 0)
    digest = found[last][1] if last in found else ""
    end = TrailEnd(last, digest, final and checkpoint == last and last > 0, checkpoint)
    problem = head_problem(head, end, station_key)
    if problem is not None:
        return failure(chain.records + 1, last + 1, HEAD_KIND, problem)
    return chain
