"""The station's keys in a file, encrypted with a passphrase (``station keys export`` / ``import``).

A station's audit signing key and patient table key exist nowhere but its keyring (or its
service's environment): lose them with the machine and the trail can no longer be continued and
the patient table never be read again. The export puts them in a file an admin can carry to the
new machine and keep in a safe; the file must be useless to whoever finds it without the
passphrase.

Format (JSON, versioned by ``format``)::

    {"format": "station-keys/1", "station": ..., "audit_key_id": ..., "created": ...,
     "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": b64},
     "cipher": "AES-256-GCM", "nonce": b64, "ciphertext": b64}

The key comes from scrypt (memory-hard: a guess costs ~0.3 s and 128 MiB here), the cipher is
AES-256-GCM, and everything but the ciphertext, the station id and audit key id included, is its
associated data: a file whose header was edited (to another station, or to cheaper scrypt
parameters) fails to open like a wrong passphrase. The header stays readable so an admin can see
whose keys a file holds before typing anything. The plaintext is the canonical JSON of the
secrets by kind (``audit``, ``patients``, ``audit_anchor``), in exactly the text the station
reads from its keyring or environment.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from station.domain.audit.chain import canonical_json
from station.domain.timefmt import iso_ms

FORMAT = "station-keys/1"
CIPHER = "AES-256-GCM"
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
MIN_N, MAX_N = 2**15, 2**20
"""What an import accepts: not cheaper than the brief's floor, not a memory bomb."""
SALT_BYTES = 16
NONCE_BYTES = 12
MIN_PASSPHRASE = 12
KINDS = ("audit", "patients", "audit_anchor")
_HEADER = frozenset({"format", "station", "audit_key_id", "created", "kdf", "cipher", "nonce"})
MAX_FILE_BYTES = 256 * 1024


class EnvelopeError(ValueError):
    """The file is not a key export this station can read; the message says why."""


class WrongPassphraseError(EnvelopeError):
    """The passphrase does not open the file (or the file was altered: the two look the same)."""


@dataclass(frozen=True)
class OpenedKeys:
    """What an export held. ``secrets`` never appears in a repr or a log."""

    station: str
    audit_key_id: str | None
    created: str
    secrets: Mapping[str, str]

    def __repr__(self) -> str:
        kinds = ", ".join(sorted(self.secrets))
        return f"OpenedKeys(station={self.station!r}, audit_key_id={self.audit_key_id!r}, {kinds})"


def check_passphrase(passphrase: str) -> None:
    """Raise :class:`EnvelopeError` for a passphrase too short to protect keys."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise EnvelopeError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, name: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"{name} is not base64 text")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{name} is not base64") from None
    if size is not None and len(data) != size:
        raise EnvelopeError(f"{name} is not {size} bytes")
    return data


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def seal_keys(
    found: Mapping[str, str],
    passphrase: str,
    *,
    station: str,
    audit_key_id: str | None,
    created: float,
    n: int | None = None,
) -> bytes:
    """The export file's bytes for the secrets ``found`` (kind → the station's text).

    Raises:
        EnvelopeError: a short passphrase, an unknown kind, or nothing to export.
    """
    check_passphrase(passphrase)
    unknown = set(found) - set(KINDS)
    if unknown or not found:
        raise EnvelopeError(f"nothing to export, or unknown kinds {sorted(unknown)}")
    n = SCRYPT_N if n is None else n
    salt, nonce = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(NONCE_BYTES)
    header: dict[str, Any] = {
        "format": FORMAT,
        "station": station,
        "audit_key_id": audit_key_id,
        "created": iso_ms(created),
        "kdf": {"name": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": CIPHER,
        "nonce": _b64(nonce),
    }
    key = _derive(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(key).encrypt(nonce, canonical_json(dict(found)), canonical_json(header))
    document = {**header, "ciphertext": _b64(sealed)}
    return json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"


def read_header(data: bytes) -> dict[str, Any]:
    """The export's clear header, checked for shape (before any passphrase is asked).

    Raises:
        EnvelopeError: not a key export of this format.
    """
    if len(data) > MAX_FILE_BYTES:
        raise EnvelopeError("far too large for a key export")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise EnvelopeError("not a key export (not JSON)") from None
    if not isinstance(doc, dict) or set(doc) != _HEADER | {"ciphertext"}:
        raise EnvelopeError("not a key export (unexpected fields)")
    if doc["format"] != FORMAT:
        raise EnvelopeError(f"format {str(doc['format'])[:40]!r} is not {FORMAT!r}")
    if doc["cipher"] != CIPHER:
        raise EnvelopeError(f"unknown cipher {str(doc['cipher'])[:40]!r}")
    if not isinstance(doc["station"], str) or not isinstance(doc["created"], str):
        raise EnvelopeError("station or created is not text")
    if doc["audit_key_id"] is not None and not isinstance(doc["audit_key_id"], str):
        raise EnvelopeError("audit_key_id is not text")
    kdf = doc["kdf"]
    if not isinstance(kdf, dict) or set(kdf) != {"name", "n", "r", "p", "salt"}:
        raise EnvelopeError("kdf is not scrypt's parameters")
    n = kdf["n"]
    if kdf["name"] != "scrypt" or not isinstance(n, int) or isinstance(n, bool):
        raise EnvelopeError("kdf is not scrypt")
    if not MIN_N <= n <= MAX_N or n & (n - 1) or kdf["r"] != SCRYPT_R or kdf["p"] != SCRYPT_P:
        raise EnvelopeError(f"scrypt parameters outside what this station accepts (n={n})")
    _unb64(kdf["salt"], "salt", SALT_BYTES)
    _unb64(doc["nonce"], "nonce", NONCE_BYTES)
    return doc


def open_keys(data: bytes, passphrase: str) -> OpenedKeys:
    """Decrypt an export.

    Raises:
        WrongPassphraseError: the passphrase is wrong, or any byte of the file was changed.
        EnvelopeError: not a key export, or what it holds is not keys.
    """
    doc = read_header(data)
    header = {name: doc[name] for name in _HEADER}
    kdf = doc["kdf"]
    salt = _unb64(kdf["salt"], "salt", SALT_BYTES)
    key = _derive(passphrase, salt, kdf["n"], kdf["r"], kdf["p"])
    nonce = _unb64(doc["nonce"], "nonce", NONCE_BYTES)
    sealed = _unb64(doc["ciphertext"], "ciphertext")
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, canonical_json(header))
    except InvalidTag:
        raise WrongPassphraseError(
            "wrong passphrase, or the file was altered (the two cannot be told apart)"
        ) from None
    try:
        found = json.loads(plain)
    except ValueError:
        raise EnvelopeError("the export decrypts but holds no keys") from None
    if (
        not isinstance(found, dict)
        or not found
        or not set(found) <= set(KINDS)
        or not all(isinstance(value, str) and value for value in found.values())
    ):
        raise EnvelopeError("the export decrypts but holds no keys of the station's kinds")
    return OpenedKeys(doc["station"], doc["audit_key_id"], doc["created"], found)
