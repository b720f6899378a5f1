"""The device registry's values: which devices are onboarded, to which bed, signing or not.

Pure data with its rules, no file access (the file is
:mod:`station.services.storage.device_registry`'s): the core thread holds a :class:`DeviceBook`
snapshot to route and check every message, the onboarding dialog and ``station devices`` change it
through the registry. A revoked device stays in the book, so its later messages are refused by name
and its voucher can never be used again.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from station.domain.audit.chain import canonical_json
from station.domain.file_format import format_problem
from station.domain.messages import DEVICE_ID_PATTERN

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
FORMAT = 1


def sign_message(raw: bytes, key: Ed25519PrivateKey) -> bytes:
    """A device's payload with its ``sig`` (CONTRACT §1): Ed25519 over the canonical JSON of the
    payload without ``sig``. What a signing device does; the simulator and tests use it. A
    payload that is not a JSON object is returned as it is (it cannot be signed)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(doc, dict):
        return raw
    doc.pop("sig", None)
    doc["sig"] = base64.b64encode(key.sign(canonical_json(doc))).decode("ascii")
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")


class RegistryError(ValueError):
    """A registry change that the rules refuse; the message is for the admin."""


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One onboarded device. ``bed`` is empty while the device is parked (released)."""

    device_id: str
    model: str
    serial: str
    manufacturer: str
    public_key: str  # base64 of the raw Ed25519 key the voucher vouched for
    bed: str
    signing: bool
    voucher_id: str
    onboarded_at: float
    onboarded_by: str
    revoked_at: float | None = None
    revoked_by: str | None = None
    assigned_at: float = 0.0  # the last bed change (reassign), for the audit of the change
    assigned_by: str = ""

    @property
    def active(self) -> bool:
        """Onboarded and not decommissioned."""
        return self.revoked_at is None

    def key(self) -> Ed25519PublicKey:
        """The device's public key (validated when the record was made)."""
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))

    def verifies(self, signature: str | None, body: bytes | None) -> str | None:
        """Why a message does not carry this device's signature, or None when it does."""
        if signature is None or body is None:
            return "unsigned message from a signing device"
        try:
            raw = base64.b64decode(signature, validate=True)
            self.key().verify(raw, body)
        except (binascii.Error, ValueError):
            return "signature is not base64 of 64 bytes"
        except InvalidSignature:
            return "bad signature: not made by the device's enrolled key"
        return None


def _record(raw: Mapping[str, Any]) -> DeviceRecord:
    try:
        rec = DeviceRecord(**raw)
    except TypeError as exc:
        raise RegistryError(f"device record has the wrong fields: {exc}") from None
    if not isinstance(rec.device_id, str) or not _DEVICE_ID.match(rec.device_id):
        raise RegistryError(f"device record with a bad device id: {rec.device_id!r}")
    try:
        rec.key()
    except (binascii.Error, ValueError, TypeError):
        raise RegistryError(f"{rec.device_id}: public key is not a raw Ed25519 key") from None
    return rec


@dataclass(frozen=True)
class DeviceBook:
    """An immutable snapshot of the registry, safe to hand to another thread."""

    records: Mapping[str, DeviceRecord] = field(default_factory=dict)

    def get(self, device_id: str) -> DeviceRecord | None:
        """The device's record, active or revoked."""
        return self.records.get(device_id)

    def __iter__(self) -> Iterator[DeviceRecord]:
        return iter(sorted(self.records.values(), key=lambda r: r.device_id))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def used_vouchers(self) -> frozenset[str]:
        """Voucher ids already used: a voucher onboards once, even after a revocation."""
        return frozenset(r.voucher_id for r in self.records.values())

    @property
    def revoked(self) -> frozenset[str]:
        """Devices that were decommissioned."""
        return frozenset(r.device_id for r in self.records.values() if not r.active)

    def on_bed(self, bed: str) -> DeviceRecord | None:
        """The active device feeding ``bed``, if any."""
        for rec in self.records.values():
            if rec.active and rec.bed == bed:
                return rec
        return None

    # -- changes (each returns a new book) -------------------------------------------------

    def onboard(self, rec: DeviceRecord) -> DeviceBook:
        """Add a device; refused when it is known (active or revoked) or the bed is taken."""
        old = self.records.get(rec.device_id)
        if old is not None:
            state = "is already onboarded" if old.active else "was decommissioned"
            raise RegistryError(f"{rec.device_id} {state}; a device is onboarded once")
        if rec.voucher_id in self.used_vouchers:
            raise RegistryError("this voucher was already used")
        self._bed_free(rec.bed, rec.device_id)
        return self._with(_record(asdict(rec)))

    def reassign(self, device_id: str, bed: str, by: str, at: float) -> DeviceBook:
        """Move an active device to another bed ("" parks it)."""
        rec = self._active(device_id)
        self._bed_free(bed, device_id)
        return self._with(replace(rec, bed=bed, assigned_by=by, assigned_at=at))

    def revoke(self, device_id: str, by: str, at: float) -> DeviceBook:
        """Decommission a device: its later messages are refused."""
        rec = self._active(device_id)
        return self._with(replace(rec, bed="", revoked_at=at, revoked_by=by))

    def _active(self, device_id: str) -> DeviceRecord:
        rec = self.records.get(device_id)
        if rec is None:
            raise RegistryError(f"{device_id} is not onboarded")
        if not rec.active:
            raise RegistryError(f"{device_id} was decommissioned")
        return rec

    def _bed_free(self, bed: str, device_id: str) -> None:
        other = self.on_bed(bed) if bed else None
        if other is not None and other.device_id != device_id:
            raise RegistryError(f"{bed} is fed by {other.device_id}; move or revoke it first")

    def _with(self, rec: DeviceRecord) -> DeviceBook:
        return DeviceBook({**self.records, rec.device_id: rec})

    # -- file form -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by the registry."""
        return {"format": FORMAT, "devices": [asdict(r) for r in self]}

    @classmethod
    def from_dict(cls, data: Any) -> DeviceBook:
        """Read the JSON form; a damaged document is an error, never an empty registry."""
        if not isinstance(data, dict):
            raise RegistryError(f"not a device registry of format {FORMAT}")
        problem = format_problem("the device registry", data.get("format"), FORMAT)
        if problem:
            raise RegistryError(problem)
        devices = data.get("devices")
        if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
            raise RegistryError("device registry: 'devices' is not a list of records")
        records = [_record(d) for d in devices]
        book = {r.device_id: r for r in records}
        if len(book) != len(records):
            raise RegistryError("device registry lists a device twice")
        return cls(book)


def differences(old: DeviceBook, new: DeviceBook) -> list[dict[str, object]]:
    """Each device added, removed or changed from ``old`` to ``new``, with the fields that
    changed (old and new values; public keys as they are, never secret): what an audit record of
    a registry changed outside the station lists, since any field may matter (a key swapped, a
    device's signing switched off)."""
    out: list[dict[str, object]] = []
    for device_id in sorted(set(old.records) | set(new.records)):
        was, now = old.get(device_id), new.get(device_id)
        if was == now:
            continue
        if was is None or now is None:
            out.append({"device": device_id, "change": "added" if was is None else "removed"})
            continue
        before, after = asdict(was), asdict(now)
        fields = {k: [before[k], after[k]] for k in sorted(after) if before[k] != after[k]}
        out.append({"device": device_id, "change": "changed", "fields": fields})
    return out
