"""Every named transition of the alarm state machine in :mod:`station.domain.alarms`.

The lifecycle under test (module docstring, IEC 60601-1-8 behaviour)::

    (pending: condition present, delay not yet over)
    active ──60 s unacknowledged, high only──► escalated
    active | escalated ──acknowledge(user)──► acknowledged ──condition ends──► cleared
    active | escalated ──condition ends──► cleared, or latched if the limits say latching
    latched ──acknowledge(user)──► cleared          latched ──condition returns──► active

Two clocks are kept apart on purpose: the station clock (injected into the engine, gives
``raised_at``) and the device time (``at=`` of each message, measures the delay and gives the
deterministic id). The device clock runs well behind the station's, so a test that mixed them up
would fail. Pure: no Qt, no network, no waiting.
"""

from __future__ import annotations

import pytest

from station.domain.alarms import (
    Alarm,
    AlarmEngine,
    AlarmKind,
    AlarmLimits,
    AlarmState,
    Priority,
    alarm_id_for,
)
from tests.fakes import FakeClock

T0 = 1_738_411_200.0  # station clock: 2025-02-01T12:00:00Z
D0 = T0 - 3_600.0  # device clock: an hour behind the station's
DEV, DEV2 = "dev-1", "dev-2"
BED, BED2 = "Bed 1", "Bed 2"
HR = "heartrate"
NURSE = "nurse.ana"
PHYS = AlarmKind.PHYSIOLOGICAL
WITHIN_LIMITS_MARK = " (station: values within limits)"


def hr_limits(**overrides: object) -> AlarmLimits:
    """Heart-rate limits 50..120, high priority, no delay/hysteresis/latching unless overridden."""
    fields: dict[str, object] = {"low": 50, "high": 120, "priority": Priority.HIGH}
    fields.update(overrides)
    return AlarmLimits.model_validate(fields)


def make_engine(
    clock: FakeClock, escalate_after_s: float = 60.0, **overrides: object
) -> AlarmEngine:
    return AlarmEngine({HR: hr_limits(**overrides)}, clock, escalate_after_s=escalate_after_s)


def feed(
    engine: AlarmEngine,
    value: float,
    at: float,
    device: str = DEV,
    bed: str = BED,
    alert: str | None = None,
) -> list[Alarm]:
    """One message carrying a heart rate, stamped with device time ``at``."""
    return engine.evaluate(device, bed, {HR: value}, device_alert=alert, at=at)


def one(changes: list[Alarm]) -> Alarm:
    assert len(changes) == 1, changes
    return changes[0]


def raise_hr(engine: AlarmEngine, value: float = 130, at: float = D0) -> Alarm:
    """Raise a heart-rate alarm (no delay configured) and return its snapshot."""
    alarm = one(feed(engine, value, at))
    assert alarm.state is AlarmState.ACTIVE
    return alarm


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


# -- delay ---------------------------------------------------------------------------------------


def test_delay_condition_shorter_than_delay_raises_nothing(clock: FakeClock) -> None:
    engine = make_engine(clock, delay_s=10)
    # The station clock races ahead (a backlog delivered late): only device time counts.
    for device_offset in (0.0, 3.0, 6.0, 9.9):
        clock.advance(20)
        assert feed(engine, 130, D0 + device_offset) == []
    assert feed(engine, 100, D0 + 10.5) == []
    assert engine.open_alarms() == []


def test_delay_restarts_from_a_device_clock_that_stepped_back(clock: FakeClock) -> None:
    """A clock corrected 4 min back mid-condition must not hold the alarm for 4 min: the delay
    counts again from the new clock."""
    engine = make_engine(clock, delay_s=10)
    assert feed(engine, 130, D0 + 240) == []
    assert feed(engine, 130, D0) == []  # the step: now 240 s "before" the condition began
    assert feed(engine, 130, D0 + 5) == []
    alarm = one(feed(engine, 130, D0 + 10))
    assert alarm.state is AlarmState.ACTIVE
    assert alarm.source_time == D0 + 10


