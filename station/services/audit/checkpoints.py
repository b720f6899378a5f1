"""The audit trail's signed checkpoints outside the trail: each one made is kept in the keyring and
published on the broker (retained), and the broker's retained one is compared with the trail.

A trail folder put back to an older copy is intact in itself; only a checkpoint kept elsewhere
shows that it lost records (``rolled_back``). The two directions are two objects because each
needs what the other feeds: :class:`CheckpointPublisher` is given to the audit writer and needs
the MQTT worker's publish, :class:`BrokerCheckpointCheck` is given to the MQTT worker and needs
the audit writer. Both run on worker threads (``audit``, ``mqtt``); what they call is thread-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.domain.audit.keyed import Published
from station.services.audit.keys import write_anchor
from station.services.audit.writer import AuditWriter

log = logging.getLogger(__name__)


class CheckpointPublisher:
    """The audit writer's ``on_checkpoint``: a durable checkpoint goes to the keyring (the
    anchor) and to ``publish`` (the MQTT worker's retained checkpoint topic). Audit thread."""

    def __init__(self, publish: Callable[[str], None]) -> None:
        self._publish = publish

    def __call__(self, checkpoint: Published) -> None:
        write_anchor(checkpoint)
        self._publish(checkpoint.to_json())


class BrokerCheckpointCheck:
    """Slot for the MQTT worker's ``checkpoint_seen``: the broker's retained checkpoint, if the
    station key signed it, must be held by the trail; one the trail does not hold means the folder
    was rolled back, audited as a failed ``audit.verify``. Anything else is logged. MQTT thread."""

    def __init__(self, audit: AuditWriter, key: Ed25519PrivateKey | None) -> None:
        self._audit, self._key = audit, key

    def check(self, payload: bytes) -> None:
        """Judge one retained checkpoint (see the class docstring). A Qt slot's exception would
        only reach stderr, so whatever goes wrong here is logged, as paho's guard did."""
        try:
            self._check(payload)
        except Exception:
            log.exception("checking the audit checkpoint on the broker failed")

    def _check(self, payload: bytes) -> None:
        try:
            checkpoint = Published.from_json(payload)
        except (ValueError, TypeError) as exc:
            log.warning("ignoring an unreadable audit checkpoint on the broker: %s", exc)
            return
        key = self._key
        if key is None or not checkpoint.verifies(key.public_key()):
            log.warning("ignoring an audit checkpoint on the broker not signed by this station")
            return
        problem = self._audit.check_published(checkpoint)
        if problem is not None:
            self._audit.record(
                "audit.verify",
                target="broker checkpoint",
                outcome="failure",
                details={"kind": "rolled_back", "seq": checkpoint.seq, "why": problem},
            )
