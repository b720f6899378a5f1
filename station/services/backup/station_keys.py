"""The station's keys as one whole: read where the station reads them, made new, checked, kept.

Three secrets make a station's identity on disk, each kept by :mod:`station.config.credentials`
(the environment wins, else the secure keyring): the audit signing key (``audit``: base64 of the
raw Ed25519 private key, ``STATION_AUDIT_KEY``), the patient table key (``patients``: base64 of
32 bytes, ``STATION_PATIENT_KEY``) and the last audit checkpoint (``audit_anchor``: a published
checkpoint's JSON, ``STATION_AUDIT_ANCHOR``). ``station keys`` reads, makes and moves them here, in
exactly the text the station reads, so what it writes is what the station will find.

The two mistakes that cannot be undone are refused here: new keys for a data folder that already
has a trail (a new audit key forks it) or a patient table (a new patient key makes it unreadable
for ever), and an import that would replace a different key already in use. Nothing in this
module logs or returns a secret's text except to the one caller that writes it.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config import credentials
from station.domain.audit.keyed import Published
from station.domain.timefmt import iso_ms
from station.domain.vouchers.keys import key_id
from station.services.audit.keys import (
    ANCHOR_KIND,
    AuditKeyError,
    decode_station_key,
    encode_station_key,
)
from station.services.audit.keys import KIND as AUDIT_KIND
from station.services.audit.shell_record import has_trail
from station.services.storage.patient_store import KEY_BYTES
from station.services.storage.patient_store import KIND as PATIENT_KIND

PATIENT_FILE = "patients.enc"
"""The patient table in the data folder (named in :mod:`station.presenters.ward_admin`, which
the services cannot import)."""
KINDS = (AUDIT_KIND, PATIENT_KIND, ANCHOR_KIND)


class KeysError(RuntimeError):
    """A key operation was refused or failed; the message says why and what to do instead."""


@dataclass(frozen=True)
class StationKeys:
    """One station's secrets by kind (None: it has none of that kind). Never printed: the
    repr names the kinds and the audit key's id only."""

    station: str
    audit: str | None = None
    patients: str | None = None
    anchor: str | None = None

    def __repr__(self) -> str:
        return f"StationKeys(station={self.station!r}, kinds={sorted(self.found)})"

    @property
    def found(self) -> dict[str, str]:
        """The secrets present, by :mod:`~station.config.credentials` kind."""
        pairs = (
            (AUDIT_KIND, self.audit),
            (PATIENT_KIND, self.patients),
            (ANCHOR_KIND, self.anchor),
        )
        return {kind: text for kind, text in pairs if text}

    def audit_key(self) -> Ed25519PrivateKey | None:
        """The audit signing key.

        Raises:
            KeysError: the text is not one.
        """
        if not self.audit:
            return None
        try:
            return decode_station_key(self.audit)
        except AuditKeyError as exc:
            raise KeysError(str(exc)) from None

    def audit_key_id(self) -> str | None:
        """The audit key's id (what an auditor compares), or None without one."""
        key = self.audit_key()
        return key_id(key.public_key()) if key is not None else None

    def check(self) -> None:
        """Every secret present is well formed, and the anchor is this station's, signed by
        this audit key.

        Raises:
            KeysError: which one is not, and why.
        """
        self.check_keys()
        self.check_anchor()

    def check_keys(self) -> None:
        """The audit and patient keys present are well formed.

        Raises:
            KeysError: which one is not.
        """
        self.audit_key()
        if self.patients is not None:
            try:
                raw = base64.b64decode(self.patients.strip(), validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != KEY_BYTES:
                raise KeysError(f"the patient table key is not base64 of {KEY_BYTES} bytes")

    def check_anchor(self) -> None:
        """The anchor, if any, is this station's checkpoint, signed by this audit key.

        Raises:
            KeysError: it is not.
        """
        key = self.audit_key()
        if self.anchor is not None:
            try:
                anchor = Published.from_json(self.anchor)
            except (ValueError, TypeError) as exc:
                raise KeysError(f"the last audit checkpoint is unreadable: {exc}") from None
            if anchor.station != self.station:
                raise KeysError(f"the last audit checkpoint is station {anchor.station!r}'s")
            if key is not None and not anchor.verifies(key.public_key()):
                raise KeysError("the last audit checkpoint is not signed by this audit key")


def current_keys(station_id: str) -> StationKeys:
    """The station's secrets where the station reads them (environment, else keyring).

    Raises:
        KeysError: the keyring failed to answer.
    """
    try:
        found = {kind: credentials.secret(kind, station_id, strict=True) for kind in KINDS}
    except credentials.SecretStoreError as exc:
        raise KeysError(str(exc)) from None
    return StationKeys(station_id, found[AUDIT_KIND], found[PATIENT_KIND], found[ANCHOR_KIND])


def new_keys(station_id: str) -> StationKeys:
    """A new audit signing key and patient table key (no anchor: nothing was signed yet)."""
    audit = encode_station_key(Ed25519PrivateKey.generate())
    patients = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
    return StationKeys(station_id, audit, patients)


def generate_refusal(data_dir: Path, station_id: str, *, force: bool) -> str | None:
    """Why ``station keys generate`` must not make keys for this station, or None.

    Raises:
        KeysError: the keyring failed to answer.
    """
    if has_trail(data_dir) or (data_dir / PATIENT_FILE).exists():
        return (
            f"{data_dir} already holds an audit trail or a patient table: new keys would fork"
            " the trail and leave the patient table unreadable for ever. Move the station's"
            " keys with `station keys export` and `station keys import` instead."
        )
    held = current_keys(station_id)
    kinds = [kind for kind in (AUDIT_KIND, PATIENT_KIND) if kind in held.found]
    if kinds and not force:
        labels = " and ".join(credentials.LABELS[kind] for kind in kinds)
        return (
            f"station {station_id} has keys already ({labels}, in the environment or the"
            " keyring); --force makes new ones anyway"
        )
    return None


def environment_file(keys: StationKeys, note: str, *, at: float) -> bytes:
    """The keys as a systemd ``EnvironmentFile`` (also fine for ``set -a; . FILE``): the audit
    signing key and the patient table key, never the anchor (see :func:`import_keys`)."""
    lines = [
        f"# Keys of station {keys.station}: {note} ({iso_ms(at)}).",
        "# The station service's EnvironmentFile: owner-only, never in a backup or a repository.",
        f"# Audit signing key id: {keys.audit_key_id() or 'none'}",
    ]
    for kind in (AUDIT_KIND, PATIENT_KIND):
        text = keys.found.get(kind)
        if text:
            lines.append(f"{credentials.ENV[kind]}={text.strip()}")
    return ("\n".join(lines) + "\n").encode("ascii")


@dataclass(frozen=True)
class Imported:
    """What an import did, by kind label: put in the keyring, already there, left out."""

    stored: list[str]
    already: list[str]
    left: list[str]


def import_keys(keys: StationKeys) -> Imported:
    """Put ``keys`` into the secure keyring, under the station's accounts.

    A key of the same kind already in use that differs is never replaced (it may be the only
    key of an existing trail or patient table). The last checkpoint is taken only where the
    station has none: the one it keeps is newer or its own.

    Raises:
        KeysError: a different key is in use, or there is no secure keyring (the message names
            ``--env-file``); what was stored before the failure stays stored.
    """
    held = current_keys(keys.station)
    for kind in (AUDIT_KIND, PATIENT_KIND):
        new, old = keys.found.get(kind), held.found.get(kind)
        if new and old and old.strip() != new.strip():
            where = "environment" if credentials.from_environment(kind) else "keyring"
            raise KeysError(
                f"the {where} already holds a different {credentials.LABELS[kind]} for station"
                f" {keys.station}; it may be the only key of an existing trail or patient table,"
                " so it is not replaced. Remove it first if it is truly unused."
            )
    stored: list[str] = []
    already: list[str] = []
    left: list[str] = []
    for kind, text in keys.found.items():
        label = credentials.LABELS[kind]
        if kind in held.found:
            (already if held.found[kind].strip() == text.strip() else left).append(label)
            continue
        try:
            credentials.store_secret(kind, keys.station, text)
        except credentials.SecretStoreError as exc:
            raise KeysError(f"{exc} Or import into an environment file with --env-file.") from None
        stored.append(label)
    return Imported(stored, already, left)


def keys_from(found: Mapping[str, str], station: str) -> StationKeys:
    """The keys an export held (kind → text), checked.

    Raises:
        KeysError: one is malformed, or the anchor is another station's or key's.
    """
    keys = StationKeys(
        station, found.get(AUDIT_KIND), found.get(PATIENT_KIND), found.get(ANCHOR_KIND)
    )
    keys.check()
    return keys


def without_bad_anchor(keys: StationKeys) -> tuple[StationKeys, str | None]:
    """``keys`` without an anchor that is unreadable or not this station's and key's (a key
    export is still worth making without it), and why it was left out, or None."""
    try:
        keys.check_anchor()
    except KeysError as exc:
        return StationKeys(keys.station, keys.audit, keys.patients), str(exc)
    return keys, None