@pytest.mark.parametrize("lasted", [10.0, 12.5], ids=["exactly-delay", "longer-than-delay"])
def test_delay_condition_lasting_delay_raises_with_station_time_and_start_id(
    clock: FakeClock, lasted: float
) -> None:
    engine = make_engine(clock, delay_s=10)
    assert feed(engine, 130, D0) == []
    clock.advance(1)
    assert feed(engine, 131, D0 + lasted / 2) == []
    station_now = clock.advance(lasted / 2)

    alarm = one(feed(engine, 132, D0 + lasted))

    assert alarm.state is AlarmState.ACTIVE
    assert alarm.raised_at == station_now
    assert alarm.at == station_now
    assert alarm.source_time == D0 + lasted
    assert alarm.alarm_id == alarm_id_for(DEV, PHYS, HR, D0)
    assert alarm.message == "HR 132 > 120"
    assert engine.open_alarms() == [alarm]


def test_delay_value_back_inside_before_delay_resets_it(clock: FakeClock) -> None:
    engine = make_engine(clock, delay_s=10)
    assert feed(engine, 130, D0) == []
    assert feed(engine, 100, D0 + 5) == []  # back inside: the pending condition is forgotten
    assert feed(engine, 130, D0 + 6) == []  # a new condition starts here
    assert feed(engine, 130, D0 + 10) == []  # would have raised without the reset

    alarm = one(feed(engine, 130, D0 + 16))

    assert alarm.state is AlarmState.ACTIVE
    assert alarm.alarm_id == alarm_id_for(DEV, PHYS, HR, D0 + 6)


def test_delay_crossing_other_limit_during_pending_delay_restarts_it(clock: FakeClock) -> None:
    engine = make_engine(clock, delay_s=10)
    assert feed(engine, 130, D0) == []  # above 120: pending since D0
    assert feed(engine, 40, D0 + 5) == []  # below 50: a different condition, pending since D0+5
    assert feed(engine, 40, D0 + 10) == []  # 5 s of the new condition is not enough

    alarm = one(feed(engine, 40, D0 + 15))

    assert alarm.message == "HR 40 < 50"
    assert alarm.limit == 50
    assert alarm.alarm_id == alarm_id_for(DEV, PHYS, HR, D0 + 5)


# -- hysteresis ----------------------------------------------------------------------------------

# (out of limits, exactly at the limit, inside by less than hysteresis, inside by ≥ hysteresis)
SIDES = pytest.mark.parametrize(
    ("out", "at_limit", "inside_less", "inside_enough"),
    [(130, 120, 116, 115), (40, 50, 54, 55)],
    ids=["high-limit", "low-limit"],
)


@SIDES
def test_hysteresis_value_back_exactly_at_limit_keeps_alarm(
    clock: FakeClock, out: float, at_limit: float, inside_less: float, inside_enough: float
) -> None:
    engine = make_engine(clock, hysteresis=5)
    alarm = raise_hr(engine, out)
    assert feed(engine, at_limit, D0 + 1) == []
    assert engine.open_alarms() == [alarm]


@SIDES
def test_hysteresis_value_inside_by_less_than_hysteresis_keeps_alarm(
    clock: FakeClock, out: float, at_limit: float, inside_less: float, inside_enough: float
) -> None:
    engine = make_engine(clock, hysteresis=5)
    alarm = raise_hr(engine, out)
    assert feed(engine, inside_less, D0 + 1) == []
    assert engine.open_alarms() == [alarm]


@SIDES
def test_hysteresis_value_inside_by_hysteresis_ends_alarm(
    clock: FakeClock, out: float, at_limit: float, inside_less: float, inside_enough: float
) -> None:
    engine = make_engine(clock, hysteresis=5)
    alarm = raise_hr(engine, out)
    clock.advance(3)

    cleared = one(feed(engine, inside_enough, D0 + 3))

    assert cleared.state is AlarmState.CLEARED
    assert cleared.alarm_id == alarm.alarm_id
    assert cleared.at == clock.now
    assert engine.open_alarms() == []


def test_hysteresis_no_chatter_over_oscillating_sequence(clock: FakeClock) -> None:
    engine = make_engine(clock, hysteresis=5)
    oscillating = [121, 119, 122, 120, 118, 125, 116, 121, 117, 120.5, 119.9, 123]
    events: list[Alarm] = []
    for n, value in enumerate(oscillating):
        clock.advance(1)
        events.extend(feed(engine, value, D0 + n))

    assert [e.state for e in events] == [AlarmState.ACTIVE]
    events.extend(feed(engine, 110, D0 + len(oscillating)))
    assert [e.state for e in events] == [AlarmState.ACTIVE, AlarmState.CLEARED]


