"""Alarm changes on the core thread: each change of the alarm engine handed on, and the requests
that change alarms from outside (a nurse's acknowledge, a peer station's).

Why one place: every part of the core (record path, live path, watches, device registry) ends in
alarm changes, and each must reach the same destinations alike: the audit trail (who, in which
role), the broker (the ward's other stations, thread-safe ``publish_alarm``), the historian
through the record's group commit (unless the patient refused storage) and the GUI. One fan-out,
so no path can forget a destination or word an audit record its own way.
"""

from __future__ import annotations

from collections.abc import Callable

from station.domain.alarms import Alarm, AlarmKind, AlarmState, Priority, event_payload
from station.domain.lineprotocol import alarm_line
from station.domain.ports import AlarmSink
from station.domain.roles import EMERGENCY_USER
from station.domain.ward import MONITORED
from station.domain.ward_events import TechnicalIds
from station.services.ingest.alarm_log import AlarmLog
from station.services.ingest.core_state import CoreState
from station.services.storage.spool import Row

STATION_DEVICE = ""  # technical alarms of the station itself have no device and no bed

ACTIONS = {
    AlarmState.ACTIVE: "alarm.raise",
    AlarmState.ESCALATED: "alarm.escalate",
    AlarmState.LATCHED: "alarm.latch",
    AlarmState.ACKNOWLEDGED: "alarm.acknowledge",
    AlarmState.CLEARED: "alarm.clear",
}
"""The audit action of each state an alarm changes to."""
MAX_BY_PEER = 1024
"""Open alarms acknowledged by a peer remembered at once (more are never open together)."""


def _role_of(actor: str | None) -> str:
    """The role an alarm change is recorded under: the station's own, a nurse's, or none for
    an emergency acknowledge made without a login."""
    if not actor:
        return "system"
    return "none" if actor == EMERGENCY_USER else "nurse"


class AlarmChanges:
    """The alarm engine's changes fanned out, and the alarm requests applied to the engine.

    Owned by the core worker and run on the core thread; ``changed`` is the worker's signal
    (queued to the GUI), ``store`` stages a line for the historian in the next group commit
    (None without a historian); a bed whose patient refused storage sends nothing to the
    historian; ``history`` keeps every change in the alarm store.
    """

    def __init__(
        self,
        state: CoreState,
        publisher: AlarmSink | None,
        store: Callable[[Row], None] | None,
        changed: Callable[[Alarm], None],
        history: AlarmLog | None = None,
    ) -> None:
        self._engine = state.engine
        self._history = history
        self._audit = state.audit
        self._station = state.settings.station.id
        self._names = TechnicalIds(self._station, state.time.wall)
        self._policy = state.policy
        self._publisher = publisher
        self._store = store
        self._changed = changed
        # Open alarms a peer acknowledged (their clear is recorded as "peer" too), oldest first.
        self._by_peer: dict[str, None] = {}

    def emit(
        self, changes: list[Alarm], via: str | None = None, acknowledged: bool = False
    ) -> None:
        """Hand each change on: audit, broker, historian, GUI (``via``: the peer station that
        made it)."""
        for alarm in changes:
            action = ACTIONS[alarm.state]
            if alarm.state == AlarmState.ACTIVE and alarm.raised_at != alarm.at:
                action = "alarm.reactivate"  # a latched alarm whose condition came back
            if acknowledged:
                action = "alarm.acknowledge"  # also when it cleared a latched alarm
            role = _role_of(alarm.by)
            if via is not None or alarm.alarm_id in self._by_peer:
                role = "peer"  # ``by`` is the peer's word (``<user>@<station>``), not a login
                if alarm.state == AlarmState.CLEARED:
                    self._by_peer.pop(alarm.alarm_id, None)
            self._audit.record(
                action,
                actor=alarm.by or "station",
                role=role,
                target=alarm.bed or alarm.device_id or self._station,
                details={
                    "via": via,
                    "alarm_id": alarm.alarm_id,
                    "device": alarm.device_id,
                    "kind": alarm.kind.value,
                    "parameter": alarm.parameter,
                    "priority": alarm.priority.value,
                    "message": alarm.message,
                },
            )
            if self._publisher is not None:
                self._publisher.publish_alarm(event_payload(alarm))
            if self._store is not None and self._policy.get(alarm.bed, MONITORED).store:
                self._store((alarm.device_id, None, alarm_line(self._station, alarm)))
            if self._history is not None:
                self._history.add(alarm)
            self._changed(alarm)

    def technical(
        self,
        device: str,
        bed: str,
        parameter: str,
        present: bool,
        priority: Priority = Priority.MEDIUM,
        message: str = "",
    ) -> None:
        """Raise or end a technical alarm of a device (on ``bed``, or none) and hand it on. A
        new one is named as every station of the ward names it, where they can
        (:func:`~station.domain.ward_events.technical_alarm_id`), so an acknowledgement at one
        applies at all."""

        def name() -> str:
            return self._names.name(device, bed, parameter, self._engine.heard(device))

        self.emit(self._engine.technical(device, bed, parameter, present, priority, message, name))

    def station(self, parameter: str, present: bool, priority: Priority, message: str) -> None:
        """Raise or end a technical alarm of the station itself (no device, no bed)."""
        self.technical(STATION_DEVICE, "", parameter, present, priority, message)

    def acknowledge(self, alarm_id: str, user: str) -> None:
        """A nurse acknowledges an alarm; one no longer active is audited as a failure."""
        alarm = self._engine.acknowledge(alarm_id, user)
        if alarm is None:
            self._audit.record(
                "alarm.acknowledge",
                actor=user,
                role="none" if user == EMERGENCY_USER else "nurse",
                target=alarm_id,
                outcome="failure",
                details={"reason": "not active"},
            )
            return
        self.emit([alarm], acknowledged=True)

    def peer_acknowledge(self, station: str, alarm_id: str, by: str) -> bool:
        """Apply an acknowledgement that ``station`` (a trusted peer: its signature is checked
        by :class:`~station.services.ingest.peer_alarms.PeerAlarms`) made of the same alarm,
        recorded as ``<by>@<station>`` in role ``peer`` with ``via`` = the station: here, it is
        that station's word, not a login. Nothing open here under that id: nothing to do.

        False (refused) for this station's own technical alarms: its sound, broker link,
        stores, clock, audit trail ("audit trail rolled back"), and a device's condition named
        by this station alone (not heard since the start). No other station sees them, so no
        other station may silence them, however trusted. A device's technical alarm named from
        its data (no data, battery low, ...) is seen alike by every station and is shared.
        """
        alarm = next((a for a in self._engine.open_alarms() if a.alarm_id == alarm_id), None)
        if alarm is None:
            return True
        if alarm.kind == AlarmKind.TECHNICAL and not self._names.shared(alarm_id):
            return False
        acked = self._engine.acknowledge(alarm_id, f"{by}@{station}")
        if acked is not None:
            if len(self._by_peer) >= MAX_BY_PEER:
                del self._by_peer[next(iter(self._by_peer))]
            self._by_peer[alarm_id] = None
            self.emit([acked], via=station, acknowledged=True)
        return True
