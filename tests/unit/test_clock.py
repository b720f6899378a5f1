"""The station clock: a wall clock that steps is seen, and judged kindly for data ages."""

from __future__ import annotations

from station.domain.clock import StationClock


class Fake:
    def __init__(self, wall: float, mono: float) -> None:
        self.wall, self.mono = wall, mono


def _clock(fake: Fake) -> StationClock:
    return StationClock(lambda: fake.wall, lambda: fake.mono)


def test_no_step_while_both_clocks_advance_together() -> None:
    fake = Fake(1_000_000.0, 50.0)
    clock = _clock(fake)
    fake.wall += 30
    fake.mono += 30
    assert clock.step() == 0
    assert clock.now() == fake.wall


def test_a_backward_step_is_seen_and_now_stays_the_later_reading() -> None:
    fake = Fake(1_000_000.0, 50.0)
    clock = _clock(fake)
    fake.wall -= 3600
    fake.mono += 1
    assert clock.step() == -3601
    assert clock.now() == 1_000_001.0  # the steady reading: devices are not "from the future"


def test_a_forward_step_does_not_make_live_data_old() -> None:
    fake = Fake(1_000_000.0, 50.0)
    clock = _clock(fake)
    fake.wall += 120
    device_time = 1_000_000.0  # a device with a correct clock, sending now
    assert clock.lag(clock.now(), device_time) == 0
    # A replay two hours old is old by both readings.
    assert clock.lag(clock.now(), device_time - 7200) == 7200


def test_single_clock_never_steps() -> None:
    t = [5.0]
    clock = StationClock.single(lambda: t[0])
    t[0] += 100
    assert clock.step() == 0
    assert clock.monotonic() == 105.0
