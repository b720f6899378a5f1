"""The trail's head, signed: what vouches for the records written after the last checkpoint.

Why a module of its own: checkpoints are signed, but the records after the last one are vouched
for only by ``audit.head`` (the last ``seq`` and ``hash`` the writer made durable), and an
unsigned head can be rewritten by anyone who can write the folder. After an unclean stop, cutting
the records after the last checkpoint and writing a head that names the new end left a trail that
``station audit verify`` and the station's start check both passed. So the writer signs its head
with the station key, in a context of its own (a head signature can never pass for a checkpoint's
or a seal), and the verifiers judge it here:

* a head signed by the station key is the end the trail must reach (records cut off it are
  ``truncated``; a record at its ``seq`` with another hash was ``edited``);
* a head that is missing, unreadable, unsigned or signed by another key vouches for nothing;
  that is no fault only when the trail ends with a *stop* checkpoint (signed, and nothing may
  follow it but a new start checkpoint), which is how a trail of the previous release, whose head
  was never signed, ends after a clean stop. Otherwise records after the last checkpoint may have
  been cut off: ``unsigned_head``.

What a signed head cannot do: someone who kept an earlier signed head can cut the trail back to
it (rollback inside the records after the last checkpoint); only a checkpoint kept outside the
folder (the broker, the keyring, the anchor log) bounds that. Pure; any thread.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from station.domain.audit import safe_json
from station.domain.audit.chain import canonical_json

HEAD_CONTEXT = b"station-audit-head/1\n"
HEAD_KIND = "unsigned_head"
"""The verification kind of a head that vouches for nothing where it had to."""


@dataclass(frozen=True)
class Head:
    """``audit.head`` as read: the last record made durable, its epoch, and the signature."""

    seq: int
    hash: str
    epoch: int
    sig: str | None = None

    @property
    def point(self) -> tuple[int, str]:
        """``(seq, hash)``, as the chain check takes it."""
        return self.seq, self.hash

    def to_doc(self) -> dict[str, Any]:
        """The head as written (``sig`` only when signed)."""
        doc: dict[str, Any] = {"seq": self.seq, "hash": self.hash, "epoch": self.epoch}
        if self.sig is not None:
            doc["sig"] = self.sig
        return doc

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        """Whether ``sig`` is ``key``'s signature over this head."""
        if self.sig is None:
            return False
        try:
            raw = base64.b64decode(self.sig, validate=True)
            key.verify(raw, _message(self.seq, self.hash, self.epoch))
        except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
            return False
        return True


def _message(seq: int, digest: str, epoch: int) -> bytes:
    return HEAD_CONTEXT + canonical_json({"seq": seq, "hash": digest, "epoch": epoch})


def signed_head(seq: int, digest: str, epoch: int, key: Ed25519PrivateKey | None) -> Head:
    """The head for the record ``(seq, digest)`` in ``epoch``, signed when ``key`` is given."""
    sig = None
    if key is not None:
        sig = base64.b64encode(key.sign(_message(seq, digest, epoch))).decode("ascii")
    return Head(seq, digest, epoch, sig)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_head(data: bytes | str) -> Head | str:
    """The head in ``data``, or why it is none (never raises: the folder may hold anything)."""
    try:
        doc = safe_json.loads(data, max_bytes=safe_json.MAX_SMALL_BYTES)
    except ValueError as exc:
        return f"audit.head is not readable JSON ({str(exc)[:80]})"
    if not isinstance(doc, dict):
        return "audit.head is not a JSON object"
    seq, digest, epoch = _count(doc.get("seq")), doc.get("hash"), doc.get("epoch", 0)
    sig = doc.get("sig")
    if seq is None or not isinstance(digest, str) or _count(epoch) is None:
        return "audit.head lacks a seq, a hash or an epoch"
    if sig is not None and not isinstance(sig, str):
        return "audit.head's signature is not text"
    return Head(seq, digest, int(epoch), sig)


@dataclass(frozen=True)
class TrailEnd:
    """What the verified lines say about the trail's end.

    Attributes:
        seq: the last record's ``seq`` (0: none).
        hash: its hash.
        final: it is a stop checkpoint whose signature verified (nothing unsigned follows it).
        checkpoint: the ``seq`` of the last signed checkpoint (0: none).
    """

    seq: int
    hash: str
    final: bool
    checkpoint: int


def head_problem(head: Head | str | None, end: TrailEnd, key: Ed25519PublicKey) -> str | None:
    """Why the head does not vouch for the trail's end as it must, or None.

    Args:
        head: the head read (a string: why it could not be read; None: there is none).
        end: the trail's end as the verified lines give it.
        key: the station key the head must be signed by.
    """
    if isinstance(head, Head) and head.signed_by(key):
        return None
    if end.final and (
        head is None or (isinstance(head, Head) and head.point == (end.seq, end.hash))
    ):
        return None  # a clean stop's end is signed by its checkpoint (the previous release)
    if end.seq == 0:
        return None  # an empty trail has nothing to vouch for
    after = (
        f"the last signed checkpoint (seq {end.checkpoint})"
        if end.checkpoint
        else "the start of the trail"
    )
    if head is None:
        state = "there is no audit.head"
    elif isinstance(head, str):
        state = head
    elif head.sig is None:
        state = "audit.head is not signed"
    else:
        state = "audit.head's signature does not verify under the station key"
    return (
        f"{state}: it was rewritten without the station key, so records after {after}"
        " may have been cut off"
    )
