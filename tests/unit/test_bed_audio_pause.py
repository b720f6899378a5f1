"""One bed's audio pause (issue 15): that bed's alarms are quiet for 1-3 min except a high alarm
raised during the pause; other beds sound as before; the end of the pause is sounded once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from station.domain.alarms import Alarm, AlarmState, Priority
from station.domain.audio import BASE_VOLUME, AudioPolicy, SoundCue
from tests.fakes import FakeClock
from tests.unit.test_audio_policy import PAUSE_S, REMINDER_S, T0, acked, make_alarm


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def policy(clock: FakeClock) -> AudioPolicy:
    return AudioPolicy(clock, pause_s=PAUSE_S, reminder_s=REMINDER_S)


def on_bed(alarm: Alarm, bed: str) -> Alarm:
    return replace(alarm, bed=bed)


def test_a_paused_bed_is_quiet_while_another_bed_sounds(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    bed1 = make_alarm("b1", Priority.HIGH, raised_at=T0 - 5)
    bed2 = on_bed(make_alarm("b2", Priority.MEDIUM, raised_at=T0 - 5), "Bed 2")
    policy.pause_bed("Bed 1", 60)
    assert policy.next_cue([bed1, bed2]) == SoundCue(Priority.MEDIUM, BASE_VOLUME, "alarm", "b2")
    assert policy.bed_pauses() == {"Bed 1": pytest.approx(60)}
    clock.advance(30)
    assert policy.bed_pauses() == {"Bed 1": pytest.approx(30)}


def test_a_new_high_alarm_of_the_paused_bed_still_sounds(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    old = make_alarm("old", Priority.HIGH, raised_at=T0 - 5)
    policy.pause_bed("Bed 1", 120)
    clock.advance(5)
    assert policy.next_cue([old]) is None
    new_medium = make_alarm("m", Priority.MEDIUM, raised_at=T0 + 5)
    assert policy.next_cue([old, new_medium]) is None  # only a high one comes through
    new_high = make_alarm("h", Priority.HIGH, raised_at=T0 + 6)
    clock.advance(1)
    assert policy.next_cue([old, new_medium, new_high]) == SoundCue(
        Priority.HIGH, BASE_VOLUME, "alarm", "h"
    )


def test_the_pause_ends_by_itself_once_reminded_and_the_alarms_sound_again(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    policy.pause_bed("Bed 1", 60)
    clock.advance(59)
    assert policy.next_cue([]) is None
    clock.advance(2)
    assert policy.next_cue([]) == SoundCue(Priority.LOW, BASE_VOLUME, "pause_ended", "Bed 1")
    assert policy.next_cue([]) is None  # once
    assert policy.ended_bed_pauses() == ["Bed 1"]  # the screen's notice, apart from the sound
    assert policy.ended_bed_pauses() == []
    alarm = make_alarm("a", Priority.HIGH, raised_at=T0 - 5)
    assert policy.next_cue([alarm]) == SoundCue(Priority.HIGH, BASE_VOLUME, "alarm", "a")


def test_an_alarm_due_when_the_pause_ends_is_the_reminder(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    alarm = make_alarm("a", Priority.MEDIUM, raised_at=T0 - 5)
    policy.pause_bed("Bed 1", 60)
    assert policy.next_cue([alarm]) is None
    clock.advance(61)
    assert policy.next_cue([alarm]) == SoundCue(Priority.MEDIUM, BASE_VOLUME, "alarm", "a")


def test_resuming_a_bed_ends_its_pause_without_a_reminder(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    policy.pause_bed("Bed 1", 180)
    assert policy.resume_bed("Bed 1")
    assert not policy.resume_bed("Bed 1")
    assert policy.bed_pauses() == {}
    clock.advance(200)
    assert policy.next_cue([]) is None
    assert policy.ended_bed_pauses() == []


def test_no_reminder_for_an_acknowledged_alarm_of_a_paused_bed(
    clock: FakeClock, policy: AudioPolicy
) -> None:
    done = acked("ack", acked_at=T0 - REMINDER_S - 1)
    assert done.state is AlarmState.ACKNOWLEDGED
    policy.pause_bed("Bed 1", 60)
    assert policy.next_cue([done]) is None
    other = on_bed(done, "Bed 2")
    assert policy.next_cue([other]) == SoundCue(Priority.HIGH, BASE_VOLUME, "reminder", "ack")