# -- latching ------------------------------------------------------------------------------------


def test_latching_active_to_latched_when_value_returns(clock: FakeClock) -> None:
    engine = make_engine(clock, latching=True)
    alarm = raise_hr(engine)
    clock.advance(4)

    latched = one(feed(engine, 100, D0 + 4))

    assert latched.state is AlarmState.LATCHED
    assert latched.condition is False
    assert latched.alarm_id == alarm.alarm_id
    assert latched.at == clock.now
    assert engine.open_alarms() == [latched]


def test_latching_latched_value_staying_normal_gives_no_more_events(clock: FakeClock) -> None:
    engine = make_engine(clock, latching=True)
    raise_hr(engine)
    latched = one(feed(engine, 100, D0 + 1))
    assert feed(engine, 95, D0 + 2) == []
    assert engine.open_alarms() == [latched]


def test_latching_latched_to_cleared_on_acknowledge(clock: FakeClock) -> None:
    engine = make_engine(clock, latching=True)
    alarm = raise_hr(engine)
    one(feed(engine, 100, D0 + 1))
    clock.advance(30)

    cleared = engine.acknowledge(alarm.alarm_id, NURSE)

    assert cleared is not None
    assert cleared.state is AlarmState.CLEARED
    assert cleared.by == NURSE
    assert cleared.acked_at == clock.now
    assert cleared.at == clock.now
    assert engine.open_alarms() == []


def test_latching_latched_to_active_when_condition_returns(clock: FakeClock) -> None:
    engine = make_engine(clock, latching=True)
    alarm = raise_hr(engine)
    one(feed(engine, 100, D0 + 1))
    clock.advance(5)

    again = one(feed(engine, 135, D0 + 5))

    assert again.state is AlarmState.ACTIVE
    assert again.condition is True
    assert again.alarm_id == alarm.alarm_id
    assert again.at == clock.now
    assert engine.open_alarms() == [again]


def test_latching_off_clears_directly_when_value_returns(clock: FakeClock) -> None:
    engine = make_engine(clock, latching=False)
    alarm = raise_hr(engine)

    cleared = one(feed(engine, 100, D0 + 1))

    assert cleared.state is AlarmState.CLEARED
    assert cleared.alarm_id == alarm.alarm_id
    assert cleared.by is None
    assert engine.open_alarms() == []


@pytest.mark.parametrize("latching", [True, False], ids=["latching", "non-latching"])
def test_acknowledged_to_cleared_when_condition_ends_regardless_of_latching(
    clock: FakeClock, latching: bool
) -> None:
    engine = make_engine(clock, latching=latching)
    alarm = raise_hr(engine)
    assert engine.acknowledge(alarm.alarm_id, NURSE) is not None
    clock.advance(10)

    cleared = one(feed(engine, 100, D0 + 10))

    assert cleared.state is AlarmState.CLEARED
    assert cleared.alarm_id == alarm.alarm_id
    assert cleared.by == NURSE
    assert engine.open_alarms() == []


# -- acknowledge ---------------------------------------------------------------------------------


def test_acknowledge_active_by_named_user(clock: FakeClock) -> None:
    engine = make_engine(clock)
    alarm = raise_hr(engine)
    clock.advance(7)

    acked = engine.acknowledge(alarm.alarm_id, NURSE)

    assert acked is not None
    assert acked.state is AlarmState.ACKNOWLEDGED
    assert acked.by == NURSE
    assert acked.acked_at == clock.now
    assert acked.at == clock.now
    assert acked.raised_at == alarm.raised_at
    assert acked.condition is True
    assert engine.open_alarms() == [acked]


def test_acknowledge_escalated(clock: FakeClock) -> None:
    engine = make_engine(clock)
    alarm = raise_hr(engine)
    clock.advance(60)
    assert one(engine.tick()).state is AlarmState.ESCALATED

    acked = engine.acknowledge(alarm.alarm_id, NURSE)

    assert acked is not None
    assert acked.state is AlarmState.ACKNOWLEDGED
    assert acked.by == NURSE
    assert engine.open_alarms() == [acked]


