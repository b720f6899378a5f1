"""Alarm conditions, priorities and the alarm state machine (first cut of IEC 60601-1-8 behaviour).

Pure logic with an injected clock so every transition is testable without waiting. The engine is
owned by the core thread; it returns immutable :class:`Alarm` snapshots for each state change, and
those snapshots are what the screen, the audit trail, the historian and the broker receive.

Lifecycle here: ``active`` (condition present, not acknowledged) → ``acknowledged`` (by a named
user; visual stays while the condition lasts) → ``cleared`` (condition gone). A condition that ends
before anyone acknowledges it clears too (non-latching); latching, delays, hysteresis, audio pause
and escalation deepen this machine in the alarm-system issue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Priority(StrEnum):
    """Alarm priority; the order of members is the order of urgency."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def mark(self) -> str:
        """Text mark so colour is never the only cue (IEC 60601-1-8 style)."""
        return {"high": "***", "medium": "**", "low": "*"}[self.value]

    @property
    def rank(self) -> int:
        """0 for the most urgent, for sorting."""
        return ("high", "medium", "low").index(self.value)


class AlarmKind(StrEnum):
    """Who found the condition: the station from values, the station about itself, the device."""

    PHYSIOLOGICAL = "physiological"
    TECHNICAL = "technical"
    DEVICE = "device"


class AlarmState(StrEnum):
    """Lifecycle states published on the alarms topic (CONTRACT §2)."""

    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


LABELS: Mapping[str, str] = {
    "heartrate": "HR",
    "oxygen": "SpO2",
    "systolic": "NIBP sys",
    "diastolic": "NIBP dia",
    "temperature": "Temp",
}


class AlarmLimits(BaseModel):
    """High and low limits of one parameter and the priority of crossing them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    PARAMETERS: ClassVar[tuple[str, ...]] = (
        "heartrate",
        "oxygen",
        "systolic",
        "diastolic",
        "temperature",
    )

    # NaN would compare false against every value and silently switch the alarm off.
    low: float | None = Field(default=None, allow_inf_nan=False)
    high: float | None = Field(default=None, allow_inf_nan=False)
    priority: Priority = Priority.MEDIUM

    @model_validator(mode="after")
    def _ordered(self) -> AlarmLimits:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low limit {self.low} must be below high limit {self.high}")
        return self

    def violation(self, value: float) -> tuple[float, str] | None:
        """The limit crossed and the comparison sign, or None when the value is within limits."""
        if self.high is not None and value > self.high:
            return self.high, ">"
        if self.low is not None and value < self.low:
            return self.low, "<"
        return None


def _fmt(value: float) -> str:
    return f"{value:.1f}" if value != int(value) else f"{int(value)}"


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm at one moment. Immutable: every change produces a new snapshot."""

    alarm_id: str
    device_id: str
    bed: str
    kind: AlarmKind
    parameter: str
    priority: Priority
    state: AlarmState
    value: float | None
    limit: float | None
    message: str
    raised_at: float
    at: float
    by: str | None = None

    @property
    def key(self) -> tuple[str, AlarmKind, str]:
        """Identity of the condition: one alarm per device, kind and parameter at a time."""
        return (self.device_id, self.kind, self.parameter)

    def sort_key(self) -> tuple[int, int, float]:
        """Most urgent first: priority, then unacknowledged before acknowledged, then newest."""
        return (self.priority.rank, self.state != AlarmState.ACTIVE, -self.raised_at)


