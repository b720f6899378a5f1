"""Technical watches of :mod:`station.domain.watch`: no data, and persistent invalid data.

"No data" fires after three expected periods of the device and never sooner than the configured
minimum (10 s here): a 1 Hz monitor is silent after 10 s, a wearable sending every 30 s after
90 s; the period is learnt from the device's own arrivals. Each silence is reported once, an
arrival after it is a recovery, and a pinned device that never speaks still times out. Time is
an injected clock passed as ``now``; nothing waits.
"""

from __future__ import annotations

import pytest

from station.domain.watch import DeviceWatch, InvalidDataWatch
from tests.fakes import FakeClock

T0 = 1_738_411_200.0  # 2025-02-01T12:00:00Z
MINIMUM_S = 10.0
DEV, DEV2 = "monitor-1", "wearable-1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def watch() -> DeviceWatch:
    return DeviceWatch(MINIMUM_S)


def arrive_every(watch: DeviceWatch, clock: FakeClock, device: str, period: float, n: int) -> float:
    """``n`` arrivals, ``period`` apart, the first now; returns the time of the last one."""
    for i in range(n):
        if i:
            clock.advance(period)
        assert watch.seen(device, clock.now) is False
    return clock.now


# -- DeviceWatch ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("silence", "expected"),
    [(9.9, []), (10.1, [DEV])],
    ids=["9.9s-not-yet", "10.1s-no-data"],
)
def test_no_data_after_minimum_for_1hz_device(
    clock: FakeClock, watch: DeviceWatch, silence: float, expected: list[str]
) -> None:
    last = arrive_every(watch, clock, DEV, 1.0, 30)
    assert watch.timeout(DEV) == MINIMUM_S

    assert watch.newly_silent(last + silence) == expected


def test_no_data_for_1hz_device_within_11_s(clock: FakeClock, watch: DeviceWatch) -> None:
    last = arrive_every(watch, clock, DEV, 1.0, 30)
    reported_at = None
    for tenth in range(1, 111):
        if watch.newly_silent(last + tenth / 10):
            reported_at = tenth / 10
            break
    assert reported_at is not None
    assert MINIMUM_S < reported_at <= 11.0


def test_slow_device_times_out_after_three_learned_periods(
    clock: FakeClock, watch: DeviceWatch
) -> None:
    last = arrive_every(watch, clock, DEV2, 30.0, 4)
    assert watch.timeout(DEV2) == pytest.approx(90.0)

    assert watch.newly_silent(last + 10.1) == []
    assert watch.newly_silent(last + 89.9) == []
    assert watch.newly_silent(last + 90.1) == [DEV2]


def test_devices_time_out_independently(clock: FakeClock, watch: DeviceWatch) -> None:
    watch.seen(DEV2, clock.now - 60)
    watch.seen(DEV2, clock.now - 30)
    last = arrive_every(watch, clock, DEV, 1.0, 5)
    assert watch.newly_silent(last + 10.1) == [DEV]
    assert watch.newly_silent(last + 90.1) == [DEV2]


def test_each_silence_reported_once(clock: FakeClock, watch: DeviceWatch) -> None:
    last = arrive_every(watch, clock, DEV, 1.0, 10)
    assert watch.newly_silent(last + 10.1) == [DEV]
    for extra in (11.0, 30.0, 300.0, 3_600.0):
        assert watch.newly_silent(last + extra) == []


def test_seen_after_silence_reports_recovery(clock: FakeClock, watch: DeviceWatch) -> None:
    last = arrive_every(watch, clock, DEV, 1.0, 10)
    assert watch.newly_silent(last + 10.1) == [DEV]

    assert watch.seen(DEV, last + 45.0) is True
    assert watch.seen(DEV, last + 46.0) is False


def test_recovery_restarts_the_watch(clock: FakeClock, watch: DeviceWatch) -> None:
    last = arrive_every(watch, clock, DEV, 1.0, 10)
    assert watch.newly_silent(last + 10.1) == [DEV]
    back = last + 45.0
    assert watch.seen(DEV, back) is True

    assert watch.newly_silent(back + 9.9) == []
    assert watch.newly_silent(back + 10.1) == [DEV]  # a new silence, reported again


def test_gap_of_a_silence_is_not_learned_as_period(clock: FakeClock, watch: DeviceWatch) -> None:
    last = arrive_every(watch, clock, DEV, 1.0, 10)
    assert watch.newly_silent(last + 10.1) == [DEV]
    assert watch.seen(DEV, last + 600.0) is True
    assert watch.timeout(DEV) == MINIMUM_S


