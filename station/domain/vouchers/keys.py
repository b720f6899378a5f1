"""Ed25519 keys as vouchers and key files carry them: key ids, encodings, reading key files.

Why a module of its own: key ids and key files are not only the vouchers' (the audit trail signs
with a station key and names it by the same key id), and reading the ward's trust folder is a
job apart from checking a voucher against it. Reading only: :mod:`station.config.key_files`
writes key files.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.domain.vouchers.model import Problem, TrustError, TrustStore, VoucherError
from station.domain.vouchers.wire import KEY_BYTES, decode_b64

KEY_ID_CHARS = 16


def generate_key() -> Ed25519PrivateKey:
    """A new Ed25519 key (manufacturer, distributor, hospital or device)."""
    return Ed25519PrivateKey.generate()


def _raw(public: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public, bytes):
        return public
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey | bytes) -> str:
    """The first 16 hex digits of SHA-256 of the raw 32-byte key: short enough to read out."""
    return hashlib.sha256(_raw(public)).hexdigest()[:KEY_ID_CHARS]


def public_b64(public: Ed25519PublicKey | bytes) -> str:
    """The raw 32-byte key in standard base64, as vouchers carry it."""
    return base64.b64encode(_raw(public)).decode("ascii")


def public_pem(public: Ed25519PublicKey) -> bytes:
    """``public`` as SubjectPublicKeyInfo PEM, the form key files and bundles carry."""
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an unencrypted PEM Ed25519 private key.

    Raises:
        VoucherError: (MALFORMED) the file is not one, with the path in the message.
        OSError: it could not be read.
    """
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # cryptography's own text is a paragraph with a URL; the admin needs the file and what.
        raise VoucherError(
            Problem.MALFORMED, f"{path}: not an unencrypted PEM private key"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise VoucherError(Problem.MALFORMED, f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key: PEM, or a file holding the raw key in base64 (as vouchers
    carry it, so a device's key can be copied from a label or a voucher).

    Raises:
        VoucherError: (MALFORMED) the file is neither, with the path in the message.
        OSError: it could not be read.
    """
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise VoucherError(Problem.MALFORMED, f"{path}: not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise VoucherError(Problem.MALFORMED, f"{path}: not an Ed25519 public key")
        return key
    try:
        raw = decode_b64(data.decode("ascii").strip(), KEY_BYTES, str(path))
    except (UnicodeDecodeError, VoucherError) as exc:
        raise VoucherError(
            Problem.MALFORMED, f"{path}: neither a PEM public key nor a base64 Ed25519 key"
        ) from exc
    return Ed25519PublicKey.from_public_bytes(raw)


def load_trust(folder: Path) -> TrustStore:
    """Read ``folder/manufacturers/*.pem`` and ``folder/owners/*.pem``, keyed by key id.

    A missing sub-folder is an empty set (then every voucher is from an unknown key, or no owner
    rule applies). File names do not matter; the key id is computed from each key.

    Raises:
        TrustError: a file there is not a readable Ed25519 public key; the message names it.
    """

    def read(sub: str) -> dict[str, Ed25519PublicKey]:
        keys: dict[str, Ed25519PublicKey] = {}
        directory = Path(folder) / sub
        if not directory.is_dir():
            return keys
        for path in sorted(directory.glob("*.pem")):
            try:
                key = load_public_key(path)
            except (OSError, VoucherError) as exc:
                raise TrustError(f"trust folder: cannot use {path}: {exc}") from exc
            keys[key_id(key)] = key
        return keys

    return TrustStore(manufacturers=read("manufacturers"), owners=read("owners"))