class AlarmEngine:
    """The alarm state machine for a ward. Not thread-safe: one owner thread (the core thread).

    Args:
        limits: parameter → limits, e.g. from ``[alarms]`` in the config.
        clock: UTC epoch seconds; injected so tests drive time.
        new_id: alarm id factory; injected for deterministic tests.
    """

    def __init__(
        self,
        limits: Mapping[str, AlarmLimits],
        clock: Callable[[], float],
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._new_id = new_id or (lambda: uuid.uuid4().hex[:16])
        self._open: dict[tuple[str, AlarmKind, str], Alarm] = {}

    def open_alarms(self) -> list[Alarm]:
        """Alarms not yet cleared, most urgent first."""
        return sorted(self._open.values(), key=Alarm.sort_key)

    def evaluate(
        self,
        device_id: str,
        bed: str,
        values: Mapping[str, float],
        device_alert: str | None = None,
    ) -> list[Alarm]:
        """Check one message's values against the limits; return the alarms that changed.

        A parameter absent from the message leaves its alarm as it is: a missing value is not a
        normal value.
        """
        changes: list[Alarm] = []
        for parameter, value in values.items():
            limits = self._limits.get(parameter)
            if limits is None:
                continue
            crossed = limits.violation(value)
            if crossed is None:
                changes.extend(self._end(device_id, AlarmKind.PHYSIOLOGICAL, parameter))
                continue
            limit, sign = crossed
            message = f"{LABELS.get(parameter, parameter)} {_fmt(value)} {sign} {_fmt(limit)}"
            changes.extend(
                self._begin(
                    device_id,
                    bed,
                    AlarmKind.PHYSIOLOGICAL,
                    parameter,
                    limits.priority,
                    message,
                    value,
                    limit,
                )
            )
        if device_alert is None:
            changes.extend(self._end(device_id, AlarmKind.DEVICE, "alert"))
        else:
            changes.extend(
                self._begin(
                    device_id,
                    bed,
                    AlarmKind.DEVICE,
                    "alert",
                    Priority.MEDIUM,
                    f"Device alert: {device_alert}",
                    None,
                    None,
                )
            )
        return changes

    def technical(
        self,
        device_id: str,
        bed: str,
        parameter: str,
        present: bool,
        priority: Priority = Priority.MEDIUM,
        message: str = "",
    ) -> list[Alarm]:
        """Raise or end a technical alarm (no data, broker lost, historian failing, ...)."""
        if present:
            return self._begin(
                device_id, bed, AlarmKind.TECHNICAL, parameter, priority, message, None, None
            )
        return self._end(device_id, AlarmKind.TECHNICAL, parameter)

    def acknowledge(self, alarm_id: str, user: str) -> Alarm | None:
        """A named user acknowledges an active alarm; returns the new snapshot or None if there
        is nothing to acknowledge (unknown, already acknowledged or cleared)."""
        for key, alarm in self._open.items():
            if alarm.alarm_id == alarm_id and alarm.state == AlarmState.ACTIVE:
                acked = replace(alarm, state=AlarmState.ACKNOWLEDGED, at=self._clock(), by=user)
                self._open[key] = acked
                return acked
        return None

    def forget_device(self, device_id: str) -> list[Alarm]:
        """Clear every alarm of a device (it was released from its bed)."""
        keys = [k for k in self._open if k[0] == device_id]
        return [self._clear(k) for k in keys]

    def _begin(
        self,
        device_id: str,
        bed: str,
        kind: AlarmKind,
        parameter: str,
        priority: Priority,
        message: str,
        value: float | None,
        limit: float | None,
    ) -> list[Alarm]:
        key = (device_id, kind, parameter)
        changes: list[Alarm] = []
        current = self._open.get(key)
        if current is not None:
            if current.limit == limit:
                return []
            # The value crossed the other limit (HR 134 > 120, then 40 < 50): the old alarm's
            # message would be wrong, so it clears and a new one is raised.
            changes.append(self._clear(key))
        now = self._clock()
        alarm = Alarm(
            alarm_id=self._new_id(),
            device_id=device_id,
            bed=bed,
            kind=kind,
            parameter=parameter,
            priority=priority,
            state=AlarmState.ACTIVE,
            value=value,
            limit=limit,
            message=message,
            raised_at=now,
            at=now,
        )
        self._open[key] = alarm
        changes.append(alarm)
        return changes

    def _end(self, device_id: str, kind: AlarmKind, parameter: str) -> list[Alarm]:
        key = (device_id, kind, parameter)
        return [self._clear(key)] if key in self._open else []

    def _clear(self, key: tuple[str, AlarmKind, str]) -> Alarm:
        alarm = self._open.pop(key)
        return replace(alarm, state=AlarmState.CLEARED, at=self._clock())


def event_payload(alarm: Alarm) -> dict[str, object]:
    """The alarms-topic JSON object of CONTRACT §2 (no patient identity, ever)."""
    return {
        "alarm_id": alarm.alarm_id,
        "device_id": alarm.device_id,
        "bed": alarm.bed,
        "kind": alarm.kind.value,
        "parameter": alarm.parameter,
        "priority": alarm.priority.value,
        "state": alarm.state.value,
        "value": alarm.value,
        "limit": alarm.limit,
        "message": alarm.message,
        "raised_at": _iso(alarm.raised_at),
        "at": _iso(alarm.at),
        "by": alarm.by,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def most_urgent(alarms: Iterable[Alarm]) -> Alarm | None:
    """The alarm that should colour a tile: highest priority, unacknowledged first."""
    return min(alarms, key=Alarm.sort_key, default=None)
