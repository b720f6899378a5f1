"""pytest-qt tests of the trend view: 72 h from the local store alone, 1 h raw, no data, export.

The view gets a real :class:`TrendStore` filled with 72 h of one bed (1 Hz for the last 4 h, one
sample per 10 s before, compacted into minutes) and nothing else: no historian exists here. The
only stand-ins are for the modal boxes, which would block an offscreen run.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from station.services.storage.trends import MINUTE, RAW, TrendData, TrendSample, TrendStore
from station.ui.trend_view import NO_DATA, THREAD_NAME, TrendView

NOW = 1_738_411_200.0  # 2025-02-01T12:00:00Z
HOUR = 3600.0
FIRST = NOW - 72 * HOUR + 60  # the oldest sample stored


def heartrate(t: float) -> float:
    """A slow sawtooth plus a per-second wiggle: every minute's mean and extremes differ."""
    return 60.0 + (t // 60) % 50 + (t % 60) / 10


def spo2(t: float) -> float:
    return 90.0 + (t // 3600) % 8


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bed, 72 h: written once for the module (about 40 000 samples)."""
    path = tmp_path_factory.mktemp("trends") / "trends.sqlite"
    store = TrendStore(path, clock=lambda: NOW)
    store.open()
    times = np.concatenate(
        [np.arange(FIRST, NOW - 4 * HOUR, 10.0), np.arange(NOW - 4 * HOUR, NOW, 1.0)]
    )
    batch = [
        TrendSample(
            "Bed 3", "dev-3", round(t * 1000), {"heartrate": heartrate(t), "oxygen": spo2(t)}
        )
        for t in times.tolist()
    ]
    for i in range(0, len(batch), 5000):
        store.add(batch[i : i + 5000])
    store.compact()
    while store.behind:
        store.compact()
    store.close()
    return path


@pytest.fixture
def store(store_file: Path) -> Iterator[TrendStore]:
    store = TrendStore(store_file, clock=lambda: NOW)
    store.open()
    yield store
    store.close()


@pytest.fixture
def view(qtbot: QtBot, store: TrendStore) -> Iterator[TrendView]:
    view = TrendView(store, "Bed 3", "Bed 3", clock=lambda: NOW)
    qtbot.addWidget(view)
    yield view
    view.close()
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]


def load(qtbot: QtBot, view: TrendView, hours: int) -> TrendData:
    with qtbot.waitSignal(view.loaded, timeout=5000) as blocker:
        view.show_range(hours)
    data = blocker.args[0]
    assert isinstance(data, TrendData)
    return data


def test_72h_comes_from_the_local_store(qtbot: QtBot, view: TrendView) -> None:
    data = load(qtbot, view, 72)

    assert view.range_group.checkedId() == 72
    assert data.resolution == MINUTE
    t, hr = view.plotted("heartrate")
    assert abs(t[0] - (NOW - 72 * HOUR)) <= 120  # the first point within minutes of now - 72 h
    assert NOW - t[-1] <= 60  # the last within a minute of now
    assert view.plotted_span_s("heartrate") >= 72 * HOUR - 180
    assert view.plotted_span_s("oxygen") >= 72 * HOUR - 180
    assert len(t) == 72 * 60 - 1  # every minute, no gap at the 4 h edge

    # Values as stored: a compacted minute (6 samples), and a minute aggregated from raw rows.
    for minute in (NOW - 50 * HOUR, NOW - 2 * HOUR):
        i = int(np.searchsorted(t, minute))
        step = 10.0 if minute < NOW - 4 * HOUR else 1.0
        stored = [heartrate(minute + s) for s in np.arange(0.0, 60.0, step)]
        assert t[i] == minute
        assert hr[i] == pytest.approx(np.mean(stored))
        assert data.min["heartrate"][i] == min(stored)
        assert data.max["heartrate"][i] == max(stored)
    band = view.bands["heartrate"]
    assert band.isVisible()
    drawn = band.path().boundingRect()  # the min–max band spans the whole 72 h too
    assert (drawn.left(), drawn.right()) == (t[0], t[-1])
    assert drawn.top() == data.min["heartrate"].min()
    assert drawn.bottom() == data.max["heartrate"].max()
    assert "72 h" in view.status.text()
    assert "local store" in view.status.text()
    assert f"{len(t):,} points" in view.status.text()


def test_default_is_8h_and_1h_is_raw(qtbot: QtBot, view: TrendView) -> None:
    qtbot.waitUntil(lambda: view.data is not None, timeout=5000)
    assert view.selected_hours() == 8
    assert view.data is not None
    assert view.data.resolution == MINUTE
    assert view.data.rows == 8 * 60

    data = load(qtbot, view, 1)
    assert data.resolution == RAW
    t, hr = view.plotted("heartrate")
    assert len(t) == 3600
    assert t[-1] == NOW - 1
    assert hr[-1] == heartrate(NOW - 1)
    assert not view.bands["heartrate"].isVisible()
    assert "every sample" in view.status.text()


def join_query_threads() -> None:
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            thread.join(5)


def test_a_result_for_a_range_no_longer_selected_is_dropped(qtbot: QtBot, view: TrendView) -> None:
    seen: list[TrendData] = []
    view.loaded.connect(seen.append)
    view.show_range(72)
    # The 8 h and 72 h results are now queued, not yet delivered: the GUI thread is busy here.
    join_query_threads()
    data = load(qtbot, view, 1)
    join_query_threads()
    qtbot.wait(50)
    assert [d.resolution for d in seen] == [RAW]
    assert seen[0] is data
    assert view.plotted_span_s("heartrate") < HOUR


def test_a_bed_without_data_says_so(qtbot: QtBot, store: TrendStore) -> None:
    view = TrendView(store, "Bed 9", "Bed 9", clock=lambda: NOW)
    qtbot.addWidget(view)
    try:
        data = load(qtbot, view, 24)
        assert data.is_empty
        assert NO_DATA in view.status.text()
        assert view.plotted_span_s("heartrate") == 0.0
    finally:
        view.close()


def test_export_writes_the_rows_shown(qtbot: QtBot, view: TrendView, tmp_path: Path) -> None:
    data = load(qtbot, view, 1)
    target = tmp_path / "bed3.csv"
    with qtbot.waitSignal(view.exported) as blocker:
        rows = view.export_to(target)

    assert rows == data.rows == 3600
    assert blocker.args == ["Bed 3", str(target), 3600]
    with target.open(newline="", encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 3600
    assert lines[-1]["time_utc"] == "2025-02-01T11:59:59.000Z"
    assert lines[-1]["resolution"] == "raw"
    assert float(lines[-1]["heartrate_mean"]) == pytest.approx(heartrate(NOW - 1))
    assert lines[-1]["systolic_mean"] == ""


def test_export_failure_is_shown_not_raised(qtbot: QtBot, view: TrendView, tmp_path: Path) -> None:
    load(qtbot, view, 8)
    exported: list[object] = []
    view.exported.connect(lambda *args: exported.append(args))
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")  # a path under a file: unwritable, even for root

    assert view.export_to(blocker / "trend.csv") == 0
    assert view.export_status.text().startswith("Export failed: could not write")
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]
    assert exported == []


def test_closing_stops_a_running_query(qtbot: QtBot, store: TrendStore) -> None:
    view = TrendView(store, "Bed 3", "Bed 3", clock=lambda: NOW)
    qtbot.addWidget(view)
    view.show_range(72)
    view.close()
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_gaps_break_the_line_and_sparse_readings_get_markers(qtbot: QtBot, tmp_path: Path) -> None:
    store = TrendStore(tmp_path / "t.sqlite", clock=lambda: NOW)
    store.open()
    seconds = [s for s in range(3600) if not 1200 <= s < 1500]  # a 5 min dropout
    batch = [
        TrendSample("Bed 5", "dev-5", round((NOW - 3600 + s) * 1000), {"heartrate": 70.0})
        for s in seconds
    ]
    batch += [  # a cuff measurement every 15 min
        TrendSample(
            "Bed 5",
            "dev-5",
            round((NOW - 3600 + s + 0.5) * 1000),
            {"systolic": 120.0, "diastolic": 80.0},
        )
        for s in range(0, 3600, 900)
    ]
    store.add(batch)
    view = TrendView(store, "Bed 5", "Bed 5", clock=lambda: NOW)
    qtbot.addWidget(view)
    try:
        load(qtbot, view, 1)
        hr = view.curves["heartrate"]
        assert np.flatnonzero(~hr.opts["connect"]).tolist() == [1199, len(seconds) - 1]
        assert hr.opts["symbol"] is None
        sys_curve = view.curves["systolic"]
        assert len(view.plotted("systolic")[0]) == 4
        assert sys_curve.opts["symbol"] == "o"
        assert sys_curve.opts["connect"].tolist() == [True, True, True, False]

        load(qtbot, view, 8)  # minutes: the dropout is a gap there too
        assert (~view.curves["heartrate"].opts["connect"]).sum() == 2
    finally:
        view.close()
        store.close()


def test_an_unreadable_store_is_reported(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "trends.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    view = TrendView(TrendStore(path, clock=lambda: NOW), "Bed 1", "Bed 1", clock=lambda: NOW)
    qtbot.addWidget(view)
    try:
        with qtbot.waitSignal(view.load_failed, timeout=5000) as blocker:
            view.show_range(24)
        assert "Could not read" in blocker.args[0]
        assert "Could not read" in view.status.text()
        assert view.data is None
    finally:
        view.close()
