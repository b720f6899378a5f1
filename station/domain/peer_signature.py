"""Signed peer events: what the stations of one ward send each other, signed by the sender.

Why: an alarm event on ``healthcare/station/<id>/alarms`` acknowledges that alarm on every
station of the ward, and a ward event on ``healthcare/station/<id>/ward`` changes a bed's limits
or pauses its audio there. The topic alone says who sent it only where the broker's ACL is
strict; any client that can publish there could otherwise silence a ward, and a free-text ``by``
was recorded as a nurse. So every such event carries the sending station's id, its key id and an
Ed25519 signature by its audit signing key (the key that already identifies the station to its
auditors, published beside its trail as ``station-audit.pub``), and a receiving station accepts
it only from a station its admin listed with that public key (``[peers] stations``).

The fields are added to the payload (CONTRACT §2 keeps its own; readers that ignore unknown keys,
such as a pager bridge, see no change):

- ``station``: the sender's station id, equal to the one in the topic;
- ``key_id``: the first 16 hex digits of SHA-256 of its raw public key (``station doctor`` and
  ``station keys generate`` print it), so a refusal can say "another key" rather than "forged";
- ``sig``: standard base64 of the Ed25519 signature over the canonical JSON (sorted keys, no
  spaces, UTF-8; :func:`~station.domain.audit.chain.canonical_json`) of the payload without
  ``sig``, so ``station`` and ``key_id`` are signed too.

Pure: no Qt, no paho; the keys are given, never read here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.domain.audit.chain import canonical_json
from station.domain.vouchers.keys import key_id

STATION_FIELD = "station"
KEY_ID_FIELD = "key_id"
SIG_FIELD = "sig"
SIGNATURE_FIELDS = (STATION_FIELD, KEY_ID_FIELD, SIG_FIELD)
"""What signing adds to a peer event; a reader of the event's own schema takes them off."""


def _body(doc: Mapping[str, object]) -> bytes:
    """The signed bytes: the canonical JSON of ``doc`` without ``sig``."""
    return canonical_json({k: v for k, v in doc.items() if k != SIG_FIELD})


def seal(event: Mapping[str, object], station: str, key: Ed25519PrivateKey) -> dict[str, object]:
    """``event`` with this station's id, key id and signature added (a new dict).

    Raises:
        ValueError: the event holds NaN, Infinity or text that is not UTF-8 (not JSON).
    """
    doc = {k: v for k, v in event.items() if k not in SIGNATURE_FIELDS}
    doc[STATION_FIELD] = station
    doc[KEY_ID_FIELD] = key_id(key.public_key())
    doc[SIG_FIELD] = base64.b64encode(key.sign(_body(doc))).decode("ascii")
    return doc


def unsealed(doc: Mapping[str, object]) -> dict[str, object]:
    """The event as its own schema reads it: ``doc`` without the signature fields."""
    return {k: v for k, v in doc.items() if k not in SIGNATURE_FIELDS}


@dataclass(frozen=True, slots=True)
class PeerRefusal:
    """Why a peer's event is not taken: ``reason`` is a short code for counting (``not_a_peer``,
    ``unsigned``, ``station_mismatch``, ``wrong_key``, ``bad_signature``), ``detail`` says more
    for the log and the audit record (never the payload itself)."""

    reason: str
    detail: str


class PeerKeys:
    """The allowlist: the ward's other stations by id, each with its public key.

    Args:
        keys: station id → that station's audit public key (its ``station-audit.pub``).
    """

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)
        self._ids = {station: key_id(key) for station, key in keys.items()}

    @property
    def stations(self) -> frozenset[str]:
        """The stations whose events are accepted (when signed by their key)."""
        return frozenset(self._keys)

    def key_id(self, station: str) -> str | None:
        """The key id listed for ``station``, or None when it is not a peer."""
        return self._ids.get(station)

    def check(self, doc: Mapping[str, object], station: str) -> PeerRefusal | None:
        """Why ``doc``, received on ``station``'s topic, is not that listed station's signed
        event; None when it is. Never raises.

        The topic's station must be listed, the payload must name that same station (a signed
        event of one peer replayed on another's topic is refused), carry the key id listed for
        it and a valid signature by that key over everything else it holds.
        """
        name = station[:64]
        key = self._keys.get(station)
        if key is None:
            return PeerRefusal("not_a_peer", f"station {name!r} is not in [peers] stations")
        sig = doc.get(SIG_FIELD)
        if sig is None:
            return PeerRefusal("unsigned", f"no {SIG_FIELD} from station {name!r}")
        if doc.get(STATION_FIELD) != station:
            said = str(doc.get(STATION_FIELD))[:64]
            return PeerRefusal("station_mismatch", f"topic {name!r}, payload station {said!r}")
        if doc.get(KEY_ID_FIELD) != self._ids[station]:
            said = str(doc.get(KEY_ID_FIELD))[:32]
            listed = self._ids[station]
            return PeerRefusal("wrong_key", f"key {said!r}, {name!r} is listed with {listed}")
        if not isinstance(sig, str):
            return PeerRefusal("bad_signature", f"{SIG_FIELD} is not text")
        try:
            body = _body(doc)
        except (ValueError, RecursionError):
            return PeerRefusal("bad_signature", "not canonical JSON (NaN, Infinity, too deep)")
        try:
            key.verify(base64.b64decode(sig, validate=True), body)
        except (binascii.Error, ValueError):
            return PeerRefusal("bad_signature", f"{SIG_FIELD} is not base64 of 64 bytes")
        except InvalidSignature:
            return PeerRefusal("bad_signature", f"not signed by the key listed for {name!r}")
        return None


def private_key_b64(text: str | None) -> Ed25519PrivateKey | None:
    """The station key as the keyring and ``STATION_AUDIT_KEY`` hold it (base64 of the raw
    32 bytes), or None when ``text`` is empty or not such a key."""
    if not text:
        return None
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError):
        return None
