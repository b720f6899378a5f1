"""This station's signature on what it tells the ward's other stations (alarm and ward events).

Why here: the MQTT worker builds every payload it publishes on ``healthcare/station/<id>/alarms``
and ``.../ward``, and the other stations apply acknowledgements and ward events only when a
station they list signed them (:mod:`station.domain.peer_signature`). The key is the station's
audit signing key: it already names the station to its auditors, and its public key lies beside
the trail (``station-audit.pub``) for the other stations' admins to copy. The ingest services do
not reach into the audit services, so the key is read where the audit service reads it: the
keyring, or ``STATION_AUDIT_KEY`` for an unattended service.
"""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config import credentials
from station.domain.peer_signature import private_key_b64, seal
from station.domain.vouchers.keys import key_id

log = logging.getLogger(__name__)

AUDIT_KIND = "audit"
"""The audit signing key's kind in the keyring (``station.services.audit.keys.KIND``)."""


def station_signing_key(station_id: str) -> Ed25519PrivateKey | None:
    """The station's audit signing key, or None when there is none (the station, started
    first, makes it; without it the trail says so with a technical alarm)."""
    return private_key_b64(credentials.secret(AUDIT_KIND, station_id))


class PeerSeal:
    """Signs this station's peer events with its key; without a key, sends them unsigned (the
    other stations then refuse them, and the log says why, once).

    Args:
        station: this station's id, put in every event.
        key: its audit signing key, or None.
    """

    def __init__(self, station: str, key: Ed25519PrivateKey | None) -> None:
        self._station = station
        self._key = key
        if key is None:
            log.warning(
                "no audit signing key: alarm and ward events go unsigned, and the ward's other "
                "stations refuse this station's acknowledgements and ward events"
            )
        else:
            log.info("alarm and ward events signed with key %s", key_id(key.public_key()))

    def __call__(self, event: dict[str, object]) -> dict[str, object]:
        """``event`` with ``station``, ``key_id`` and ``sig`` added, when there is a key."""
        if self._key is None:
            return event
        try:
            return seal(event, self._station, self._key)
        except ValueError as exc:  # NaN or text that is not UTF-8: not JSON the peers can check
            log.error("event not signed: %s", exc)
            return event
