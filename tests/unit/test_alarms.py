"""Unit tests of the alarm state machine in :mod:`station.domain.alarms`.

Every transition of the first cut is driven with an injected clock and id factory, so no test
waits and every snapshot is predictable: none → active on crossing a limit; active stays (no
duplicate event) while the condition lasts; active → cleared when the value returns (non-latching);
active → acknowledged by a named user; acknowledged → cleared. The events leave the station on the
alarms topic, so :func:`event_payload` is checked against CONTRACT §2 key by key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from pydantic import ValidationError

from station.domain.alarms import (
    Alarm,
    AlarmEngine,
    AlarmKind,
    AlarmLimits,
    AlarmState,
    Priority,
    event_payload,
    most_urgent,
)
from station.domain.ingest import parse
from station.domain.messages import Accepted
from tests.fakes import FakeClock

T0 = 1738411200.0  # 2025-02-01T12:00:00Z
T0_ISO = "2025-02-01T12:00:00.000Z"
DEV = "dev-1"
BED = "Bed 1"

LIMITS: dict[str, AlarmLimits] = {
    "heartrate": AlarmLimits(low=50, high=120, priority=Priority.HIGH),
    "oxygen": AlarmLimits(low=90, priority=Priority.HIGH),
    "systolic": AlarmLimits(low=90, high=160, priority=Priority.MEDIUM),
    "diastolic": AlarmLimits(low=50, high=100, priority=Priority.MEDIUM),
    "temperature": AlarmLimits(low=35.5, high=38.5, priority=Priority.LOW),
}

# CONTRACT §2: exactly these keys, and nothing that could identify a patient.
EVENT_KEYS = frozenset(
    {
        "alarm_id",
        "device_id",
        "bed",
        "kind",
        "parameter",
        "priority",
        "state",
        "value",
        "limit",
        "message",
        "raised_at",
        "at",
        "by",
        "source_time",
    }
)


def _ids() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"a{n:03d}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def engine(clock: FakeClock) -> AlarmEngine:
    ids = _ids()
    return AlarmEngine(LIMITS, clock, lambda: next(ids))


def _one(changes: list[Alarm]) -> Alarm:
    assert len(changes) == 1, changes
    return changes[0]


# -- priorities and limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "mark", "rank"),
    [(Priority.HIGH, "***", 0), (Priority.MEDIUM, "**", 1), (Priority.LOW, "*", 2)],
    ids=["high", "medium", "low"],
)
def test_priority_mark_and_rank(priority: Priority, mark: str, rank: int) -> None:
    assert priority.mark == mark
    assert priority.rank == rank


def test_priority_members_are_in_order_of_urgency() -> None:
    assert [p.rank for p in Priority] == [0, 1, 2]
    assert [p.value for p in Priority] == ["high", "medium", "low"]


@pytest.mark.parametrize(
    ("low", "high"),
    [(120, 50), (80, 80), (38.5, 38.4)],
    ids=["low-above-high", "low-equals-high", "fractional-low-above-high"],
)
def test_limits_low_not_below_high_rejected(low: float, high: float) -> None:
    with pytest.raises(ValidationError, match="must be below high limit"):
        AlarmLimits(low=low, high=high)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"low": 90}, {"high": 120}, {"low": 50, "high": 120}, {"low": 35.5, "high": 35.6}],
    ids=["none", "low-only", "high-only", "both", "narrow"],
)
def test_limits_valid_combinations_accepted(kwargs: dict[str, float]) -> None:
    limits = AlarmLimits(**kwargs)
    assert limits.low == kwargs.get("low")
    assert limits.high == kwargs.get("high")
    assert limits.priority is Priority.MEDIUM


def test_limits_unknown_field_rejected() -> None:
    with pytest.raises(ValidationError, match="hihg"):
        AlarmLimits.model_validate({"low": 1, "hihg": 2})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (121, (120, ">")),
        (120.01, (120, ">")),
        (120, None),
        (50, None),
        (85, None),
        (49.9, (50, "<")),
        (0, (50, "<")),
    ],
    ids=["above", "just-above", "at-high", "at-low", "inside", "just-below", "zero"],
)
def test_limits_violation(value: float, expected: tuple[float, str] | None) -> None:
    assert LIMITS["heartrate"].violation(value) == expected


def test_limits_one_sided_never_crosses_the_missing_side() -> None:
    assert LIMITS["oxygen"].violation(100) is None
    assert LIMITS["oxygen"].violation(89) == (90, "<")


# -- none → active --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter", "value", "message", "limit", "priority"),
    [
        ("heartrate", 134, "HR 134 > 120", 120, Priority.HIGH),
        ("heartrate", 40, "HR 40 < 50", 50, Priority.HIGH),
        ("heartrate", 120.5, "HR 120.5 > 120", 120, Priority.HIGH),
        ("oxygen", 88, "SpO2 88 < 90", 90, Priority.HIGH),
        ("temperature", 38.7, "Temp 38.7 > 38.5", 38.5, Priority.LOW),
        ("temperature", 35.2, "Temp 35.2 < 35.5", 35.5, Priority.LOW),
        ("systolic", 170, "NIBP sys 170 > 160", 160, Priority.MEDIUM),
        ("diastolic", 45, "NIBP dia 45 < 50", 50, Priority.MEDIUM),
    ],
    ids=["hr-high", "hr-low", "hr-fraction", "spo2-low", "temp-high", "temp-low", "sys", "dia"],
)
def test_crossing_raises_active_alarm(
    engine: AlarmEngine,
    parameter: str,
    value: float,
    message: str,
    limit: float,
    priority: Priority,
) -> None:
    alarm = _one(engine.evaluate(DEV, BED, {parameter: value}))
    assert alarm == Alarm(
        alarm_id="a001",
        device_id=DEV,
        bed=BED,
        kind=AlarmKind.PHYSIOLOGICAL,
        parameter=parameter,
        priority=priority,
        state=AlarmState.ACTIVE,
        value=value,
        limit=limit,
        message=message,
        raised_at=T0,
        at=T0,
        by=None,
        source_time=T0,
    )
    assert engine.open_alarms() == [alarm]


@pytest.mark.parametrize(
    "values",
    [
        {"heartrate": 120, "oxygen": 90, "temperature": 38.5},
        {"heartrate": 50, "systolic": 90, "diastolic": 100},
        {"heartrate": 72, "oxygen": 98, "temperature": 36.8},
        {"battery": 3.0, "latitude": -89.0, "longitude": 179.0},
        {},
    ],
    ids=["at-high-limits", "at-low-limits", "normal", "parameters-without-limits", "empty"],
)
def test_values_within_limits_raise_nothing(engine: AlarmEngine, values: dict[str, float]) -> None:
    assert engine.evaluate(DEV, BED, values) == []
    assert engine.open_alarms() == []


def test_several_parameters_crossing_at_once_each_raise_one_alarm(engine: AlarmEngine) -> None:
    changes = engine.evaluate(DEV, BED, {"heartrate": 134, "oxygen": 88, "temperature": 36.8})
    assert [(a.parameter, a.message) for a in changes] == [
        ("heartrate", "HR 134 > 120"),
        ("oxygen", "SpO2 88 < 90"),
    ]
    assert len({a.alarm_id for a in changes}) == 2


def test_devices_are_independent(engine: AlarmEngine) -> None:
    first = _one(engine.evaluate("dev-1", "Bed 1", {"heartrate": 134}))
    second = _one(engine.evaluate("dev-2", "Bed 2", {"heartrate": 134}))
    assert first.alarm_id != second.alarm_id
    assert (second.device_id, second.bed) == ("dev-2", "Bed 2")
    cleared = _one(engine.evaluate("dev-1", "Bed 1", {"heartrate": 80}))
    assert cleared.alarm_id == first.alarm_id
    assert [a.alarm_id for a in engine.open_alarms()] == [second.alarm_id]


# -- active stays -------------------------------------------------------------------------------


def test_persisting_condition_raises_no_duplicate(engine: AlarmEngine, clock: FakeClock) -> None:
    first = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    for value in (134, 140, 121):
        clock.advance(1)
        assert engine.evaluate(DEV, BED, {"heartrate": value}) == []
    assert engine.open_alarms() == [first]


def test_absent_parameter_leaves_its_alarm_alone(engine: AlarmEngine, clock: FakeClock) -> None:
    first = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    clock.advance(1)
    # A message without a heart rate is not a normal heart rate.
    assert engine.evaluate(DEV, BED, {"oxygen": 98}) == []
    assert engine.evaluate(DEV, BED, {}) == []
    assert engine.open_alarms() == [first]


# -- active → cleared ------------------------------------------------------------------------------


def test_return_within_limits_clears_unacknowledged_alarm(
    engine: AlarmEngine, clock: FakeClock
) -> None:
    raised = _one(engine.evaluate(DEV, BED, {"oxygen": 88}))
    clock.advance(7)
    cleared = _one(engine.evaluate(DEV, BED, {"oxygen": 95}))
    assert cleared.alarm_id == raised.alarm_id
    assert cleared.state is AlarmState.CLEARED
    assert cleared.raised_at == T0
    assert cleared.at == T0 + 7
    assert cleared.by is None
    assert cleared.message == raised.message
    assert engine.open_alarms() == []
    # Nothing left to clear: a second normal value is silent.
    assert engine.evaluate(DEV, BED, {"oxygen": 95}) == []


def test_crossing_again_after_clear_raises_a_new_alarm(
    engine: AlarmEngine, clock: FakeClock
) -> None:
    first = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    clock.advance(1)
    engine.evaluate(DEV, BED, {"heartrate": 80})
    clock.advance(1)
    second = _one(engine.evaluate(DEV, BED, {"heartrate": 130}))
    assert second.alarm_id != first.alarm_id
    assert second.state is AlarmState.ACTIVE
    assert second.raised_at == T0 + 2
    assert second.message == "HR 130 > 120"


# -- acknowledge --------------------------------------------------------------------------------


def test_acknowledge_active_alarm_names_user_and_time(
    engine: AlarmEngine, clock: FakeClock
) -> None:
    raised = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    clock.advance(12.5)
    acked = engine.acknowledge(raised.alarm_id, "nurse.ana")
    assert acked is not None
    assert acked.state is AlarmState.ACKNOWLEDGED
    assert acked.by == "nurse.ana"
    assert acked.at == T0 + 12.5
    assert acked.raised_at == T0
    assert (acked.alarm_id, acked.value, acked.limit, acked.message) == (
        raised.alarm_id,
        134,
        120,
        "HR 134 > 120",
    )
    assert engine.open_alarms() == [acked]


def test_acknowledged_alarm_stays_while_condition_persists(
    engine: AlarmEngine, clock: FakeClock
) -> None:
    raised = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    acked = engine.acknowledge(raised.alarm_id, "nurse.ana")
    clock.advance(1)
    assert engine.evaluate(DEV, BED, {"heartrate": 140}) == []
    assert engine.open_alarms() == [acked]


def test_acknowledged_alarm_clears_when_condition_ends(
    engine: AlarmEngine, clock: FakeClock
) -> None:
    raised = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    clock.advance(5)
    engine.acknowledge(raised.alarm_id, "nurse.ana")
    clock.advance(5)
    cleared = _one(engine.evaluate(DEV, BED, {"heartrate": 80}))
    assert cleared.alarm_id == raised.alarm_id
    assert cleared.state is AlarmState.CLEARED
    assert cleared.at == T0 + 10
    assert cleared.by == "nurse.ana"
    assert engine.open_alarms() == []


def test_acknowledge_twice_returns_none(engine: AlarmEngine, clock: FakeClock) -> None:
    raised = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    first = engine.acknowledge(raised.alarm_id, "nurse.ana")
    clock.advance(1)
    assert engine.acknowledge(raised.alarm_id, "dr.bo") is None
    # The first acknowledgement stands: user and time unchanged.
    assert engine.open_alarms() == [first]


def test_acknowledge_unknown_id_returns_none(engine: AlarmEngine) -> None:
    raised = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    assert engine.acknowledge("no-such-id", "nurse.ana") is None
    assert engine.open_alarms() == [raised]


def test_acknowledge_cleared_alarm_returns_none(engine: AlarmEngine) -> None:
    raised = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    engine.evaluate(DEV, BED, {"heartrate": 80})
    assert engine.acknowledge(raised.alarm_id, "nurse.ana") is None
    assert engine.open_alarms() == []


# -- device alert ---------------------------------------------------------------------------------


def _accepted(alert: str | None) -> Accepted:
    doc: dict[str, object] = {"device_id": DEV, "timestamp": "2025-02-01T12:00:00Z"}
    if alert is not None:
        doc["alert"] = alert
    msg = parse("healthcare/sensor_data", json.dumps(doc).encode(), T0)
    assert isinstance(msg, Accepted), msg
    return msg


@pytest.mark.parametrize(
    "alert",
    ["none", "NONE", " None ", "", None],
    ids=["none", "upper", "padded", "empty", "absent"],
)
def test_device_alert_none_raises_nothing(engine: AlarmEngine, alert: str | None) -> None:
    # The path the core takes: the payload normalises "none" to None before the engine sees it.
    device_alert = _accepted(alert).payload.device_alert
    assert device_alert is None
    assert engine.evaluate(DEV, BED, {}, device_alert) == []
    assert engine.open_alarms() == []


def test_device_alert_raises_then_none_clears(engine: AlarmEngine, clock: FakeClock) -> None:
    raised = _one(engine.evaluate(DEV, BED, {}, _accepted("Lead off").payload.device_alert))
    assert raised.kind is AlarmKind.DEVICE
    assert raised.parameter == "alert"
    assert raised.priority is Priority.MEDIUM
    assert raised.state is AlarmState.ACTIVE
    # The station sees nothing wrong in the values, so the disagreement is marked.
    assert raised.message == "Device alert: Lead off (station: values within limits)"
    assert (raised.value, raised.limit) == (None, None)
    clock.advance(1)
    assert engine.evaluate(DEV, BED, {}, "Lead off") == []
    clock.advance(1)
    cleared = _one(engine.evaluate(DEV, BED, {}, _accepted("none").payload.device_alert))
    assert cleared.alarm_id == raised.alarm_id
    assert cleared.state is AlarmState.CLEARED
    assert cleared.at == T0 + 2
    assert engine.open_alarms() == []


def test_device_alert_and_physiological_alarm_are_separate(engine: AlarmEngine) -> None:
    changes = engine.evaluate(DEV, BED, {"heartrate": 134}, "Lead off")
    assert [a.kind for a in changes] == [AlarmKind.PHYSIOLOGICAL, AlarmKind.DEVICE]
    # Heart rate back to normal ends only the physiological alarm.
    cleared = _one(engine.evaluate(DEV, BED, {"heartrate": 80}, "Lead off"))
    assert cleared.kind is AlarmKind.PHYSIOLOGICAL
    assert [a.kind for a in engine.open_alarms()] == [AlarmKind.DEVICE]


# -- technical ------------------------------------------------------------------------------------


def test_technical_present_then_absent(engine: AlarmEngine, clock: FakeClock) -> None:
    raised = _one(engine.technical(DEV, BED, "no_data", True, Priority.HIGH, "No data"))
    assert raised.kind is AlarmKind.TECHNICAL
    assert (raised.parameter, raised.priority, raised.message) == (
        "no_data",
        Priority.HIGH,
        "No data",
    )
    assert (raised.value, raised.limit) == (None, None)
    assert raised.state is AlarmState.ACTIVE
    clock.advance(1)
    assert engine.technical(DEV, BED, "no_data", True, Priority.HIGH, "No data") == []
    clock.advance(1)
    cleared = _one(engine.technical(DEV, BED, "no_data", False))
    assert cleared.alarm_id == raised.alarm_id
    assert cleared.state is AlarmState.CLEARED
    assert cleared.at == T0 + 2
    assert engine.open_alarms() == []


def test_technical_absent_without_alarm_is_silent(engine: AlarmEngine) -> None:
    assert engine.technical(DEV, BED, "no_data", False) == []


def test_technical_default_priority_is_medium(engine: AlarmEngine) -> None:
    assert _one(engine.technical("station", "", "broker", True)).priority is Priority.MEDIUM


def test_technical_alarm_untouched_by_vitals(engine: AlarmEngine) -> None:
    raised = _one(engine.technical(DEV, BED, "no_data", True))
    assert engine.evaluate(DEV, BED, {"heartrate": 80}) == []
    assert engine.open_alarms() == [raised]


def test_technical_alarm_can_be_acknowledged(engine: AlarmEngine) -> None:
    raised = _one(engine.technical(DEV, BED, "no_data", True))
    acked = engine.acknowledge(raised.alarm_id, "tech.cy")
    assert acked is not None
    assert (acked.state, acked.by) == (AlarmState.ACKNOWLEDGED, "tech.cy")


# -- forget_device --------------------------------------------------------------------------------


def test_forget_device_clears_all_its_alarms_only(engine: AlarmEngine, clock: FakeClock) -> None:
    hr = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    engine.acknowledge(hr.alarm_id, "nurse.ana")
    engine.evaluate(DEV, BED, {"oxygen": 88}, "Lead off")
    engine.technical(DEV, BED, "no_data", True)
    other = _one(engine.evaluate("dev-2", "Bed 2", {"heartrate": 134}))
    clock.advance(3)
    cleared = engine.forget_device(DEV)
    assert len(cleared) == 4
    assert {a.state for a in cleared} == {AlarmState.CLEARED}
    assert {a.at for a in cleared} == {T0 + 3}
    assert {a.device_id for a in cleared} == {DEV}
    assert engine.open_alarms() == [other]
    assert engine.forget_device(DEV) == []


# -- ordering -------------------------------------------------------------------------------------


def test_open_alarms_high_before_medium_before_low(engine: AlarmEngine, clock: FakeClock) -> None:
    engine.evaluate(DEV, BED, {"temperature": 38.7})
    clock.advance(1)
    engine.evaluate(DEV, BED, {"systolic": 170})
    clock.advance(1)
    engine.evaluate(DEV, BED, {"heartrate": 134})
    assert [a.priority for a in engine.open_alarms()] == [
        Priority.HIGH,
        Priority.MEDIUM,
        Priority.LOW,
    ]


def test_open_alarms_active_before_acknowledged(engine: AlarmEngine, clock: FakeClock) -> None:
    older = _one(engine.evaluate("dev-1", "Bed 1", {"heartrate": 134}))
    clock.advance(1)
    newer = _one(engine.evaluate("dev-2", "Bed 2", {"heartrate": 134}))
    # Acknowledging the newer one sends it behind the older, still active one.
    engine.acknowledge(newer.alarm_id, "nurse.ana")
    order = engine.open_alarms()
    assert [a.alarm_id for a in order] == [older.alarm_id, newer.alarm_id]
    assert [a.state for a in order] == [AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED]
    # Priority still wins over acknowledgement.
    clock.advance(1)
    low = _one(engine.evaluate("dev-3", "Bed 3", {"temperature": 38.7}))
    assert engine.open_alarms()[-1].alarm_id == low.alarm_id


def test_open_alarms_newest_first_within_priority(engine: AlarmEngine, clock: FakeClock) -> None:
    raised = []
    for n in range(1, 5):
        clock.advance(1)
        raised.append(_one(engine.evaluate(f"dev-{n}", f"Bed {n}", {"oxygen": 88})))
    assert [a.alarm_id for a in engine.open_alarms()] == [a.alarm_id for a in reversed(raised)]


def test_most_urgent(engine: AlarmEngine, clock: FakeClock) -> None:
    assert most_urgent([]) is None
    low = _one(engine.evaluate(DEV, BED, {"temperature": 38.7}))
    clock.advance(1)
    high = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    assert most_urgent([low, high]) == high
    acked = engine.acknowledge(high.alarm_id, "nurse.ana")
    assert acked is not None
    clock.advance(1)
    high2 = _one(engine.evaluate("dev-2", "Bed 2", {"oxygen": 88}))
    assert most_urgent([low, acked, high2]) == high2


# -- event payload (CONTRACT §2) ------------------------------------------------------------------


def test_event_payload_of_raised_alarm(engine: AlarmEngine) -> None:
    alarm = _one(engine.evaluate(DEV, BED, {"heartrate": 134}))
    assert event_payload(alarm) == {
        "alarm_id": "a001",
        "device_id": DEV,
        "bed": BED,
        "kind": "physiological",
        "parameter": "heartrate",
        "priority": "high",
        "state": "active",
        "value": 134,
        "limit": 120,
        "message": "HR 134 > 120",
        "raised_at": T0_ISO,
        "at": T0_ISO,
        "by": None,
        "source_time": "2025-02-01T12:00:00.000Z",
    }


def test_event_payload_of_acknowledgement_and_clear(engine: AlarmEngine, clock: FakeClock) -> None:
    raised = _one(engine.evaluate(DEV, BED, {"oxygen": 88}))
    clock.advance(1.25)
    acked = engine.acknowledge(raised.alarm_id, "nurse.ana")
    assert acked is not None
    ack_event = event_payload(acked)
    assert (ack_event["state"], ack_event["by"]) == ("acknowledged", "nurse.ana")
    assert ack_event["raised_at"] == T0_ISO
    assert ack_event["at"] == "2025-02-01T12:00:01.250Z"
    clock.advance(60)
    cleared = event_payload(_one(engine.evaluate(DEV, BED, {"oxygen": 97})))
    assert cleared["state"] == "cleared"
    assert cleared["at"] == "2025-02-01T12:01:01.250Z"


@pytest.mark.parametrize(
    "make",
    [
        lambda e: e.evaluate(DEV, BED, {"heartrate": 134}),
        lambda e: e.evaluate(DEV, BED, {}, "Lead off"),
        lambda e: e.technical("station", "", "broker", True, Priority.HIGH, "Broker: lost"),
    ],
    ids=["physiological", "device", "technical"],
)
def test_event_payload_has_exactly_the_contract_keys(
    engine: AlarmEngine, make: Callable[[AlarmEngine], list[Alarm]]
) -> None:
    alarm = _one(make(engine))
    payload = event_payload(alarm)
    assert set(payload) == EVENT_KEYS
    assert payload["kind"] in {"physiological", "technical", "device"}
    assert payload["priority"] in {"high", "medium", "low"}
    assert payload["state"] in {"active", "acknowledged", "cleared"}
    # It goes out as JSON: every value must serialise and come back equal.
    assert json.loads(json.dumps(payload)) == payload


def test_event_payload_of_technical_alarm_has_null_value_and_limit(engine: AlarmEngine) -> None:
    payload = event_payload(_one(engine.technical("station", "", "broker", True)))
    assert (payload["value"], payload["limit"], payload["bed"]) == (None, None, "")
    assert payload["kind"] == "technical"


def test_default_id_factory_gives_distinct_ids(clock: FakeClock) -> None:
    engine = AlarmEngine(LIMITS, clock)
    ids = {_one(engine.evaluate(f"dev-{n}", BED, {"heartrate": 134})).alarm_id for n in range(50)}
    assert len(ids) == 50
    assert all(isinstance(i, str) and i for i in ids)