def test_acknowledge_twice_returns_none(clock: FakeClock) -> None:
    engine = make_engine(clock)
    alarm = raise_hr(engine)
    first = engine.acknowledge(alarm.alarm_id, NURSE)
    assert first is not None

    assert engine.acknowledge(alarm.alarm_id, "nurse.ben") is None
    assert engine.open_alarms() == [first]


def test_acknowledge_unknown_id_returns_none(clock: FakeClock) -> None:
    engine = make_engine(clock)
    alarm = raise_hr(engine)
    assert engine.acknowledge("0000000000000000", NURSE) is None
    assert engine.open_alarms() == [alarm]


# -- escalation ----------------------------------------------------------------------------------


def test_escalation_high_unacknowledged_escalates_exactly_once(clock: FakeClock) -> None:
    engine = make_engine(clock, escalate_after_s=60)
    alarm = raise_hr(engine)
    clock.advance(59.9)
    assert engine.tick() == []
    clock.advance(0.1)

    escalated = one(engine.tick())

    assert escalated.state is AlarmState.ESCALATED
    assert escalated.alarm_id == alarm.alarm_id
    assert escalated.raised_at == alarm.raised_at
    assert escalated.at == clock.now
    for _ in range(5):
        clock.advance(30)
        assert engine.tick() == []
    assert engine.open_alarms() == [escalated]


@pytest.mark.parametrize("priority", [Priority.MEDIUM, Priority.LOW], ids=["medium", "low"])
def test_escalation_never_for_medium_or_low(clock: FakeClock, priority: Priority) -> None:
    engine = make_engine(clock, escalate_after_s=60, priority=priority)
    alarm = raise_hr(engine)
    for _ in range(10):
        clock.advance(60)
        assert engine.tick() == []
    assert engine.open_alarms()[0].state is AlarmState.ACTIVE
    assert engine.open_alarms()[0].alarm_id == alarm.alarm_id


def test_escalation_never_for_acknowledged(clock: FakeClock) -> None:
    engine = make_engine(clock, escalate_after_s=60)
    alarm = raise_hr(engine)
    clock.advance(30)
    assert engine.acknowledge(alarm.alarm_id, NURSE) is not None
    for _ in range(10):
        clock.advance(60)
        assert engine.tick() == []
    assert engine.open_alarms()[0].state is AlarmState.ACKNOWLEDGED


# -- deterministic ids and per-bed limits --------------------------------------------------------


def test_two_engines_same_messages_give_same_alarm_id(clock: FakeClock) -> None:
    other_clock = FakeClock(T0 + 3.7)
    here = make_engine(clock, delay_s=5)
    there = make_engine(other_clock, delay_s=5)
    messages = [(D0, 130.0), (D0 + 2, 131.0), (D0 + 5, 133.0)]

    raised_here: list[Alarm] = []
    raised_there: list[Alarm] = []
    for at, value in messages:
        clock.advance(1)
        other_clock.advance(1.3)
        raised_here.extend(feed(here, value, at))
        raised_there.extend(feed(there, value, at))

    a, b = one(raised_here), one(raised_there)
    assert a.raised_at != b.raised_at
    assert a.alarm_id == b.alarm_id == alarm_id_for(DEV, PHYS, HR, D0)
    # ...so an acknowledgement shared through the broker finds the same alarm on both stations.
    assert there.acknowledge(a.alarm_id, NURSE) is not None


def test_set_bed_limits_applies_to_that_bed_only(clock: FakeClock) -> None:
    engine = make_engine(clock)
    engine.set_bed_limits(BED, {HR: hr_limits(high=100)})

    assert engine.limits_for(BED)[HR].high == 100
    assert engine.limits_for(BED2)[HR].high == 120
    assert one(feed(engine, 110, D0, device=DEV, bed=BED)).message == "HR 110 > 100"
    assert feed(engine, 110, D0, device=DEV2, bed=BED2) == []


