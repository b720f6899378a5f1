"""The emergency acknowledge's rule (no login, a reason): a patient's alarm only, and at most
three in ten minutes at a station, on the monotonic clock the caller passes."""

from __future__ import annotations

from station.domain.alarms import AlarmKind
from station.domain.roles import EMERGENCY_LIMIT, EMERGENCY_WINDOW_S, EmergencyAcks
from tests.fakes import FakeClock


def test_only_a_physiological_alarm_may_be_acknowledged_without_a_login() -> None:
    rule = EmergencyAcks()
    assert rule.refusal(AlarmKind.PHYSIOLOGICAL, 0.0) == ""
    assert "only an alarm of a patient" in rule.refusal(AlarmKind.TECHNICAL, 0.0)
    assert rule.refusal(AlarmKind.DEVICE, 0.0) != ""


def test_at_most_three_in_ten_minutes_then_a_login() -> None:
    clock = FakeClock(5000.0)
    rule = EmergencyAcks()
    assert (EMERGENCY_LIMIT, EMERGENCY_WINDOW_S) == (3, 600.0)
    for _ in range(3):
        assert rule.refusal(AlarmKind.PHYSIOLOGICAL, clock()) == ""
        rule.taken(clock())
        clock.now += 60
    refused = rule.refusal(AlarmKind.PHYSIOLOGICAL, clock())
    assert "3 emergency acknowledges in the last 10 min" in refused
    assert "log in" in refused
    clock.now = 5000.0 + 599
    assert rule.refusal(AlarmKind.PHYSIOLOGICAL, clock()) != ""
    clock.now = 5000.0 + 600  # the first one has left the window
    assert rule.refusal(AlarmKind.PHYSIOLOGICAL, clock()) == ""


def test_an_unknown_kind_is_held_to_the_limit_only() -> None:
    rule = EmergencyAcks(limit=1)
    assert rule.refusal(None, 0.0) == ""
    rule.taken(0.0)
    assert rule.refusal(None, 1.0) != ""
