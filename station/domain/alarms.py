"""Alarm conditions, priorities and the alarm state machine (IEC 60601-1-8 behaviour).

Pure logic with an injected clock, so every transition is testable without waiting. The engine is
owned by the core thread; it returns immutable :class:`Alarm` snapshots for each state change, and
those snapshots are what the screen, the audit trail, the historian and the broker receive.

Lifecycle::

    (pending: condition present, delay not yet over)
    active ──60 s unacknowledged, high only──► escalated
    active | escalated ──acknowledge(user)──► acknowledged ──condition ends──► cleared
    active | escalated ──condition ends──► cleared, or latched if the limits say latching
    latched ──acknowledge(user)──► cleared          latched ──condition returns──► active

A condition starts when a value crosses a limit and must last ``delay_s`` (measured in device
time) before the alarm is raised; it ends only when the value is back inside the limit by
``hysteresis``, so a value sitting on the limit does not chatter. Alarm ids are derived from the
device, the parameter and the device time the condition began, so two stations evaluating the same
messages give the same alarm the same id and can share acknowledgements through the broker
(technical alarms are named by :func:`station.domain.ward_events.technical_alarm_id`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from station.domain.timefmt import iso_ms


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
    ESCALATED = "escalated"
    LATCHED = "latched"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


# Added to a device alert when the station sees every value within its limits.
WITHIN_LIMITS_MARK = " (station: values within limits)"

# States in which nobody has acknowledged the alarm yet: these sound.
UNACKNOWLEDGED = frozenset({AlarmState.ACTIVE, AlarmState.ESCALATED, AlarmState.LATCHED})

LABELS: Mapping[str, str] = {
    "heartrate": "HR",
    "oxygen": "SpO2",
    "systolic": "NIBP sys",
    "diastolic": "NIBP dia",
    "temperature": "Temp",
}


class AlarmLimits(BaseModel):
    """Limits of one parameter and how crossing them behaves."""

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
    delay_s: float = Field(default=0.0, ge=0, le=120, allow_inf_nan=False)
    hysteresis: float = Field(default=0.0, ge=0, le=50, allow_inf_nan=False)
    latching: bool = False

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

    def back_inside(self, value: float, sign: str) -> bool:
        """True once a value is inside the limit that was crossed (``sign``) by the hysteresis."""
        if sign == ">":
            return self.high is None or value <= self.high - self.hysteresis
        return self.low is None or value >= self.low + self.hysteresis


def _fmt(value: float) -> str:
    return f"{value:.1f}" if value != int(value) else f"{int(value)}"


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm at one moment. Immutable: every change produces a new snapshot.

    ``condition`` says whether the alarm condition is still present (False only when latched);
    ``source_time`` is the device time of the message that raised it (for latency and review).
    """

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
    condition: bool = True
    source_time: float | None = None
    acked_at: float | None = None

    @property
    def key(self) -> tuple[str, AlarmKind, str]:
        """Identity of the condition: one alarm per device, kind and parameter at a time."""
        return (self.device_id, self.kind, self.parameter)

    @property
    def sign(self) -> str:
        """``>`` for a high-limit alarm, ``<`` for a low one (physiological alarms)."""
        above = self.value is not None and self.limit is not None and self.value > self.limit
        return ">" if above else "<"

    def sort_key(self) -> tuple[int, int, float]:
        """Most urgent first: priority, then unacknowledged before acknowledged, then newest."""
        return (self.priority.rank, self.state not in UNACKNOWLEDGED, -self.raised_at)


def alarm_id_for(device_id: str, kind: AlarmKind, parameter: str, since: float) -> str:
    """Deterministic id: the same condition seen by two stations has the same id."""
    text = f"{device_id}|{kind.value}|{parameter}|{round(since * 1000)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


Key = tuple[str, AlarmKind, str]
MAX_HEARD = 4096  # devices whose newest device time the engine keeps (the oldest go first)


