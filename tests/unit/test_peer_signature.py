"""The signature on the events the stations of one ward send each other (the hardening issue's
"Peers" finding): made by the sender's audit key, checked against the allowlist of peer stations,
refused when missing, altered, made with another key or naming another station. Pure: no Qt, no
network.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.domain.peer_signature import (
    SIGNATURE_FIELDS,
    PeerKeys,
    private_key_b64,
    seal,
    unsealed,
)
from station.domain.vouchers.keys import key_id
from station.services.audit.keys import encode_station_key

KEY_A = Ed25519PrivateKey.generate()
KEY_B = Ed25519PrivateKey.generate()
ACK = {
    "alarm_id": "0123456789abcdef",
    "device_id": "monitor-a",
    "bed": "Bed 1",
    "kind": "physiological",
    "parameter": "heartrate",
    "priority": "high",
    "state": "acknowledged",
    "value": 171.5,
    "limit": 120.0,
    "message": "HR 171.5 > 120 — Bett 1",
    "raised_at": "2025-02-01T12:00:00.000Z",
    "at": "2025-02-01T12:00:05.000Z",
    "by": "nurse-ann",
    "source_time": None,
}


def peers() -> PeerKeys:
    return PeerKeys({"ward-a": KEY_A.public_key()})


def wire(doc: dict[str, Any]) -> dict[str, Any]:
    """What the receiver decodes: the sender's JSON bytes read back."""
    decoded = json.loads(json.dumps(doc, separators=(",", ":")).encode())
    assert isinstance(decoded, dict)
    return decoded


def reason(doc: dict[str, Any], station: str = "ward-a") -> str | None:
    refusal = peers().check(doc, station)
    return None if refusal is None else refusal.reason


def test_a_sealed_event_carries_station_key_id_and_signature_and_verifies_after_the_wire() -> None:
    sealed = seal(ACK, "ward-a", KEY_A)
    assert {k: sealed[k] for k in ACK} == ACK  # the contract's fields are untouched
    assert sealed["station"] == "ward-a"
    assert sealed["key_id"] == key_id(KEY_A.public_key())
    assert len(base64.b64decode(str(sealed["sig"]))) == 64
    assert reason(wire(sealed)) is None
    assert unsealed(sealed) == ACK
    assert not set(SIGNATURE_FIELDS) & set(unsealed(sealed))


def test_sealing_again_replaces_the_old_signature_fields() -> None:
    twice = seal(seal(ACK, "ward-x", KEY_B), "ward-a", KEY_A)
    assert reason(twice) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alarm_id", "fedcba9876543210"),  # another alarm
        ("by", "mallory"),  # another name
        ("state", "cleared"),
        ("value", 171.6),
        ("limit", None),
        ("extra", "added after signing"),
        ("key_id", "0000000000000000"),
    ],
)
def test_a_tampered_field_is_refused(field: str, value: object) -> None:
    doc = wire(seal(ACK, "ward-a", KEY_A))
    doc[field] = value
    expected = "wrong_key" if field == "key_id" else "bad_signature"
    assert reason(doc) == expected


def test_a_removed_field_is_refused() -> None:
    doc = wire(seal(ACK, "ward-a", KEY_A))
    del doc["by"]
    assert reason(doc) == "bad_signature"


def test_an_unsigned_event_is_refused() -> None:
    assert reason(dict(ACK)) == "unsigned"
    doc = wire(seal(ACK, "ward-a", KEY_A))
    del doc["sig"]
    assert reason(doc) == "unsigned"


def test_an_event_signed_with_another_key_is_refused() -> None:
    # Honest about its key: another key id than the one listed.
    assert reason(wire(seal(ACK, "ward-a", KEY_B))) == "wrong_key"
    # Claiming the listed key id: the signature does not verify with the listed key.
    forged = {k: v for k, v in seal(ACK, "ward-a", KEY_B).items() if k != "sig"}
    forged["key_id"] = key_id(KEY_A.public_key())
    body = json.dumps(forged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    forged["sig"] = base64.b64encode(KEY_B.sign(body.encode())).decode()
    assert reason(forged) == "bad_signature"


def test_a_station_not_on_the_list_is_refused_whatever_it_signs() -> None:
    assert reason(wire(seal(ACK, "ward-z", KEY_A)), station="ward-z") == "not_a_peer"
    assert reason(dict(ACK), station="ward-z") == "not_a_peer"


def test_a_peers_event_replayed_on_another_stations_topic_is_refused() -> None:
    keys = PeerKeys({"ward-a": KEY_A.public_key(), "ward-b": KEY_B.public_key()})
    refusal = keys.check(wire(seal(ACK, "ward-a", KEY_A)), "ward-b")
    assert refusal is not None
    assert refusal.reason == "station_mismatch"


@pytest.mark.parametrize("sig", ["not base64!", base64.b64encode(b"short").decode(), 42, None])
def test_a_malformed_signature_is_refused_without_raising(sig: object) -> None:
    doc = wire(seal(ACK, "ward-a", KEY_A))
    doc["sig"] = sig
    assert reason(doc) == ("unsigned" if sig is None else "bad_signature")


def test_a_payload_that_is_not_json_to_sign_is_refused_without_raising() -> None:
    doc = wire(seal(ACK, "ward-a", KEY_A))
    doc["value"] = math.nan  # json.loads reads NaN; canonical JSON has none
    assert reason(doc) == "bad_signature"


def test_the_allowlist_names_its_stations_and_their_key_ids() -> None:
    keys = peers()
    assert keys.stations == frozenset({"ward-a"})
    assert keys.key_id("ward-a") == key_id(KEY_A.public_key())
    assert keys.key_id("ward-b") is None


def test_the_station_key_reads_as_the_keyring_holds_it() -> None:
    key = private_key_b64(encode_station_key(KEY_A))
    assert key is not None
    assert key_id(key.public_key()) == key_id(KEY_A.public_key())
    assert private_key_b64(None) is None
    assert private_key_b64("") is None
    assert private_key_b64("not a key") is None
    assert private_key_b64(base64.b64encode(b"x" * 31).decode()) is None
