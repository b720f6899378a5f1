"""Every event of another station of the ward, checked before anything applies it (core thread).

Why one door: the ward's stations talk over two topics, ``healthcare/station/+/alarms`` (alarm
events, whose acknowledgements apply here) and ``healthcare/station/+/ward`` (a bed's limits,
a bed's audio pause). Both change what this station alarms on, so both must come from a station
the admin listed in ``[peers] stations`` and be signed by that station's key
(:mod:`station.domain.peer_signature`). The allowlist is read once, here, and each event goes
through it before :class:`~station.services.ingest.peer_alarms.PeerAlarms` or
:class:`~station.services.ingest.peer_events.PeerEvents` sees it. A ward event refused here is
counted and audited with the others (``ward.peer_refused``); an acknowledgement refused, as
``alarm.peer_refused``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from station.config.settings import Settings
from station.domain.audit.chain import canonical_json
from station.domain.peer_signature import PeerKeys, unsealed
from station.domain.vouchers.keys import load_public_key
from station.domain.vouchers.model import VoucherError
from station.domain.ward_events import WardMessage, WardRefusal, read_ward_json
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.pacing import Throttle
from station.services.ingest.peer_alarms import PeerAlarms
from station.services.ingest.peer_events import PeerEvents

log = logging.getLogger(__name__)


def load_peer_keys(settings: Settings) -> PeerKeys:
    """The ``[peers] stations`` allowlist with each station's public key read from its file.

    The settings checked every file at start; one that cannot be read now (removed or
    replaced since) leaves its station out, said in the log: its events are then refused
    (``not_a_peer``), never taken unchecked. This station's own id, should a ward share one
    list among its stations, is skipped (its own events are never applied).
    """
    keys = {}
    for station, path in settings.peers.stations.items():
        if station == settings.station.id:
            continue
        try:
            keys[station] = load_public_key(Path(path).expanduser())
        except (OSError, VoucherError) as exc:
            log.error("peer station %s left out: its key cannot be read: %s", station, exc)
    trusted = PeerKeys(keys)
    if keys:
        listed = ", ".join(f"{s} (key {trusted.key_id(s)})" for s in sorted(keys))
        log.info("peer stations trusted: %s", listed)
    else:
        log.info("no peer stations: other stations' acknowledgements and ward events refused")
    return trusted


class PeerInbox:
    """Routes the other stations' events: alarm events to :class:`PeerAlarms`, ward events to
    :class:`PeerEvents` once their signature is checked. Core thread only.

    Args:
        state: the core's shared objects (settings: this station's id and its peers; audit).
        alarms: the alarm changes (a peer's acknowledgement is applied there).
        events: the ward events' part (applies them, counts and audits their refusals).
        throttle: the core's shared throttle.
        keys: the allowlist; None reads ``[peers] stations`` (:func:`load_peer_keys`).
    """

    def __init__(
        self,
        state: CoreState,
        alarms: AlarmChanges,
        events: PeerEvents,
        throttle: Throttle,
        keys: PeerKeys | None = None,
    ) -> None:
        self._station = state.settings.station.id
        self._keys = load_peer_keys(state.settings) if keys is None else keys
        self._events = events
        self.alarms = PeerAlarms(self._station, self._keys, alarms, state.audit, throttle)
        """The acknowledgements' part (its ``refused`` and ``applied`` counts)."""

    def refused(self) -> dict[str, int]:
        """Events of other stations refused, by reason: a ward event's as ``<reason>``, an
        acknowledgement's as ``alarm:<reason>``. Copied before anything else (one step under
        the interpreter lock): a test may read it from another thread."""
        ward, alarms = dict(self._events.refused), dict(self.alarms.refused)
        return {**ward, **{f"alarm:{reason}": n for reason, n in alarms.items()}}

    def receive(self, station: str, event: dict[str, object] | WardMessage) -> None:
        """One event of ``station`` (the topic's): an alarm event (decoded JSON) or a ward
        event (unread bytes)."""
        if isinstance(event, WardMessage):
            self._ward(event)
        else:
            self.alarms.receive(station, event)

    def _ward(self, message: WardMessage) -> None:
        """Read the JSON, check the signature, and hand the event without its signature
        fields to :class:`PeerEvents`, which reads it against its own strict schema."""
        if message.station == self._station:
            return  # our own, should the broker hand it back
        doc = read_ward_json(message.payload)
        if isinstance(doc, WardRefusal):
            self._events.refuse(message.station, doc)
            return
        refusal = self._keys.check(doc, message.station)
        if refusal is not None:
            self._events.refuse(message.station, WardRefusal(refusal.reason, refusal.detail))
            return
        self._events.receive(WardMessage(message.station, canonical_json(unsealed(doc))))
