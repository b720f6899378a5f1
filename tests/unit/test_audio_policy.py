"""What the ward hears, and when: :class:`station.domain.audio.AudioPolicy`.

IEC 60601-1-8 behaviour from the module docstring: only the most urgent unacknowledged alarm
sounds, its burst repeated at the priority's interval (high ≤ 10 s); an audio pause silences
everything except a *new* alarm of higher priority than any that sounded when the pause began,
and expires by itself; an acknowledged alarm whose condition lasts is re-sounded once per reminder
interval; an escalated alarm sounds louder. Alarms are built as snapshots directly (plus one run
through the real engine for escalation), the clock is injected, nothing waits.
"""

from __future__ import annotations

import pytest

from station.domain.alarms import Alarm, AlarmEngine, AlarmKind, AlarmLimits, AlarmState, Priority
from station.domain.audio import (
    BASE_VOLUME,
    ESCALATED_VOLUME,
    REPEAT_S,
    AudioPolicy,
    SoundCue,
)
from tests.fakes import FakeClock

T0 = 1_738_411_200.0  # 2025-02-01T12:00:00Z
PAUSE_S = 120.0
REMINDER_S = 180.0
NURSE = "nurse.ana"


def make_alarm(
    alarm_id: str,
    priority: Priority = Priority.HIGH,
    state: AlarmState = AlarmState.ACTIVE,
    raised_at: float = T0,
    acked_at: float | None = None,
    condition: bool = True,
) -> Alarm:
    """A physiological alarm snapshot as the engine would publish it."""
    return Alarm(
        alarm_id=alarm_id,
        device_id="dev-1",
        bed="Bed 1",
        kind=AlarmKind.PHYSIOLOGICAL,
        parameter=f"param-{alarm_id}",
        priority=priority,
        state=state,
        value=130.0,
        limit=120.0,
        message="HR 130 > 120",
        raised_at=raised_at,
        at=acked_at if acked_at is not None else raised_at,
        by=NURSE if acked_at is not None else None,
        condition=condition,
        acked_at=acked_at,
    )


