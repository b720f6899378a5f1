"""Event capture: a high alarm keeps every sample ± capture_s beyond the raw window; the trend
store answers a short span that old from the capture, and drops captures after their keep."""

from __future__ import annotations

from pathlib import Path

from station.domain.alarms import Alarm, AlarmKind, AlarmState, Priority
from station.services.ingest.event_capture import SETTLE_S, EventCapture
from station.services.storage.trends import MINUTE, RAW, TrendSample, TrendStore
from tests.fakes import FakeClock

T0 = 1_790_000_000.0


def alarm(priority: Priority = Priority.HIGH, kind: AlarmKind = AlarmKind.PHYSIOLOGICAL) -> Alarm:
    return Alarm(
        alarm_id="a1",
        device_id="mon-1",
        bed="Bed 1",
        kind=kind,
        parameter="heartrate",
        priority=priority,
        state=AlarmState.ACTIVE,
        message="HR 170 > 120",
        value=170.0,
        limit=120.0,
        raised_at=T0,
        at=T0,
    )


def store_with_samples(tmp_path: Path, clock: FakeClock) -> TrendStore:
    store = TrendStore(tmp_path / "trends.sqlite", clock=lambda: clock.now, capture_keep_s=86_400)
    store.open()
    store.add(
        [
            TrendSample("Bed 1", "mon-1", int((T0 + s) * 1000), {"heartrate": 100 + s % 50})
            for s in range(-900, 900)
        ]
    )
    return store


def test_a_high_alarm_keeps_every_sample_around_it_after_the_raw_window(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store = store_with_samples(tmp_path, clock)
    capture = EventCapture(store, 300, lambda: clock.now)
    capture.alarm(alarm(Priority.MEDIUM))  # not high: nothing
    capture.alarm(alarm(kind=AlarmKind.TECHNICAL))  # not physiological: nothing
    capture.alarm(alarm())
    clock.now = T0 + 300  # the window is not over yet
    capture.due()
    assert capture.captured == 0
    clock.now = T0 + 300 + SETTLE_S
    capture.due()
    assert capture.captured == 601  # every second from -300 to +300

    clock.now = T0 + 6 * 3600  # raw rows folded into minutes and gone
    while store.compact()[0] or store.behind:
        pass
    assert store.row_counts()[0] == 0
    event = store.query("Bed 1", T0 - 300, T0 + 300)
    assert event.resolution == RAW
    assert event.rows == 601
    assert float(event.mean["heartrate"][300]) == 100.0  # T0 itself, at full resolution
    around = store.query("Bed 1", T0 - 3 * 3600, T0 + 3 * 3600)
    assert around.resolution == MINUTE  # a long span stays in minutes
    outside = store.query("Bed 1", T0 + 600, T0 + 800)
    assert outside.resolution == MINUTE  # nothing captured there: the minutes

    clock.now = T0 + 2 * 86_400  # past the captures' keep
    store.compact()
    assert store.query("Bed 1", T0 - 300, T0 + 300).resolution == MINUTE
    store.close()


def test_a_window_open_at_stop_keeps_what_it_has(tmp_path: Path) -> None:
    clock = FakeClock(T0 + 60)
    store = store_with_samples(tmp_path, clock)
    capture = EventCapture(store, 300, lambda: clock.now)
    capture.alarm(alarm())
    capture.flush()
    assert capture.captured == 601  # the samples to T0 + 300 were already stored here
    capture.flush()
    assert capture.captured == 601
    store.close()


def test_without_a_trend_store_nothing_is_scheduled() -> None:
    capture = EventCapture(None, 300, lambda: T0)
    capture.alarm(alarm())
    capture.flush()
    assert capture.captured == 0