def test_device_seen_once_times_out_after_minimum(clock: FakeClock, watch: DeviceWatch) -> None:
    watch.seen(DEV, clock.now)
    assert watch.timeout(DEV) == MINIMUM_S
    assert watch.newly_silent(clock.now + 9.9) == []
    assert watch.newly_silent(clock.now + 10.1) == [DEV]


def test_expect_makes_pinned_device_time_out_even_if_it_never_sent(
    clock: FakeClock, watch: DeviceWatch
) -> None:
    started = clock.now
    watch.expect(DEV, started)

    assert watch.newly_silent(started + 9.9) == []
    assert watch.newly_silent(started + 10.1) == [DEV]
    assert watch.seen(DEV, started + 20.0) is True  # its first message is a recovery


def test_expect_does_not_reset_a_device_already_seen(clock: FakeClock, watch: DeviceWatch) -> None:
    seen_at = clock.now
    watch.seen(DEV, seen_at)
    watch.expect(DEV, seen_at + 5.0)
    assert watch.newly_silent(seen_at + 10.1) == [DEV]


def test_expect_is_not_an_arrival_so_no_period_is_learnt_from_it(
    clock: FakeClock, watch: DeviceWatch
) -> None:
    """The period is learnt from the device's own arrivals: the station's start time (expect)
    followed by a first message 9 s later must not teach a 9 s period to a 1 Hz monitor."""
    started = clock.now
    watch.expect(DEV, started)
    assert watch.seen(DEV, started + 9.0) is False
    assert watch.seen(DEV, started + 10.0) is False  # now a 1 Hz device

    assert watch.timeout(DEV) == MINIMUM_S
    assert watch.newly_silent(started + 10.0 + 10.1) == [DEV]


# -- InvalidDataWatch ----------------------------------------------------------------------------


def test_invalid_below_threshold_never_flags(clock: FakeClock) -> None:
    invalid = InvalidDataWatch(threshold=5, window_s=60.0)
    for _ in range(4):
        assert invalid.rejected(DEV, clock.now) is False
        clock.advance(1)
    assert invalid.count(DEV) == 4


def test_invalid_threshold_within_window_flags_once(clock: FakeClock) -> None:
    invalid = InvalidDataWatch(threshold=5, window_s=60.0)
    verdicts = []
    for _ in range(12):
        verdicts.append(invalid.rejected(DEV, clock.now))
        clock.advance(2)

    assert verdicts == [False] * 4 + [True] + [False] * 7
    assert invalid.count(DEV) == 12


def test_invalid_spread_beyond_window_never_flags(clock: FakeClock) -> None:
    invalid = InvalidDataWatch(threshold=5, window_s=60.0)
    for _ in range(20):
        assert invalid.rejected(DEV, clock.now) is False
        clock.advance(20)  # at most 4 within any 60 s
    assert invalid.count(DEV) <= 4


def test_invalid_devices_counted_separately(clock: FakeClock) -> None:
    invalid = InvalidDataWatch(threshold=3, window_s=60.0)
    assert [invalid.rejected(DEV, clock.now) for _ in range(2)] == [False, False]
    assert [invalid.rejected(DEV2, clock.now) for _ in range(2)] == [False, False]
    assert invalid.rejected(DEV, clock.now) is True
    assert invalid.count(DEV2) == 2


def test_invalid_recovery_after_a_quiet_window(clock: FakeClock) -> None:
    invalid = InvalidDataWatch(threshold=3, window_s=60.0)
    for _ in range(3):
        invalid.rejected(DEV, clock.now)
    last = clock.now

    assert invalid.recovered(last + 30.0) == []
    assert invalid.recovered(last + 60.0) == []  # a whole window has not yet passed
    assert invalid.recovered(last + 60.1) == [DEV]
    assert invalid.recovered(last + 120.0) == []  # recovery reported once


def test_invalid_rejection_during_window_postpones_recovery(clock: FakeClock) -> None:
    invalid = InvalidDataWatch(threshold=3, window_s=60.0)
    for _ in range(3):
        invalid.rejected(DEV, clock.now)
    late = clock.advance(50.0)
    assert invalid.rejected(DEV, late) is False  # still flagged: no second report

    assert invalid.recovered(late + 30.0) == []
    assert invalid.recovered(late + 60.1) == [DEV]


def test_invalid_flags_again_after_recovery(clock: FakeClock) -> None:
    invalid = InvalidDataWatch(threshold=3, window_s=60.0)
    for _ in range(3):
        invalid.rejected(DEV, clock.now)
    later = clock.advance(61.0)
    assert invalid.recovered(later) == [DEV]

    assert [invalid.rejected(DEV, later + i) for i in range(3)] == [False, False, True]