def test_set_bed_limits_resets_pending_delays_of_that_bed_only(clock: FakeClock) -> None:
    engine = make_engine(clock, delay_s=10)
    assert feed(engine, 130, D0, device=DEV, bed=BED) == []
    assert feed(engine, 130, D0, device=DEV2, bed=BED2) == []

    engine.set_bed_limits(BED, {HR: hr_limits(delay_s=10)})

    assert feed(engine, 130, D0 + 5, device=DEV, bed=BED) == []  # delay restarts at D0+5
    other = one(feed(engine, 130, D0 + 10, device=DEV2, bed=BED2))
    assert other.alarm_id == alarm_id_for(DEV2, PHYS, HR, D0)
    assert feed(engine, 130, D0 + 10, device=DEV, bed=BED) == []
    mine = one(feed(engine, 130, D0 + 15, device=DEV, bed=BED))
    assert mine.alarm_id == alarm_id_for(DEV, PHYS, HR, D0 + 5)


# -- device alert --------------------------------------------------------------------------------


def test_device_alert_without_physiological_alarm_has_disagreement_mark(clock: FakeClock) -> None:
    engine = make_engine(clock)

    alert = one(feed(engine, 80, D0, alert="Asystole"))

    assert alert.kind is AlarmKind.DEVICE
    assert alert.state is AlarmState.ACTIVE
    assert alert.priority is Priority.MEDIUM
    assert alert.message == "Device alert: Asystole" + WITHIN_LIMITS_MARK
    assert alert.alarm_id == alarm_id_for(DEV, AlarmKind.DEVICE, "alert", D0)


def test_device_alert_with_physiological_alarm_has_no_mark(clock: FakeClock) -> None:
    engine = make_engine(clock)

    changes = feed(engine, 130, D0, alert="HR high")

    assert [(c.kind, c.state) for c in changes] == [
        (PHYS, AlarmState.ACTIVE),
        (AlarmKind.DEVICE, AlarmState.ACTIVE),
    ]
    assert changes[1].message == "Device alert: HR high"


def test_device_alert_while_station_condition_pending_has_no_within_limits_mark(
    clock: FakeClock,
) -> None:
    """HR 130 > 120 is waiting out its delay: the values are *not* within limits, so the mark
    that says they are would mislead the nurse."""
    engine = make_engine(clock, delay_s=10)

    alert = one(feed(engine, 130, D0, alert="HR high"))

    assert alert.kind is AlarmKind.DEVICE
    assert WITHIN_LIMITS_MARK not in alert.message


@pytest.mark.parametrize("value", [80, 130], ids=["with-mark", "without-mark"])
def test_device_alert_same_text_again_gives_no_event(clock: FakeClock, value: float) -> None:
    engine = make_engine(clock)
    first = [c for c in feed(engine, value, D0, alert="Lead off") if c.kind is AlarmKind.DEVICE]
    assert len(first) == 1

    assert feed(engine, value, D0 + 1, alert="Lead off") == []
    assert feed(engine, value, D0 + 2, alert="Lead off") == []


def test_device_alert_same_text_after_values_change_gives_no_device_event(clock: FakeClock) -> None:
    """The mark is judged once, at raise: HR returning inside only clears the HR alarm."""
    engine = make_engine(clock)
    hr, alert = feed(engine, 130, D0, alert="Lead off")

    changes = feed(engine, 80, D0 + 1, alert="Lead off")

    assert [(c.kind, c.state) for c in changes] == [(PHYS, AlarmState.CLEARED)]
    assert changes[0].alarm_id == hr.alarm_id
    assert engine.open_alarms() == [alert]


@pytest.mark.parametrize(
    ("old_text", "new_text"),
    [
        ("Lead off", "Asystole"),
        ("Lead off", "Lead off (V1)"),
        ("Lead off (V1)", "Lead off"),
    ],
    ids=["unrelated-text", "new-text-extends-old", "new-text-is-prefix-of-old"],
)
def test_device_alert_different_text_clears_and_raises(
    clock: FakeClock, old_text: str, new_text: str
) -> None:
    engine = make_engine(clock)
    old = one(feed(engine, 80, D0, alert=old_text))
    clock.advance(2)

    changes = feed(engine, 80, D0 + 2, alert=new_text)

    assert [c.state for c in changes] == [AlarmState.CLEARED, AlarmState.ACTIVE]
    assert changes[0].alarm_id == old.alarm_id
    assert changes[1].message.startswith(f"Device alert: {new_text}")
    assert changes[1].alarm_id == alarm_id_for(DEV, AlarmKind.DEVICE, "alert", D0 + 2)
    assert engine.open_alarms() == [changes[1]]