def acked(alarm_id: str, acked_at: float, priority: Priority = Priority.HIGH) -> Alarm:
    return make_alarm(
        alarm_id, priority, AlarmState.ACKNOWLEDGED, raised_at=acked_at - 5, acked_at=acked_at
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def policy(clock: FakeClock) -> AudioPolicy:
    return AudioPolicy(clock, pause_s=PAUSE_S, reminder_s=REMINDER_S)


def cue_for(policy: AudioPolicy, alarms: list[Alarm]) -> SoundCue:
    cue = policy.next_cue(alarms)
    assert cue is not None
    return cue


# -- what sounds ---------------------------------------------------------------------------------


def test_nothing_sounds_without_alarms(policy: AudioPolicy) -> None:
    assert policy.next_cue([]) is None


def test_acknowledged_alarm_does_not_sound_before_reminder(policy: AudioPolicy) -> None:
    assert policy.next_cue([acked("a", T0)]) is None


def test_most_urgent_unacknowledged_alarm_sounds(policy: AudioPolicy) -> None:
    alarms = [
        make_alarm("medium", Priority.MEDIUM),
        acked("high-acked", T0),
        make_alarm("low", Priority.LOW),
        make_alarm("high", Priority.HIGH, raised_at=T0 - 10),
    ]

    cue = cue_for(policy, alarms)

    assert cue == SoundCue(Priority.HIGH, BASE_VOLUME, "alarm", "high")


def test_unacknowledged_medium_sounds_over_acknowledged_high(policy: AudioPolicy) -> None:
    cue = cue_for(policy, [acked("high-acked", T0), make_alarm("medium", Priority.MEDIUM)])
    assert (cue.priority, cue.alarm_id, cue.reason) == (Priority.MEDIUM, "medium", "alarm")


def test_latched_alarm_still_sounds(policy: AudioPolicy) -> None:
    latched = make_alarm("l", Priority.HIGH, AlarmState.LATCHED, condition=False)
    assert cue_for(policy, [latched]).alarm_id == "l"


def test_high_priority_repeat_interval_is_at_most_10_s() -> None:
    assert REPEAT_S[Priority.HIGH] <= 10.0


@pytest.mark.parametrize("priority", list(Priority), ids=[p.value for p in Priority])
def test_burst_repeats_at_priority_interval_and_not_sooner(
    clock: FakeClock, policy: AudioPolicy, priority: Priority
) -> None:
    alarms = [make_alarm("a", priority)]
    interval = REPEAT_S[priority]
    assert cue_for(policy, alarms).priority is priority

    for _ in range(int(interval) - 1):
        clock.advance(1)
        assert policy.next_cue(alarms) is None
    clock.advance(interval - int(interval) + 1 - 0.1)  # 0.1 s short of the interval
    assert policy.next_cue(alarms) is None
    clock.advance(0.1)
    assert cue_for(policy, alarms).priority is priority
    clock.advance(interval)
    assert cue_for(policy, alarms).priority is priority


# -- audio pause ---------------------------------------------------------------------------------


def test_pause_silences(clock: FakeClock, policy: AudioPolicy) -> None:
    alarms = [make_alarm("a", Priority.MEDIUM)]
    cue_for(policy, alarms)
    clock.advance(1)
    policy.pause(alarms)

    for _ in range(int(PAUSE_S) - 2):
        clock.advance(1)
        assert policy.next_cue(alarms) is None


def test_pause_remaining_counts_down_and_expires_by_itself(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    alarms = [make_alarm("a", Priority.MEDIUM)]
    assert policy.pause_remaining() == 0.0
    cue_for(policy, alarms)
    policy.pause(alarms)

    assert policy.pause_remaining() == PAUSE_S
    clock.advance(30)
    assert policy.pause_remaining() == pytest.approx(PAUSE_S - 30)
    clock.advance(PAUSE_S - 30 - 0.5)
    assert policy.pause_remaining() == pytest.approx(0.5)
    assert policy.next_cue(alarms) is None
    clock.advance(0.5)
    assert policy.pause_remaining() == 0.0
    clock.advance(10)
    assert policy.pause_remaining() == 0.0


def test_sound_resumes_when_pause_expires(clock: FakeClock, policy: AudioPolicy) -> None:
    alarms = [make_alarm("a", Priority.MEDIUM)]
    cue_for(policy, alarms)
    policy.pause(alarms)
    clock.advance(PAUSE_S - 0.1)
    assert policy.next_cue(alarms) is None
    clock.advance(0.1)

    assert cue_for(policy, alarms) == SoundCue(Priority.MEDIUM, BASE_VOLUME, "alarm", "a")


@pytest.mark.parametrize(
    ("priority", "raised_offset", "sounds"),
    [
        (Priority.HIGH, +5.0, True),
        (Priority.MEDIUM, +5.0, False),
        (Priority.LOW, +5.0, False),
        (Priority.HIGH, -1.0, False),
    ],
    ids=["new-higher-sounds", "new-equal-silent", "new-lower-silent", "old-higher-silent"],
)
def test_pause_lets_only_new_higher_priority_alarm_through(
    clock: FakeClock, policy: AudioPolicy, priority: Priority, raised_offset: float, sounds: bool
) -> None:
    sounding = make_alarm("was-sounding", Priority.MEDIUM, raised_at=T0 - 30)
    cue_for(policy, [sounding])
    paused_at = clock.advance(1)
    policy.pause([sounding])
    other = make_alarm("other", priority, raised_at=paused_at + raised_offset)
    clock.advance(20)  # past every repeat interval that would matter

    cue = policy.next_cue([sounding, other])

    if sounds:
        assert cue == SoundCue(priority, BASE_VOLUME, "alarm", "other")
    else:
        assert cue is None
    assert policy.pause_remaining() == pytest.approx(PAUSE_S - 20)


def test_pause_keeps_alarm_that_sounded_at_pause_start_silent(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    high = make_alarm("high", Priority.HIGH)
    cue_for(policy, [high])
    policy.pause([high])
    for _ in range(11):
        clock.advance(10)
        assert policy.next_cue([high]) is None


def test_resume_ends_pause(clock: FakeClock, policy: AudioPolicy) -> None:
    alarms = [make_alarm("a", Priority.MEDIUM)]
    cue_for(policy, alarms)
    policy.pause(alarms)
    clock.advance(20)
    assert policy.next_cue(alarms) is None

    policy.resume()

    assert policy.pause_remaining() == 0.0
    assert cue_for(policy, alarms).alarm_id == "a"


# -- reminders -----------------------------------------------------------------------------------


def test_reminder_acknowledged_alarm_resounds_after_reminder_s(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    alarms = [acked("a", T0, Priority.MEDIUM)]
    clock.advance(REMINDER_S - 0.1)
    assert policy.next_cue(alarms) is None
    clock.advance(0.1)

    assert cue_for(policy, alarms) == SoundCue(Priority.MEDIUM, BASE_VOLUME, "reminder", "a")


def test_reminder_once_per_interval(clock: FakeClock, policy: AudioPolicy) -> None:
    alarms = [acked("a", T0)]
    reminders: list[float] = []
    for _ in range(int(3 * REMINDER_S) + 1):  # one call a second for three intervals
        cue = policy.next_cue(alarms)
        if cue is not None:
            assert cue.reason == "reminder"
            reminders.append(clock.now - T0)
        clock.advance(1)

    assert reminders == [REMINDER_S, 2 * REMINDER_S, 3 * REMINDER_S]


def test_reminder_not_for_acknowledged_alarm_whose_condition_ended(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    gone = make_alarm(
        "a", state=AlarmState.ACKNOWLEDGED, acked_at=T0, raised_at=T0 - 5, condition=False
    )
    clock.advance(REMINDER_S + 1)
    assert policy.next_cue([gone]) is None


def test_reminder_not_while_paused(clock: FakeClock, policy: AudioPolicy) -> None:
    alarms = [acked("a", T0)]
    clock.advance(REMINDER_S - 10)
    policy.pause(alarms)
    clock.advance(20)  # the reminder is now due, but the ward asked for quiet
    assert policy.next_cue(alarms) is None

    policy.resume()

    assert cue_for(policy, alarms).reason == "reminder"


# -- escalation ----------------------------------------------------------------------------------


def test_escalated_alarm_sounds_at_escalated_volume(policy: AudioPolicy) -> None:
    escalated = make_alarm("e", Priority.HIGH, AlarmState.ESCALATED)

    cue = cue_for(policy, [escalated])

    assert cue == SoundCue(Priority.HIGH, ESCALATED_VOLUME, "escalated", "e")
    assert ESCALATED_VOLUME > BASE_VOLUME


def test_escalation_from_engine_raises_volume(clock: FakeClock, policy: AudioPolicy) -> None:
    engine = AlarmEngine(
        {"heartrate": AlarmLimits(high=120, priority=Priority.HIGH)},
        clock,
        escalate_after_s=60,
    )
    engine.evaluate("dev-1", "Bed 1", {"heartrate": 130}, at=T0)
    first = cue_for(policy, engine.open_alarms())
    assert (first.volume, first.reason) == (BASE_VOLUME, "alarm")

    clock.advance(60)
    assert [a.state for a in engine.tick()] == [AlarmState.ESCALATED]
    louder = cue_for(policy, engine.open_alarms())

    assert (louder.volume, louder.reason) == (ESCALATED_VOLUME, "escalated")
    assert louder.alarm_id == first.alarm_id


# -- two clocks: monotonic durations, wall alarm times (issue 13) --------------------------------


def test_with_a_monotonic_clock_reminders_and_pauses_still_follow_alarm_times() -> None:
    wall, mono = FakeClock(T0), FakeClock(1000.0)
    policy = AudioPolicy(mono, pause_s=PAUSE_S, reminder_s=REMINDER_S, wall=wall)
    alarms = [acked("a", T0, Priority.MEDIUM)]
    assert policy.next_cue(alarms) is None
    wall.advance(REMINDER_S)
    mono.advance(REMINDER_S)
    assert cue_for(policy, alarms).reason == "reminder"
    # A pause: an alarm raised after it (by the wall clock) of higher priority still sounds,
    # and the pause lasts PAUSE_S by the monotonic clock even if the wall clock steps back.
    policy.pause([make_alarm("low", Priority.LOW, raised_at=wall.now)])
    wall.advance(-3600)
    mono.advance(1)
    high = make_alarm("high", Priority.HIGH, raised_at=T0 + REMINDER_S + 0.5)
    assert cue_for(policy, [high]).priority is Priority.HIGH
    mono.advance(PAUSE_S)
    assert policy.pause_remaining() == 0
