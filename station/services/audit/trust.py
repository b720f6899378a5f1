"""Which station key a verification trusts, and why: never only the folder it checks.

Why a module of its own: ``station audit verify`` used to take the key it found beside the trail
(or in the bundle) and say OK; someone who rewrote the trail with a key of their own, and put that
key beside it, got the same OK, and the last checkpoint this machine kept was silently left out
when it did not verify under that key. Trust now comes only from outside the folder:

1. ``--key FILE``: the public key the auditor keeps;
2. ``--key-id ID``: the key id on record (``station keys generate`` printed it), which the key
   found in the folder must have;
3. this machine's own station key (``STATION_AUDIT_KEY``, else the keyring; looked up, never
   made), for the station's own data folder (the configured one, or a trail naming the
   configured station), or for a trail naming another station whose key this machine's keyring
   holds; ``STATION_AUDIT_KEY`` speaks for the configured station only.

A key found in the folder that differs from the trusted one is a failure, not a detail. Without
any of the three, the folder's own key is used and the verdict says ``UNVERIFIED KEY <id>`` for a
person to compare. Main thread of the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.config import credentials
from station.domain.vouchers.keys import key_id
from station.services.audit.keys import KIND, AuditKeyError, existing_key


@dataclass(frozen=True)
class Home:
    """The station this machine runs, from its config: whose key it holds."""

    station: str
    data_dir: Path

    def owns(self, path: Path, named: str) -> bool:
        """Whether ``path`` (naming the station ``named``) is this station's own trail."""
        if named == self.station:
            return True
        try:
            return path.resolve().is_relative_to(self.data_dir.resolve())
        except (OSError, RuntimeError):
            return False


@dataclass(frozen=True)
class Trust:
    """The key to verify with, why it is trusted (None: it is not), or why it must not be used.

    Attributes:
        key: the station key to check signatures with; None when there is none at all.
        by: where the trust comes from, for the verdict; None: only the folder vouches for it.
        problem: the key in the folder is not the trusted one (a ``FAIL``), else None.
    """

    key: Ed25519PublicKey | None
    by: str | None
    problem: str | None = None


def machine_key(home: Home | None, path: Path, named: str) -> tuple[Ed25519PublicKey, str] | None:
    """This machine's key for the trail at ``path`` that names the station ``named``, with where
    it came from; None when this machine holds none for it (or cannot read its keyring)."""
    env = credentials.from_environment(KIND)
    if home is not None and home.owns(path, named):
        station, source = home.station, credentials.ENV[KIND] if env else "the keyring"
    elif named and not env:
        station, source = named, "the keyring"
    else:
        return None
    try:
        key = existing_key(station)
    except AuditKeyError:
        return None
    if key is None:
        return None
    return key.public_key(), f"this machine's key of station {station} ({source})"


def choose(
    found: Ed25519PublicKey | str | None,
    where: str,
    given: tuple[Ed25519PublicKey, str] | None = None,
    key_id_on_record: str | None = None,
    machine: tuple[Ed25519PublicKey, str] | None = None,
) -> Trust:
    """Decide the key (see the module docstring).

    Args:
        found: the key in the folder or bundle (a string: why the file there is no key).
        where: the file ``found`` came from, for the messages.
        given: ``--key`` and its name.
        key_id_on_record: ``--key-id``.
        machine: :func:`machine_key`'s answer.
    """
    trusted = given or machine
    if trusted is not None:
        key, by = trusted
        if isinstance(found, str):
            return Trust(key, by, f"{found}: the file was replaced")
        if found is not None and key_id(found) != key_id(key):
            return Trust(key, by, _differs(where, found, key_id(key), by))
        return Trust(key, by)
    if key_id_on_record is not None:
        wanted = key_id_on_record.strip().lower()
        if not isinstance(found, Ed25519PublicKey):
            return Trust(None, None, f"{found or f'no {where}'}: nothing to compare --key-id with")
        if key_id(found) != wanted:
            return Trust(found, None, _differs(where, found, wanted, "--key-id"))
        return Trust(found, f"its id is the one on record (--key-id {wanted})")
    if isinstance(found, str):
        return Trust(None, None, found)
    return Trust(found, None)


def _differs(where: str, found: Ed25519PublicKey, wanted: str, by: str) -> str:
    return (
        f"{where} holds key {key_id(found)}, not the trusted key {wanted} ({by}): the trail was"
        " signed again by another key, or the key file replaced"
    )
