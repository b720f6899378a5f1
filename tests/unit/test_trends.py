"""Unit tests of the local trend store and its CSV export: raw and minute resolution,
duplicates, compaction, late data, retention, concurrent reads, and the file written.

Real SQLite files in ``tmp_path``; no Qt. The clock is injected, so ages and horizons are exact.
"""

from __future__ import annotations

import csv
import math
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from station.services.storage.trend_csv import CSV_HEADER, without_spans, write_csv
from station.services.storage.trends import (
    KEEP_MARGIN_S,
    MAX_FOLD_MINUTES,
    MINUTE,
    RAW,
    TREND_PARAMS,
    QueryCancelled,
    TrendSample,
    TrendStore,
)
from tests.fakes import FakeClock

T0 = 1_738_411_200.0  # 2025-02-01T12:00:00Z, on a minute boundary
HOUR = 3600.0


def sample(t_s: float, bed: str = "Bed 1", device: str = "dev-1", **values: float) -> TrendSample:
    return TrendSample(bed=bed, device=device, time_ms=round(t_s * 1000), values=values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[TrendStore]:
    store = TrendStore(tmp_path / "trends.sqlite", clock=clock)
    store.open()
    yield store
    store.close()


def test_open_uses_wal_and_normal_sync(store: TrendStore) -> None:
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    # synchronous is per connection: look at the store's own.
    assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_add_then_query_raw(store: TrendStore, clock: FakeClock) -> None:
    start = T0 - 600
    batch = [
        sample(start, heartrate=72, oxygen=97, battery=80),  # battery is not a trend
        sample(start + 1, heartrate=74, temperature=math.nan),  # NaN temperature ignored
        sample(start + 2, heartrate=math.inf, systolic=121, diastolic=79),
        sample(start + 1, bed="Bed 2", heartrate=140),  # another bed
    ]
    assert store.add(batch) == 4

    data = store.query("Bed 1", T0 - HOUR, T0)
    assert data.resolution == RAW
    assert data.rows == 3
    assert not data.is_empty
    assert data.t.tolist() == [start, start + 1, start + 2]
    hr = data.mean["heartrate"]
    assert hr[:2].tolist() == [72.0, 74.0]
    assert math.isnan(hr[2])
    assert data.mean["oxygen"][0] == 97.0
    assert np.isnan(data.mean["oxygen"][1:]).all()
    assert np.isnan(data.mean["temperature"]).all()
    assert data.mean["systolic"][2] == 121.0
    assert data.min["heartrate"] is data.mean["heartrate"] is data.max["heartrate"]
    assert data.count["heartrate"].tolist() == [1, 1, 0]
    assert not data.t.flags.writeable  # immutable: it crosses threads

    other = store.query("Bed 2", T0 - HOUR, T0)
    assert other.mean["heartrate"].tolist() == [140.0]


def test_samples_without_trend_values_or_too_old_are_skipped(
    store: TrendStore, clock: FakeClock
) -> None:
    too_old = T0 - 72 * HOUR - KEEP_MARGIN_S - 1
    assert store.add([sample(T0, battery=50), sample(too_old, heartrate=70)]) == 0
    assert store.add([]) == 0
    assert store.row_counts() == (0, 0)


def test_duplicates_never_count_twice(store: TrendStore, clock: FakeClock) -> None:
    minute = T0 - 5 * HOUR  # older than the raw window once compacted
    batch = [sample(minute + s, heartrate=60 + s, oxygen=95) for s in range(60)]
    assert store.add(batch) == 60
    assert store.add(batch) == 0  # a QoS 1 redelivery: same bed, device and time
    assert store.compact() == (60, 0)
    # Redelivered again after its minute was folded: recognised by the minute's seconds.
    assert store.add(batch) == 0
    assert store.add(batch[:5]) == 0
    assert store.compact() == (0, 0)

    data = store.query("Bed 1", minute, minute + 60)
    assert data.resolution == MINUTE
    assert data.rows == 1
    assert data.count["heartrate"][0] == 60
    assert data.mean["heartrate"][0] == pytest.approx(89.5)
    assert (data.min["heartrate"][0], data.max["heartrate"][0]) == (60.0, 119.0)
    assert data.count["oxygen"][0] == 60


def test_compaction_folds_whole_minutes_into_aggregates(
    store: TrendStore, clock: FakeClock
) -> None:
    first = T0 - HOUR
    for m in range(3):  # three minutes at 1 Hz; oxygen only every other second
        base = first + 60 * m
        store.add(
            [
                sample(base + s, heartrate=100 * m + s, **({"oxygen": 90.0 + m} if s % 2 else {}))
                for s in range(60)
            ]
        )
    store.add([sample(T0 - 10, heartrate=80)])  # still young: stays raw
    # The raw window's edge is now 20 s after the third minute's end.
    clock.now = T0 + 3 * HOUR + 200
    assert store.compact() == (180, 0)
    assert store.row_counts() == (1, 3)

    data = store.query("Bed 1", first, first + 180)
    assert data.resolution == MINUTE
    assert data.t.tolist() == [first, first + 60, first + 120]
    assert data.count["heartrate"].tolist() == [60, 60, 60]
    assert data.mean["heartrate"].tolist() == pytest.approx([29.5, 129.5, 229.5])
    assert data.min["heartrate"].tolist() == [0.0, 100.0, 200.0]
    assert data.max["heartrate"].tolist() == [59.0, 159.0, 259.0]
    assert data.count["oxygen"].tolist() == [30, 30, 30]
    assert data.mean["oxygen"].tolist() == pytest.approx([90.0, 91.0, 92.0])
    assert data.count["systolic"].tolist() == [0, 0, 0]
    assert np.isnan(data.mean["systolic"]).all()
    assert np.isnan(data.min["systolic"]).all()


def test_compaction_leaves_a_minute_still_in_the_raw_window(
    store: TrendStore, clock: FakeClock
) -> None:
    base = T0 - 4 * HOUR  # this minute ends 30 s after the raw window's edge
    store.add([sample(base + s, heartrate=70) for s in range(60)])
    clock.now = T0 + 30
    assert store.compact() == (0, 0)  # whole minutes only: not split across two folds
    clock.now = T0 + 60
    assert store.compact() == (60, 0)


def test_late_data_merges_into_an_existing_minute(store: TrendStore, clock: FakeClock) -> None:
    minute = T0 - 6 * HOUR
    store.add([sample(minute + s, heartrate=60, systolic=110) for s in range(0, 60, 2)])
    assert store.compact() == (30, 0)

    # A device that was out of range delivers the odd seconds 6 h late, with one redelivery.
    late = [sample(minute + s, heartrate=90, systolic=130) for s in range(1, 60, 2)]
    assert store.add([*late, sample(minute + 4, heartrate=60, systolic=110)]) == 30
    before = store.query("Bed 1", minute, minute + 60)  # seamless before the next compaction
    assert before.count["heartrate"].tolist() == [60]
    assert before.mean["heartrate"][0] == pytest.approx(75.0)

    assert store.compact() == (30, 0)
    assert store.row_counts() == (0, 1)
    data = store.query("Bed 1", minute, minute + 60)
    assert data.count["heartrate"].tolist() == [60]
    assert data.mean["heartrate"][0] == pytest.approx(75.0)
    assert (data.min["systolic"][0], data.max["systolic"][0]) == (110.0, 130.0)


def test_data_older_than_the_keep_horizon_is_deleted(store: TrendStore, clock: FakeClock) -> None:
    store.add([sample(T0 - 5 * HOUR + s, heartrate=70) for s in range(120)])  # 2 minutes
    store.add([sample(T0 - 10 * s, heartrate=71) for s in range(1, 4)])  # 3 raw rows
    assert store.compact() == (120, 0)
    assert store.row_counts() == (3, 2)

    # 72 h + the margin later, both are gone; raw rows that old are dropped, not folded.
    clock.now = T0 + 72 * HOUR + KEEP_MARGIN_S + 60
    assert store.compact() == (0, 5)
    assert store.row_counts() == (0, 0)
    assert store.query("Bed 1", clock.now - 80 * HOUR, clock.now).is_empty


def test_72h_query_is_seamless_across_minutes_and_raw(store: TrendStore, clock: FakeClock) -> None:
    """68 h of minutes plus 4 h of raw rows come back as one series of minutes."""
    start = T0 - 72 * HOUR + 60
    batch = []
    for k in range(int((T0 - start) // 20)):  # one sample every 20 s: three per minute
        t = start + 20 * k
        minute_index = int((t - start) // 60)
        batch.append(sample(t, heartrate=50 + minute_index % 100 + (k % 3)))
    store.add(batch)
    first = store.compact()[0]
    assert first == MAX_FOLD_MINUTES * 3  # bounded: ten minutes per call
    assert store.behind
    calls = 1
    while store.behind:
        store.compact()
        calls += 1
    assert calls == math.ceil((68 * 60 - 1) / MAX_FOLD_MINUTES)
    raw_rows, minute_rows = store.row_counts()
    assert raw_rows == 4 * 60 * 3
    assert minute_rows == 68 * 60 - 1

    data = store.query("Bed 1", T0 - 72 * HOUR, T0)
    assert data.resolution == MINUTE
    assert data.rows == 72 * 60 - 1
    assert np.all(np.diff(data.t) == 60.0)  # no gap and no double minute at the 4 h edge
    assert data.t[0] == start
    assert data.t[-1] == T0 - 60
    assert (data.count["heartrate"] == 3).all()
    expected = 50 + np.arange(data.rows) % 100 + 1.0  # mean of +0, +1, +2
    np.testing.assert_allclose(data.mean["heartrate"], expected)
    np.testing.assert_array_equal(data.max["heartrate"], expected + 1)


def test_1h_query_older_than_the_raw_window_uses_minutes(store: TrendStore) -> None:
    data = store.query("Bed 1", T0 - 10 * HOUR, T0 - 9 * HOUR)
    assert data.resolution == MINUTE
    assert data.is_empty


def test_query_does_not_wait_for_an_open_write_transaction(
    store: TrendStore, clock: FakeClock
) -> None:
    store.add([sample(T0 - 5, heartrate=70)])
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # as the core does, and it stays open
    writer.execute(
        "INSERT INTO raw (bed, device, time_ms, heartrate) VALUES ('Bed 1', 'dev-1', ?, 99)",
        (round((T0 - 1) * 1000),),
    )
    results: list[int] = []
    reader = threading.Thread(
        target=lambda: results.append(store.query("Bed 1", T0 - HOUR, T0).rows),
        name="test-reader",
    )
    try:
        reader.start()
        reader.join(5)
        assert not reader.is_alive()
        assert results == [1]  # the last commit, not the open transaction
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.join()


def test_a_cancelled_query_raises(store: TrendStore) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(QueryCancelled):
        store.query("Bed 1", T0 - 72 * HOUR, T0, cancel=cancel)


def test_query_before_the_store_exists_or_after_close(tmp_path: Path, clock: FakeClock) -> None:
    store = TrendStore(tmp_path / "none" / "trends.sqlite", clock=clock)
    assert store.query("Bed 1", T0 - HOUR, T0).is_empty
    store.open()
    store.add([sample(T0 - 1, heartrate=70)])
    store.close()
    assert store.query("Bed 1", T0 - HOUR, T0).rows == 1
    with pytest.raises(RuntimeError, match="not open"):
        store.add([sample(T0, heartrate=70)])


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="raw_keep_s"):
        TrendStore(tmp_path / "t.sqlite", raw_keep_s=80 * HOUR)
    with pytest.raises(ValueError, match="before start"):
        TrendStore(tmp_path / "t.sqlite").query("Bed 1", T0, T0 - 1)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_csv_of_raw_samples(store: TrendStore, tmp_path: Path) -> None:
    store.add(
        [
            sample(T0 - 2.5, heartrate=72, oxygen=97.5, temperature=36.55),
            sample(T0 - 1, heartrate=74, systolic=120, diastolic=80),
        ]
    )
    target = tmp_path / "out.csv"
    assert write_csv(store.query("Bed 1", T0 - HOUR, T0), target) == 2

    rows = read_csv(target)
    assert tuple(rows[0]) == CSV_HEADER
    assert rows[0][:6] == [
        "time_utc",
        "bed",
        "resolution",
        "heartrate_mean",
        "heartrate_min",
        "heartrate_max",
    ]
    assert len(rows[0]) == 3 + 3 * len(TREND_PARAMS)
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["time_utc"] == "2025-02-01T11:59:57.500Z"
    assert (first["bed"], first["resolution"]) == ("Bed 1", "raw")
    assert [first[f"heartrate_{s}"] for s in ("mean", "min", "max")] == ["72", "72", "72"]
    assert first["oxygen_mean"] == "97.5"
    assert first["temperature_max"] == "36.55"
    assert first["systolic_mean"] == first["systolic_min"] == ""  # missing: an empty cell
    second = dict(zip(rows[0], rows[2], strict=True))
    assert (second["systolic_mean"], second["diastolic_max"]) == ("120", "80")
    assert second["temperature_mean"] == ""


def test_csv_of_minutes(store: TrendStore, clock: FakeClock, tmp_path: Path) -> None:
    minute = T0 - 5 * HOUR
    store.add([sample(minute + s, heartrate=s) for s in range(3)])
    store.compact()
    target = tmp_path / "m.csv"
    assert write_csv(store.query("Bed 1", T0 - 8 * HOUR, T0), target) == 1
    header, row = read_csv(target)
    cells = dict(zip(header, row, strict=True))
    assert cells["time_utc"] == "2025-02-01T07:00:00.000Z"
    assert cells["resolution"] == "1 min"
    assert [cells[f"heartrate_{s}"] for s in ("mean", "min", "max")] == ["1", "0", "2"]


@pytest.mark.parametrize("bed", ["=HYPERLINK(1)", "+1", "-1", "@SUM(A1)"])
def test_csv_neutralises_a_formula_in_the_bed_label(
    store: TrendStore, tmp_path: Path, bed: str
) -> None:
    store.add([sample(T0 - 1, bed=bed, heartrate=70)])
    target = tmp_path / "x.csv"
    write_csv(store.query(bed, T0 - HOUR, T0), target)
    assert read_csv(target)[1][1] == "'" + bed


def test_csv_replaces_the_target_atomically(
    store: TrendStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add([sample(T0 - 1, heartrate=70)])
    data = store.query("Bed 1", T0 - HOUR, T0)
    target = tmp_path / "exports" / "t.csv"
    target.parent.mkdir()
    target.write_text("old contents\n", encoding="utf-8")

    def fail(_src: object, _dst: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", fail)
        with pytest.raises(OSError, match="No space"):
            write_csv(data, target)
    assert target.read_text(encoding="utf-8") == "old contents\n"  # never half a file
    assert os.listdir(target.parent) == ["t.csv"]  # and no temporary file left

    assert write_csv(data, target) == 1
    assert len(read_csv(target)) == 2
    assert os.listdir(target.parent) == ["t.csv"]


def test_csv_into_a_missing_folder_raises_oserror(store: TrendStore, tmp_path: Path) -> None:
    data = store.query("Bed 1", T0 - HOUR, T0)
    with pytest.raises(OSError):  # noqa: PT011 - the kind depends on the OS; any OSError
        write_csv(data, tmp_path / "missing" / "t.csv")


def test_export_leaves_out_the_spans_of_a_patient_without_export_consent(
    store: TrendStore, tmp_path: Path
) -> None:
    store.add([sample(T0 - 30 + i * 10, heartrate=70 + i) for i in range(3)])
    data = store.query("Bed 1", T0 - HOUR, T0)
    kept, left_out = without_spans(data, [(T0 - 25, T0 - 15)])  # the middle sample's stay
    assert left_out == 1
    assert kept.mean["heartrate"].tolist() == [70, 72]
    assert kept.count["heartrate"].tolist() == [1, 1]
    assert without_spans(data, []) == (data, 0)
    assert write_csv(kept, tmp_path / "out.csv") == 2
