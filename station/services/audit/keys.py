"""The station's audit signing key and its last published checkpoint, both kept outside the trail.

The signing key (Ed25519) lives in the secure keyring (kind ``audit``, account = station id), or
for an unattended service in ``STATION_AUDIT_KEY`` (base64 of the 32-byte private key). It is
made on first use. Its public key is written beside the trail (``station-audit.pub``) and into
every export; an auditor compares its key id with the one the hospital recorded.

The last checkpoint is also kept in the keyring (kind ``audit_anchor``): a folder put back to an
older copy no longer holds it, so the station finds the rollback at its next start even with the
broker away. A service without a keyring keeps it in the append-only anchor log instead
(:mod:`station.services.audit.anchor_log`, ``STATION_AUDIT_ANCHOR_LOG``); :func:`read_anchor`
answers with the newer of the two.
"""

from __future__ import annotations

import base64
import binascii
import logging

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config import credentials
from station.domain.audit.keyed import Published
from station.domain.audit.query import record_time
from station.services.audit import anchor_log

log = logging.getLogger(__name__)

KIND = "audit"
ANCHOR_KIND = "audit_anchor"


class AuditKeyError(Exception):
    """The signing key cannot be had; the message says why and what to set."""


def encode_station_key(key: Ed25519PrivateKey) -> str:
    """``key`` as the station reads it from ``STATION_AUDIT_KEY`` and the keyring: base64 of
    the raw 32-byte private key (``station keys generate`` and ``import`` write it so)."""
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode("ascii")


def decode_station_key(text: str) -> Ed25519PrivateKey:
    """The key :func:`encode_station_key` wrote.

    Raises:
        AuditKeyError: not a base64 32-byte Ed25519 key.
    """
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise AuditKeyError(
            f"the audit signing key in the keyring or {credentials.ENV[KIND]} is not a base64"
            " 32-byte Ed25519 key"
        ) from exc


_encode = encode_station_key
_decode = decode_station_key


def station_key(station_id: str) -> Ed25519PrivateKey:
    """The station's audit signing key, made and kept in the keyring on first use.

    Raises:
        AuditKeyError: no key and no secure keyring to keep a new one (names the environment
            variable), a damaged key, or a keyring that did not keep the new key.
    """
    try:  # a keyring that cannot answer now must not have its key replaced by a new one
        existing = credentials.secret(KIND, station_id, strict=True)
    except credentials.SecretStoreError as exc:
        raise AuditKeyError(f"the audit signing key cannot be read: {exc}") from None
    if existing:
        return decode_station_key(existing)
    key = Ed25519PrivateKey.generate()
    try:
        credentials.store_secret(KIND, station_id, encode_station_key(key))
    except credentials.SecretStoreError as exc:
        raise AuditKeyError(
            f"the audit trail cannot be keyed: {exc}. Set {credentials.ENV[KIND]} for an"
            " unattended service."
        ) from None
    if credentials.secret(KIND, station_id) != encode_station_key(key):
        raise AuditKeyError("the keyring did not keep the new audit signing key")
    log.info("made the audit signing key of station %s", station_id)
    return key


def existing_key(station_id: str) -> Ed25519PrivateKey | None:
    """The station's audit signing key if there is one, else None; unlike :func:`station_key`
    it never makes one, so ``station doctor`` can look without changing anything.

    Raises:
        AuditKeyError: the keyring failed to answer, or the key is not a valid one.
    """
    try:
        text = credentials.secret(KIND, station_id, strict=True)
    except credentials.SecretStoreError as exc:
        raise AuditKeyError(f"the audit signing key cannot be read: {exc}") from None
    return decode_station_key(text) if text else None


def read_anchor(station_id: str) -> Published | None:
    """The last checkpoint this station published: the keyring's (or ``STATION_AUDIT_ANCHOR``),
    or the anchor log's newest line signed by the station key, whichever was made later; None
    if there is none or none can be read."""
    kept = _kept_anchor(station_id)
    logged = _logged_anchor(station_id)
    if kept is None or logged is None:
        return kept or logged
    return (
        logged if (record_time(logged.record) or 0.0) > (record_time(kept.record) or 0.0) else kept
    )


def _kept_anchor(station_id: str) -> Published | None:
    text = credentials.secret(ANCHOR_KIND, station_id)
    if not text:
        return None
    try:
        return Published.from_json(text)
    except (ValueError, TypeError) as exc:
        log.warning("ignoring the unreadable last audit checkpoint in the keyring: %s", exc)
        return None


def _logged_anchor(station_id: str) -> Published | None:
    """The anchor log's newest checkpoint signed by the station key (without the key, whose
    signature would tell a genuine line from one appended by someone else, none)."""
    path = anchor_log.log_path()
    if path is None:
        return None
    try:
        key = existing_key(station_id)
    except AuditKeyError as exc:
        log.warning("the audit anchor log is not read: %s", exc)
        return None
    return anchor_log.newest(path, station_id, key.public_key()) if key is not None else None


def write_anchor(checkpoint: Published) -> None:
    """Keep ``checkpoint`` as the last published one, in the anchor log (when one is set) and the
    keyring; an error is logged, not raised (the checkpoint is also on the broker, and the trail
    itself is intact)."""
    path = anchor_log.log_path()
    if path is not None:
        try:
            anchor_log.append(path, checkpoint)
        except OSError as exc:
            log.warning("could not append the audit checkpoint to %s: %s", path, exc)
    if credentials.from_environment(ANCHOR_KIND):
        return  # set by the service: the keyring is not where it lives
    try:
        credentials.store_secret(ANCHOR_KIND, checkpoint.station, checkpoint.to_json())
    except (credentials.SecretStoreError, ValueError) as exc:
        log.warning("could not keep the last audit checkpoint in the keyring: %s", exc)