class AlarmEngine:
    """The alarm state machine for a ward. Not thread-safe: one owner thread (the core thread).

    Args:
        limits: parameter → limits, the ward default (``[alarms]`` in the config).
        clock: UTC epoch seconds; injected so tests drive time.
        new_id: alarm id factory overriding the deterministic ids (tests only).
        escalate_after_s: a high alarm unacknowledged this long is escalated.
        monotonic: the clock escalation is timed with (default: the alarm's ``at``, from
            ``clock``). The station passes
            a monotonic one: a wall clock stepped back an hour must not hold an escalation back
            an hour.
    """

    def __init__(
        self,
        limits: Mapping[str, AlarmLimits],
        clock: Callable[[], float],
        new_id: Callable[[], str] | None = None,
        escalate_after_s: float = 60.0,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._limits = dict(limits)
        self._mono = monotonic  # None: escalation is timed from the alarm's own wall time
        self._active_since: dict[Key, float] = {}  # monotonic time each alarm became active
        self._bed_limits: dict[str, dict[str, AlarmLimits]] = {}
        self._clock = clock
        self._new_id = new_id
        self._escalate_after = escalate_after_s
        self._open: dict[Key, Alarm] = {}
        # key → (since, limit crossed, bed): conditions waiting out their delay
        self._pending: dict[Key, tuple[float, float, str]] = {}
        self._heard: dict[str, float] = {}  # device → newest device time evaluated (bounded)

    # -- limits ----------------------------------------------------------------------------

    def limits_for(self, bed: str) -> dict[str, AlarmLimits]:
        """The limits in force for a bed: its own if set at the station, else the ward's."""
        return dict(self._bed_limits.get(bed, self._limits))

    def set_bed_limits(self, bed: str, limits: Mapping[str, AlarmLimits]) -> None:
        """Give one bed its own limits (a nurse changed them); they apply from the next value."""
        merged = dict(self._limits)
        merged.update(limits)
        self._bed_limits[bed] = merged
        for key in [k for k, pending in self._pending.items() if pending[2] == bed]:
            del self._pending[key]

    def has_bed_limits(self, bed: str) -> bool:
        """Whether ``bed`` has limits of its own."""
        return bed in self._bed_limits

    def reset_bed_limits(self, bed: str) -> None:
        """Back to the ward's limits (the bed's patient changed)."""
        self._bed_limits.pop(bed, None)
        for key in [k for k, pending in self._pending.items() if pending[2] == bed]:
            del self._pending[key]

    # -- queries ---------------------------------------------------------------------------

    def open_alarms(self) -> list[Alarm]:
        """Alarms not yet cleared, most urgent first."""
        return sorted(self._open.values(), key=Alarm.sort_key)

    def heard(self, device_id: str) -> float | None:
        """Device time of the newest message evaluated from a device (None: none since the
        start or since it was forgotten): what every station of the ward shares about it."""
        return self._heard.get(device_id)

    # -- inputs ----------------------------------------------------------------------------

    def evaluate(
        self,
        device_id: str,
        bed: str,
        values: Mapping[str, float],
        device_alert: str | None = None,
        at: float | None = None,
    ) -> list[Alarm]:
        """Check one message's values (device time ``at``) against the bed's limits; return the
        alarms that changed. A parameter absent from the message leaves its alarm as it is: a
        missing value is not a normal value."""
        at = self._clock() if at is None else at
        if device_id not in self._heard and len(self._heard) >= MAX_HEARD:
            del self._heard[next(iter(self._heard))]
        self._heard[device_id] = at
        limits_now = self._bed_limits.get(bed, self._limits)
        changes: list[Alarm] = []
        for parameter, value in values.items():
            limits = limits_now.get(parameter)
            if limits is not None:
                changes.extend(self._evaluate_one(device_id, bed, parameter, value, limits, at))
        changes.extend(self._device_alert(device_id, bed, device_alert, at))
        return changes

    def _evaluate_one(
        self, device: str, bed: str, parameter: str, value: float, limits: AlarmLimits, at: float
    ) -> list[Alarm]:
        key = (device, AlarmKind.PHYSIOLOGICAL, parameter)
        current = self._open.get(key)
        crossed = limits.violation(value)
        if crossed is None:
            pending = self._pending.get(key)
            # Hysteresis holds during the delay too: SpO2 89, 89, 90, 89 … is one condition.
            if pending is not None:
                side = ">" if pending[1] == limits.high else "<"
                if limits.back_inside(value, side):
                    del self._pending[key]
            if (
                current is not None
                and current.condition
                and limits.back_inside(value, current.sign)
            ):
                return self._condition_ended(key, limits.latching)
            return []
        limit, sign = crossed
        changes: list[Alarm] = []
        if current is not None:
            if current.limit == limit:
                if not current.condition:  # latched, and the condition is back
                    reactivated = replace(
                        current, condition=True, state=AlarmState.ACTIVE, at=self._clock()
                    )
                    return [self._put(reactivated)]
                return []
            # The value crossed the other limit (HR 134 > 120, then 40 < 50): the old alarm's
            # message would be wrong, so it clears and the new condition starts.
            changes.append(self._clear(key))
        since, pending_limit, _ = self._pending.get(key, (at, limit, bed))
        if pending_limit != limit or at < since:
            # A device clock that stepped back would otherwise hold the alarm for as long as
            # the step: the delay starts again from the new clock, at most delay_s later.
            since = at
        if at - since < limits.delay_s:
            self._pending[key] = (since, limit, bed)
            return changes
        self._pending.pop(key, None)
        message = f"{LABELS.get(parameter, parameter)} {_fmt(value)} {sign} {_fmt(limit)}"
        changes.extend(self._begin(key, bed, limits.priority, message, value, limit, since, at))
        return changes

    def _device_alert(self, device: str, bed: str, alert: str | None, at: float) -> list[Alarm]:
        key = (device, AlarmKind.DEVICE, "alert")
        if alert is None:
            return self._clear_if_open(key)
        # A condition still waiting out its delay is the station seeing a problem too.
        station_agrees = any(
            a.device_id == device and a.kind == AlarmKind.PHYSIOLOGICAL and a.condition
            for a in self._open.values()
        ) or any(k[0] == device for k in self._pending)
        # The device's own alarm is shown beside the station's; when the station sees nothing
        # wrong in the values, the disagreement itself is worth a look.
        base = f"Device alert: {alert}"
        current = self._open.get(key)
        if current is not None and current.message in (base, base + WITHIN_LIMITS_MARK):
            return []  # same alert text: the mark is judged once, at raise
        message = base if station_agrees else base + WITHIN_LIMITS_MARK
        changes = self._clear_if_open(key)
        changes.extend(self._begin(key, bed, Priority.MEDIUM, message, None, None, at, at))
        return changes

    def technical(
        self,
        device_id: str,
        bed: str,
        parameter: str,
        present: bool,
        priority: Priority = Priority.MEDIUM,
        message: str = "",
        name: Callable[[], str] | None = None,
    ) -> list[Alarm]:
        """Raise or end a technical alarm (no data, broker lost, historian failing, ...);
        ``name`` gives a new alarm its id (the ward's stations agree on it), called only then."""
        key = (device_id, AlarmKind.TECHNICAL, parameter)
        if not present:
            return self._condition_ended(key, latching=False) if key in self._open else []
        if key in self._open:
            return []
        now = self._clock()
        alarm_id = name() if name is not None and self._new_id is None else None
        return self._begin(key, bed, priority, message, None, None, now, now, alarm_id)

    def acknowledge(self, alarm_id: str, user: str) -> Alarm | None:
        """A named user acknowledges an alarm; returns the new snapshot, or None if there is
        nothing to acknowledge (unknown, already acknowledged or cleared). Acknowledging a
        latched alarm (condition gone) clears it."""
        for key, alarm in self._open.items():
            if alarm.alarm_id != alarm_id or alarm.state not in UNACKNOWLEDGED:
                continue
            now = self._clock()
            if alarm.state == AlarmState.LATCHED:
                del self._open[key]
                self._active_since.pop(key, None)
                return replace(alarm, state=AlarmState.CLEARED, at=now, by=user, acked_at=now)
            return self._put(
                replace(alarm, state=AlarmState.ACKNOWLEDGED, at=now, by=user, acked_at=now)
            )
        return None

    def tick(self) -> list[Alarm]:
        """Time-driven transitions (call about once a second): escalation of a high alarm left
        unacknowledged for ``escalate_after_s`` since it last became active (``at``: its raise,
        or its return from latched, so a re-activated alarm gets the full time again)."""
        now = self._clock()
        mono = self._mono() if self._mono is not None else now
        return [
            self._put(replace(alarm, state=AlarmState.ESCALATED, at=now))
            for alarm in list(self._open.values())
            if alarm.state == AlarmState.ACTIVE
            and alarm.priority == Priority.HIGH
            and mono - self._active_since.get(alarm.key, mono) >= self._escalate_after
        ]

    def forget_device(self, device_id: str) -> list[Alarm]:
        """Clear every alarm of a device (it was released from its bed)."""
        for key in [k for k in self._pending if k[0] == device_id]:
            del self._pending[key]
        self._heard.pop(device_id, None)
        return [self._clear(k) for k in list(self._open) if k[0] == device_id]

    # -- transitions -----------------------------------------------------------------------

    def _put(self, alarm: Alarm) -> Alarm:
        old = self._open.get(alarm.key)
        if alarm.state == AlarmState.ACTIVE and (old is None or old.state != AlarmState.ACTIVE):
            since = self._mono() if self._mono is not None else alarm.at
            self._active_since[alarm.key] = since
        self._open[alarm.key] = alarm
        return alarm

    def _begin(
        self,
        key: Key,
        bed: str,
        priority: Priority,
        message: str,
        value: float | None,
        limit: float | None,
        since: float,
        source_time: float,
        alarm_id: str | None = None,
    ) -> list[Alarm]:
        device, kind, parameter = key
        now = self._clock()
        new_id = self._new_id
        alarm_id = alarm_id or (
            new_id() if new_id else alarm_id_for(device, kind, parameter, since)
        )
        alarm = Alarm(
            alarm_id=alarm_id,
            device_id=device,
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
            source_time=source_time,
        )
        return [self._put(alarm)]

    def _condition_ended(self, key: Key, latching: bool) -> list[Alarm]:
        alarm = self._open[key]
        if alarm.state == AlarmState.ACKNOWLEDGED or not latching:
            return [self._clear(key)]
        if alarm.state == AlarmState.LATCHED:
            return []
        latched = replace(alarm, state=AlarmState.LATCHED, condition=False, at=self._clock())
        return [self._put(latched)]

    def _clear_if_open(self, key: Key) -> list[Alarm]:
        return [self._clear(key)] if key in self._open else []

    def _clear(self, key: Key) -> Alarm:
        alarm = self._open.pop(key)
        self._active_since.pop(key, None)
        return replace(alarm, state=AlarmState.CLEARED, condition=False, at=self._clock())


def event_payload(alarm: Alarm) -> dict[str, object]:
    """The alarms-topic JSON object of CONTRACT §2 (no patient identity, ever), extended with
    ``source_time``: the device time of the message that raised the alarm."""
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
        "raised_at": iso_ms(alarm.raised_at),
        "at": iso_ms(alarm.at),
        "by": alarm.by,
        "source_time": None if alarm.source_time is None else iso_ms(alarm.source_time),
    }


def most_urgent(alarms: Iterable[Alarm]) -> Alarm | None:
    """The alarm that should colour a tile: highest priority, unacknowledged first."""
    return min(alarms, key=Alarm.sort_key, default=None)
