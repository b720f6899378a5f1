"""The device registry's seal: ``devices.json.seal``, the station key's signature of the registry
as the station (or ``station devices`` in a shell) last wrote it.

Why: ``devices.json`` decides which device may feed which bed, and it is a plain JSON file. A
change made through the station or its shell commands is audited; a hand edit while the station
is down was taken at the next start without a word. Every write through
:class:`~station.services.storage.device_registry.DeviceRegistry` now seals what it wrote with
the station's audit key (Ed25519), and the station checks the seal whenever it loads the file:
a registry that does not match its seal was changed by someone else, and the station audits
what changed (against the sealed copy the seal carries) and raises a technical alarm until an
admin accepts it (``station devices accept``) or changes it through the station.

A change is sealed twice: before the registry is written, a pending seal that also vouches for
the registry it replaces (a crash between the two writes leaves a registry the seal still vouches
for); once it is written, a seal of it alone, so the previous registry copied back later (a
revoked device brought back) is found like any other change.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.private_file import write_private
from station.domain.devices import DeviceBook, RegistryError
from station.domain.vouchers.keys import key_id

SEAL_SUFFIX = ".seal"
_CONTEXT = b"station-device-registry/1\n"  # a registry seal is never any other signature


@dataclass(frozen=True, slots=True)
class SealCheck:
    """What the seal says of the registry on disk: ``ok``, or the ``problem`` in words, and the
    book the seal vouches for (None: no readable seal), to audit what changed since."""

    ok: bool
    problem: str = ""
    sealed: DeviceBook | None = None


def digest(data: bytes) -> str:
    """SHA-256 of the registry file's bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def seal_path(registry: Path) -> Path:
    """``devices.json`` → ``devices.json.seal``."""
    return registry.with_name(registry.name + SEAL_SUFFIX)


def _signed(current: str, previous: str) -> bytes:
    return _CONTEXT + f"{current}\n{previous}\n".encode("ascii")


def write_seal(
    registry: Path, data: bytes, book: DeviceBook, key: Ed25519PrivateKey, *, pending: bool
) -> None:
    """Seal ``data``: ``pending``, before it is written (the registry it replaces is still
    vouched for, in case the write never happens); else once it is on disk (only it is).

    Raises:
        OSError: the seal cannot be written (a pending one: the registry is not written).
    """
    current = digest(data)
    previous = current
    if pending:
        try:
            previous = digest(registry.read_bytes())
        except FileNotFoundError:
            previous = ""
    seal = {
        "format": 1,
        "key_id": key_id(key.public_key()),
        "sha256": current,
        "previous_sha256": previous,
        "signature": base64.b64encode(key.sign(_signed(current, previous))).decode("ascii"),
        "book": book.to_dict(),
    }
    write_private(seal_path(registry), json.dumps(seal, sort_keys=True).encode("utf-8") + b"\n")


def check_seal(registry: Path, data: bytes | None, key: Ed25519PrivateKey) -> SealCheck:
    """Whether ``data`` (the registry's bytes; None: no file) is what the station last sealed.

    No registry and no seal is a fresh station: nothing to vouch for. Any I/O or format problem
    is a failed check named in words, never an exception: the caller alarms, and keeps going.
    """
    path = seal_path(registry)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if data is None:
            return SealCheck(True)
        return SealCheck(False, "it has no seal (changed by hand, or by a release before 0.3)")
    except OSError as exc:
        return SealCheck(False, f"its seal cannot be read: {exc.strerror}")
    try:
        seal = json.loads(raw)
        current, previous = str(seal["sha256"]), str(seal["previous_sha256"])
        signature = base64.b64decode(str(seal["signature"]), validate=True)
        sealed = DeviceBook.from_dict(seal["book"])
    except (ValueError, KeyError, TypeError, RegistryError):
        return SealCheck(False, "its seal is damaged")
    try:
        key.public_key().verify(signature, _signed(current, previous))
    except InvalidSignature:
        return SealCheck(False, "its seal is not this station's signature")
    found = digest(data) if data is not None else ""
    if found in (current, previous):  # previous: a crash between the seal and the file
        return SealCheck(True, sealed=sealed)
    return SealCheck(False, "it differs from what the station last wrote", sealed)
