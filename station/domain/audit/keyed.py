"""The audit trail's keyed protection: epoch seals, signed checkpoints, and their verification.

A hash chain alone can be recomputed by anyone who can write the file. So, as in journald's
forward-secure sealing and Certificate Transparency's signed tree heads, two keys the file does
not hold are added (CONTRACT §6, "what the keyed protection adds"):

* The **station key** (Ed25519, kept in the keyring) signs *checkpoints*: ordinary chained records
  (action ``audit.checkpoint``) whose ``sig`` covers their own ``hash``, and so, through ``prev``,
  every record before them. Each checkpoint also opens a new *epoch* by naming that epoch's public
  key. Checkpoints are written at start, every N records or T minutes and at stop,
  and published outside the trail (see :class:`Published`).
* Each **epoch key** (Ed25519, generated in memory, never stored) ``seal``s every record of its
  epoch; when the epoch ends the private key is dropped. A thief of the current key therefore
  cannot re-seal older records, and an auditor who holds only the station's public key can check
  every record on its own and name the first one rewritten. (An HMAC would need the verifier to
  hold the secret; a signature per record costs ~50 µs, nothing at audit rates.)

Verification runs the chain check of :func:`station.domain.audit.chain.verify_lines` (edited,
deleted, inserted, reordered, truncated, torn tail) and this keyed pass over the same lines; a
chain that is intact but whose seals or signatures fail was ``recomputed`` without the key. A trail
that is intact but older than a checkpoint published elsewhere was ``rolled_back``. The records
after the last checkpoint are vouched for by the head the writer signs
(:mod:`station.domain.audit.head`); a head that does not vouch for them is ``unsigned_head``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from station.domain.audit import safe_json
from station.domain.audit.chain import (
    VerifyResult,
    canonical_json,
    encode_line,
    failure,
    load_object,
    parse_record,
    record_hash,
    verify_lines,
)
from station.domain.audit.head import HEAD_KIND, Head, TrailEnd, head_problem
from station.domain.vouchers.keys import key_id, public_b64

CHECKPOINT_ACTION = "audit.checkpoint"
PACE_LINES = 64
"""Lines :func:`check_seals` checks between two calls of its ``pace``."""
SEAL_CONTEXT = b"station-audit-seal/1\n"
CHECKPOINT_CONTEXT = b"station-audit-checkpoint/1\n"
_KEY_BYTES = 32


def _sign(key: Ed25519PrivateKey, context: bytes, digest: str) -> str:
    return base64.b64encode(key.sign(context + digest.encode("ascii"))).decode("ascii")


def _verifies(key: Ed25519PublicKey, context: bytes, digest: str, signature: object) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, context + digest.encode("ascii"))
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True


def seal(record: dict[str, Any], epoch_key: Ed25519PrivateKey) -> None:
    """Add ``seal``: the epoch key's signature over the record's ``hash``."""
    record["seal"] = _sign(epoch_key, SEAL_CONTEXT, record["hash"])


def sign_checkpoint(record: dict[str, Any], station_key: Ed25519PrivateKey) -> None:
    """Add ``sig``: the station key's signature over the checkpoint's own ``hash``."""
    record["sig"] = _sign(station_key, CHECKPOINT_CONTEXT, record["hash"])


def checkpoint_details(
    *,
    closes: int,
    opens: Ed25519PublicKey | None,
    epoch: int,
    records: int,
    reason: str,
    station_key: Ed25519PublicKey,
) -> dict[str, Any]:
    """What a checkpoint says: the epoch it closes and the one it opens (with its public key;
    none at stop), how many records the closed epoch sealed, why now, and which station key
    signs it."""
    return {
        "closes": closes,
        "opens": epoch if opens is not None else None,
        "epoch_key": public_b64(opens) if opens is not None else None,
        "records": records,
        "reason": reason,
        "station_key": key_id(station_key),
    }


@dataclass(frozen=True)
class Published:
    """A checkpoint as published outside the trail (the MQTT topic
    ``healthcare/station/<id>/audit``, retained; and the keyring). Whoever kept one can tell
    that a whole audit folder was put back to an older copy: the trail no longer holds it.

    It carries the whole checkpoint record, so its ``seq`` and time are covered by the record's
    hash, which the station key signed: none of it can be altered without the key."""

    station: str
    record: dict[str, Any]

    @property
    def seq(self) -> int:
        """The checkpoint's place in the chain."""
        return int(self.record["seq"])

    @property
    def hash(self) -> str:
        """The checkpoint record's hash (which the station key signed)."""
        return str(self.record["hash"])

    @property
    def ts(self) -> str:
        """When it was made (UTC, ISO)."""
        return str(self.record["ts"])

    def to_json(self) -> str:
        """Compact JSON, as published."""
        return canonical_json({"station": self.station, "record": self.record}).decode("utf-8")

    @classmethod
    def from_json(cls, text: str | bytes) -> Published:
        """Parse a published checkpoint (its signature is checked by :meth:`verifies`); bounded
        like every verifier's read (:mod:`station.domain.audit.safe_json`).

        Raises:
            ValueError: not one (with what is wrong).
        """
        try:
            doc = safe_json.loads(text, max_bytes=safe_json.MAX_SMALL_BYTES)
        except ValueError as exc:
            raise ValueError(f"not a published audit checkpoint: {exc}") from None
        if not isinstance(doc, dict) or set(doc) != {"station", "record"}:
            raise ValueError("not a published audit checkpoint")
        record = doc["record"]
        if not isinstance(doc["station"], str) or not isinstance(record, dict):
            raise ValueError("the published checkpoint holds no audit record")
        try:
            parsed = parse_record(encode_line(record))
        except ValueError:  # a lone surrogate cannot be encoded
            parsed = None
        if parsed is None:
            raise ValueError("the published checkpoint holds no audit record")
        if record["action"] != CHECKPOINT_ACTION:
            raise ValueError("the published record is not a checkpoint")
        if doc["station"] != record["target"]:  # the station is not signed; the target is
            raise ValueError("the published checkpoint names another station than its record")
        return cls(doc["station"], record)

    def verifies(self, station_key: Ed25519PublicKey) -> bool:
        """Whether the record is intact and the station key signed it."""
        try:
            intact = record_hash(self.record) == self.record.get("hash")
        except (ValueError, RecursionError):
            return False
        sig = self.record.get("sig")
        return intact and _verifies(station_key, CHECKPOINT_CONTEXT, self.hash, sig)


