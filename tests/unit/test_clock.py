"""The station clock: a wall clock that steps is seen, and judged kindly for data ages."""

from __future__ import annotations

from station.domain.clock import StationClock
from tests.fakes import FakeClock


def test_no_step_while_both_clocks_advance_together() -> None:
    wall, mono = FakeClock(1_000_000.0), FakeClock(50.0)
    clock = StationClock(wall, mono)
    wall.advance(30)
    mono.advance(30)
    assert clock.step() == 0
    assert clock.now() == wall.now


def test_a_backward_step_is_seen_and_now_stays_the_later_reading() -> None:
    wall, mono = FakeClock(1_000_000.0), FakeClock(50.0)
    clock = StationClock(wall, mono)
    wall.advance(-3600)
    mono.advance(1)
    assert clock.step() == -3601
    assert clock.now() == 1_000_001.0  # the steady reading: devices are not "from the future"


def test_a_forward_step_does_not_make_live_data_old() -> None:
    wall, mono = FakeClock(1_000_000.0), FakeClock(50.0)
    clock = StationClock(wall, mono)
    wall.advance(120)
    device_time = 1_000_000.0  # a device with a correct clock, sending now
    assert clock.lag(clock.now(), device_time) == 0
    # A replay two hours old is old by both readings.
    assert clock.lag(clock.now(), device_time - 7200) == 7200


def test_single_clock_never_steps() -> None:
    only = FakeClock(5.0)
    clock = StationClock.single(only)
    only.advance(100)
    assert clock.step() == 0
    assert clock.monotonic() == 105.0