def test_device_alert_gone_clears(clock: FakeClock) -> None:
    engine = make_engine(clock)
    alert = one(feed(engine, 80, D0, alert="Lead off"))

    cleared = one(feed(engine, 80, D0 + 1))

    assert cleared.state is AlarmState.CLEARED
    assert cleared.alarm_id == alert.alarm_id
    assert engine.open_alarms() == []


# -- technical -----------------------------------------------------------------------------------


def test_technical_raise(clock: FakeClock) -> None:
    engine = make_engine(clock)

    alarm = one(engine.technical(DEV, BED, "no_data", True, Priority.MEDIUM, "No data for 10 s"))

    assert alarm.kind is AlarmKind.TECHNICAL
    assert alarm.state is AlarmState.ACTIVE
    assert alarm.message == "No data for 10 s"
    assert alarm.raised_at == clock.now


def test_technical_raise_twice_is_idempotent(clock: FakeClock) -> None:
    engine = make_engine(clock)
    alarm = one(engine.technical(DEV, BED, "no_data", True))
    clock.advance(5)
    assert engine.technical(DEV, BED, "no_data", True) == []
    assert engine.open_alarms() == [alarm]


def test_technical_clear(clock: FakeClock) -> None:
    engine = make_engine(clock)
    alarm = one(engine.technical(DEV, BED, "no_data", True))
    clock.advance(5)

    cleared = one(engine.technical(DEV, BED, "no_data", False))

    assert cleared.state is AlarmState.CLEARED
    assert cleared.alarm_id == alarm.alarm_id
    assert cleared.at == clock.now
    assert engine.open_alarms() == []


def test_technical_clear_twice_is_idempotent(clock: FakeClock) -> None:
    engine = make_engine(clock)
    one(engine.technical(DEV, BED, "no_data", True))
    one(engine.technical(DEV, BED, "no_data", False))
    assert engine.technical(DEV, BED, "no_data", False) == []
    assert engine.open_alarms() == []


def test_hysteresis_holds_during_the_delay_so_a_chattering_value_still_raises() -> None:
    """SpO2 89, 89, 90, 89 … with limit 90, delay 10 s, hysteresis 1: one condition, raised."""
    from station.domain.alarms import AlarmEngine, AlarmLimits, Priority

    now = [1_000.0]
    engine = AlarmEngine(
        {"oxygen": AlarmLimits(low=90, priority=Priority.HIGH, delay_s=10, hysteresis=1)},
        lambda: now[0],
    )
    raised = []
    for i, value in enumerate([89, 89, 90, 89, 90, 89, 89, 90, 89, 89, 89, 89]):
        raised += engine.evaluate("dev", "Bed 1", {"oxygen": value}, at=500.0 + i)
    assert [a.state.value for a in raised] == ["active"]
    # Back inside by the hysteresis (91) before the delay ends resets the condition.
    engine2 = AlarmEngine(
        {"oxygen": AlarmLimits(low=90, priority=Priority.HIGH, delay_s=10, hysteresis=1)},
        lambda: now[0],
    )
    changes = []
    for i, value in enumerate([89, 89, 91, 89, 89, 89, 89, 89, 89, 89, 89]):
        changes += engine2.evaluate("dev", "Bed 1", {"oxygen": value}, at=500.0 + i)
    assert changes == []


def test_a_reactivated_latched_alarm_gets_the_full_escalation_time_again() -> None:
    from station.domain.alarms import AlarmEngine, AlarmLimits, Priority

    now = [1_000.0]
    engine = AlarmEngine(
        {"heartrate": AlarmLimits(high=120, priority=Priority.HIGH, latching=True)},
        lambda: now[0],
        escalate_after_s=60,
    )
    engine.evaluate("dev", "Bed 1", {"heartrate": 150}, at=0.0)
    now[0] += 30
    assert engine.evaluate("dev", "Bed 1", {"heartrate": 80}, at=30.0)[0].state.value == "latched"
    now[0] += 40  # 70 s after the first raise, 40 s after latching
    back = engine.evaluate("dev", "Bed 1", {"heartrate": 150}, at=70.0)
    assert [a.state.value for a in back] == ["active"]
    now[0] += 30  # 100 s after the first raise, 30 s after re-activation: not yet
    assert engine.tick() == []
    now[0] += 31
    assert [a.state.value for a in engine.tick()] == ["escalated"]