def epoch_keys(lines: Iterable[str | bytes], station_key: Ed25519PublicKey) -> dict[int, str]:
    """``{epoch: public key (base64)}`` from the signed checkpoint lines among ``lines``; lines
    that are not checkpoints, or whose own hash or signature fails, are passed over.

    An export that starts in the middle of the trail carries the checkpoints that opened its
    epochs (each verifies on its own), so its first records can be checked."""
    found: dict[int, str] = {}
    for line in lines:
        obj = load_object(line)
        if isinstance(obj, str) or obj.get("action") != CHECKPOINT_ACTION:
            continue
        details = obj.get("details")
        if not checkpoint_signed(obj, station_key):
            continue
        if isinstance(details, dict) and isinstance(details.get("opens"), int):
            found[details["opens"]] = str(details.get("epoch_key"))
    return found


def checkpoint_signed(obj: Mapping[str, Any], station_key: Ed25519PublicKey) -> bool:
    """Whether ``obj`` is intact (its hash holds) and ``station_key`` signed that hash as a
    checkpoint's; never raises."""
    try:
        digest = record_hash(obj)
    except (ValueError, RecursionError):
        return False
    return digest == obj.get("hash") and _verifies(
        station_key, CHECKPOINT_CONTEXT, digest, obj.get("sig")
    )


def _public(text: object) -> Ed25519PublicKey | None:
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw) if len(raw) == _KEY_BYTES else None
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class _Fault:
    line: int
    seq: int | None
    kind: str
    why: str


@dataclass
class _KeyedState:
    """What the keyed pass learnt: the last signed checkpoint and each record's hash by seq."""

    checkpoints: int = 0
    last_checkpoint: tuple[int, str] | None = None  # (seq, ts)
    last_final: bool = False  # the last checkpoint is a stop checkpoint (it opens no epoch)
    sealed_after: int = 0  # records after the last checkpoint
    hashes: dict[int, tuple[int, str]] = field(default_factory=dict)  # seq -> (line, hash)

    def end(self) -> TrailEnd:
        """The trail's end as these lines give it (see :class:`TrailEnd`)."""
        last = max(self.hashes, default=0)
        digest = self.hashes[last][1] if last else ""
        checkpoint = self.last_checkpoint[0] if self.last_checkpoint else 0
        final = self.last_final and not self.sealed_after and checkpoint == last
        return TrailEnd(last, digest, final, checkpoint)


