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

from station.domain.alarms import Alarm, AlarmState, Priority, event_payload
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
            self._audit.record(
                action,
                actor=alarm.by or "station",
                role=_role_of(alarm.by),
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

    def peer_event(self, station: str, event: dict[str, object]) -> None:
        """Apply an acknowledgement another station of the ward published (same alarm id)."""
        # A latched alarm acknowledged there is published as 'cleared' with its user.
        if event.get("state") not in ("acknowledged", "cleared"):
            return
        alarm_id, by = event.get("alarm_id"), event.get("by")
        if not isinstance(alarm_id, str) or not isinstance(by, str) or not 0 < len(by) <= 64:
            return  # a user's name goes into the audit trail: no empty or unbounded text
        alarm = self._engine.acknowledge(alarm_id, by)
        if alarm is not None:
            self.emit([alarm], via=station, acknowledged=True)