class _KeyedPass:
    """Walks the lines once, checking every seal and checkpoint signature in order."""

    def __init__(
        self, station_key: Ed25519PublicKey, epochs: Mapping[int, str], *, lenient: bool = False
    ) -> None:
        self._station = station_key
        self._lenient = lenient  # records before the first checkpoint: their epoch is unknown
        self._keys: dict[int, Ed25519PublicKey | None] = {e: _public(k) for e, k in epochs.items()}
        self._open: int | None = None
        self._highest = 0
        self._started = bool(epochs)  # a slice: its first epoch comes from the carried keys
        self.state = _KeyedState()

    def run(
        self, lines: Sequence[str | bytes], stop: int, pace: Callable[[], None] | None = None
    ) -> _Fault | None:
        for number, line in enumerate(lines[:stop], start=1):
            if pace is not None and number % PACE_LINES == 0:
                pace()
            obj = load_object(line)
            if isinstance(obj, str):
                return None  # the chain pass names it
            fault = self._check(number, obj)
            if fault is not None:
                return fault
        return None

    def _check(self, number: int, obj: dict[str, Any]) -> _Fault | None:
        seq = obj.get("seq") if isinstance(obj.get("seq"), int) else None
        try:
            digest = record_hash(obj)
        except (ValueError, RecursionError):
            return None  # not hashable: the chain pass names it
        if seq is not None:
            self.state.hashes[seq] = (number, str(obj.get("hash")))
        if obj.get("action") == CHECKPOINT_ACTION:
            return self._checkpoint(number, seq, obj, digest)
        return self._record(number, seq, obj, digest)

    def _checkpoint(
        self, number: int, seq: int | None, obj: dict[str, Any], digest: str
    ) -> _Fault | None:
        if not _verifies(self._station, CHECKPOINT_CONTEXT, digest, obj.get("sig")):
            why = (
                "checkpoint signature does not verify: forged or recomputed without the station key"
            )
            return _Fault(number, seq, "recomputed", why)
        found = obj.get("details")
        details: dict[str, Any] = found if isinstance(found, dict) else {}
        opens = details.get("opens")
        if opens is not None:
            key = _public(details.get("epoch_key"))
            if not isinstance(opens, int) or opens <= self._highest or key is None:
                return _Fault(number, seq, "recomputed", f"checkpoint reopens epoch {opens}")
            self._keys[opens] = key
            self._highest = opens
        self._open = opens
        self._started = True
        self.state.checkpoints += 1
        self.state.last_checkpoint = (seq or 0, str(obj.get("ts")))
        self.state.last_final = opens is None
        self.state.sealed_after = 0
        return None

    def _record(
        self, number: int, seq: int | None, obj: dict[str, Any], digest: str
    ) -> _Fault | None:
        if "seal" not in obj:
            why = "carries no seal: written without the station key, so it may have been rewritten"
            return _Fault(number, seq, "unkeyed", why)
        epoch = obj.get("epoch")
        if self._open is None and not self.state.checkpoints and self._started:
            self._open = epoch if isinstance(epoch, int) and epoch in self._keys else None
        key = self._keys.get(epoch) if isinstance(epoch, int) and epoch == self._open else None
        if key is None and self._lenient and not self.state.checkpoints:
            return None
        if key is None:
            why = f"sealed for epoch {epoch}, which no signed checkpoint had opened at this point"
            return _Fault(number, seq, "recomputed", why)
        if not _verifies(key, SEAL_CONTEXT, digest, obj.get("seal")):
            why = "its seal does not match its content: rewritten without its epoch's key"
            return _Fault(number, seq, "recomputed", why)
        self.state.sealed_after += 1
        return None


@dataclass(frozen=True)
class TrailReport:
    """The verdict, and for an intact trail what vouches for it."""

    result: VerifyResult
    key_id: str
    checkpoints: int = 0
    last_checkpoint: tuple[int, str] | None = None
    unsigned_tail: int = 0
    head_signed: int | None = None  # the seq a head signed by the station key names

    def line(self) -> str:
        """One line for a person: ``OK ...`` or ``FAIL line N (seq S): kind: why``."""
        r = self.result
        if not r.ok:
            seq = "?" if r.seq is None else r.seq
            return f"FAIL line {r.line} (seq {seq}): {r.kind}: {r.message}"
        text = f"OK {r.records} records, chain intact, sealed; station key {self.key_id}"
        if self.last_checkpoint is not None:
            seq, ts = self.last_checkpoint
            text += f"; signed checkpoint at seq {seq} ({ts})"
        if self.unsigned_tail:
            text += f"; {self.unsigned_tail} sealed records after it"
        if self.head_signed is not None:
            text += f"; head signed at seq {self.head_signed}"
        return text


def verify_trail(
    lines: Sequence[str | bytes],
    station_key: Ed25519PublicKey,
    *,
    head: tuple[int, str] | Head | str | None = None,
    start: tuple[int, str] | None = None,
    epochs: Mapping[int, str] | None = None,
    published: Sequence[Published] = (),
    head_required: bool = False,
) -> TrailReport:
    """Verify a trail's chain, every seal and checkpoint, the head and the published checkpoints.

    Args:
        lines: the trail's lines in order (all files of a rotated trail, oldest first).
        station_key: the station's public key, the only thing the verifier must trust.
        head: the end the trail must reach: ``(seq, hash)`` vouched for elsewhere (a bundle's
            signed manifest), or the writer's ``audit.head`` as read (:class:`Head`, or why it
            could not be read), which must then be signed by ``station_key`` unless a stop
            checkpoint ends the trail (:func:`station.domain.audit.head.head_problem`).
        head_required: judge the head even when there is none (the station's own folder).
        start: ``(seq, prev)`` of the first line when the lines are a slice (an export).
        epochs: epoch public keys carried with a slice (see :func:`epoch_keys`).
        published: checkpoints kept outside the trail; one the trail does not hold means the
            trail was rolled back (or cut and its head rewritten to match).

    Raises:
        ValueError: a published checkpoint is not signed by ``station_key``.
    """
    kid = key_id(station_key)
    for checkpoint in published:
        if not checkpoint.verifies(station_key):
            raise ValueError(
                f"the published checkpoint at seq {checkpoint.seq} is not signed by key {kid}"
            )
    point = head.point if isinstance(head, Head) else None if isinstance(head, str) else head
    chain = verify_lines(lines, head=point, start=start)
    keyed = _KeyedPass(station_key, epochs or {})
    stop = len(lines) if chain.ok or chain.line is None else chain.line
    fault = keyed.run(lines, stop)
    if fault is not None and (chain.ok or chain.line is None or fault.line < chain.line):
        return TrailReport(failure(fault.line, fault.seq, fault.kind, fault.why), kid)
    if not chain.ok:
        return TrailReport(chain, kid)
    state = keyed.state
    rolled = rolled_back(chain.records, state.hashes, published, start)
    if rolled is not None:
        return TrailReport(rolled, kid)
    signed: int | None = None
    if isinstance(head, Head | str) or head_required:
        written = head if isinstance(head, Head | str) else None
        problem = head_problem(written, state.end(), station_key)
        if problem is not None:
            last = max(state.hashes, default=(start[0] - 1) if start else 0)
            return TrailReport(failure(chain.records + 1, last + 1, HEAD_KIND, problem), kid)
        signed = (
            written.seq if isinstance(written, Head) and written.signed_by(station_key) else None
        )
    return TrailReport(
        chain, kid, state.checkpoints, state.last_checkpoint, state.sealed_after, signed
    )


def check_seals(
    lines: Sequence[str | bytes],
    station_key: Ed25519PublicKey,
    *,
    epochs: Mapping[int, str] | None = None,
    pace: Callable[[], None] | None = None,
    lenient: bool = False,
) -> VerifyResult | None:
    """The first record whose seal (or checkpoint whose signature) fails, or None: the keyed
    pass of :func:`verify_trail` alone, for lines whose chain was checked already.

    Args:
        epochs: epoch keys carried with a slice (see :func:`epoch_keys`).
        pace: called every :data:`PACE_LINES` lines, so a caller on a background thread can
            leave the interpreter to others (the check costs a signature per record).
        lenient: the lines start mid-trail and the checkpoint that opened their first epoch
            is not at hand (older files archived): records before the first checkpoint among
            them are not judged, rather than called forged.
    """
    fault = _KeyedPass(station_key, epochs or {}, lenient=lenient).run(lines, len(lines), pace)
    return None if fault is None else failure(fault.line, fault.seq, fault.kind, fault.why)


def rollback_problem(checkpoint: Published, held: str | None, last_seq: int) -> str | None:
    """Why a trail does not hold a checkpoint published outside it, or None if it does.

    Args:
        held: the hash the trail has at the checkpoint's ``seq`` (None: no record there).
        last_seq: the trail's last ``seq``.
    """
    if held == checkpoint.hash:
        return None
    if held is None and checkpoint.seq > last_seq:
        return (
            f"the trail ends at seq {last_seq}, but a checkpoint at seq {checkpoint.seq}"
            f" ({checkpoint.ts}) was published: rolled back to an older copy"
        )
    return (
        f"the trail does not hold the checkpoint published at seq {checkpoint.seq}"
        f" ({checkpoint.ts}): replaced by another copy"
    )


def rolled_back(
    records: int,
    hashes: Mapping[int, tuple[int, str]],
    published: Sequence[Published],
    start: tuple[int, str] | None,
) -> VerifyResult | None:
    """The verdict on the first published checkpoint (by ``seq``) the trail does not hold, or
    None; ``hashes`` maps each ``seq`` the lines hold to ``(line, hash)``."""
    last_seq = max(hashes, default=(start[0] - 1) if start else 0)
    for checkpoint in sorted(published, key=lambda c: c.seq):
        line, held = hashes.get(checkpoint.seq, (records + 1, None))
        if held is None and checkpoint.seq <= last_seq:
            continue  # before this slice of the trail
        why = rollback_problem(checkpoint, held, last_seq)
        if why is not None:
            seq = checkpoint.seq if held is not None else last_seq + 1
            return failure(line, seq, "rolled_back", why)
    return None
