"""A message is acknowledged to the broker only once what the station keeps of it is on disk.

With the historian on, every message's point is in the spool (fsynced) before its PUBACK. With the
historian off there is no spool, and the trend store (written every 250 ms) is the only record the
station keeps: the PUBACK went out up to 250 ms before the sample was committed, and a crash in
between lost a message the broker had been told had arrived. The same held for a bed without
storage consent (no point spooled) and for a spool refusing points. Each test here acknowledges
through a fake of the MQTT worker's ``ack`` that reads the trend store through a connection of its
own, so what it sees is what a restart would find.

Real SQLite files in ``tmp_path``; the core's group commit alone, with a commit timer that never
fires (as on the station, the trend store is then written only by the core's watch period); no
Qt, no network.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from station.config.settings import from_mapping
from station.domain.clock import StationClock
from station.domain.lineprotocol import line
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.group_commit import GroupCommit
from station.services.ingest.record_inbox import Delivery
from station.services.storage.spool import Row, Spool
from station.services.storage.trends import TrendSample, TrendStore
from tests.fakes import FakeClock

T0 = 1_738_411_200.0


class Timer:
    """The core's commit timer, never firing: the test commits when the timer would."""

    def isActive(self) -> bool:
        return True

    def start(self) -> None:
        pass


class Audit:
    fault: str | None = None

    def record(self, action: str, **fields: Any) -> None:
        pass


class Broker:
    """The MQTT worker's ``ack``: what was on disk (an independent reader) at each PUBACK."""

    def __init__(self, trends: Path, spool: Path | None) -> None:
        self._trends, self._spool = trends, spool
        self.acked: list[tuple[int, int, int]] = []  # (mid, samples on disk, points on disk)

    def ack(self, deliveries: list[Delivery]) -> None:
        samples = _count(self._trends, "raw")
        points = _count(self._spool, "points") if self._spool is not None else 0
        self.acked += [(d.mid, samples, points) for d in deliveries]


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def trends(tmp_path: Path, clock: FakeClock) -> Iterator[TrendStore]:
    store = TrendStore(tmp_path / "trends.sqlite", clock=clock)
    store.open()
    yield store
    store.close()


def group_commit(
    tmp_path: Path, clock: FakeClock, trends: TrendStore, spool: Spool | None, broker: Broker
) -> GroupCommit:
    settings = from_mapping({"station": {"data_dir": str(tmp_path / "data")}, "ward": {"beds": 4}})
    state = CoreState.build(settings, StationClock.single(clock), {}, Audit())
    alarms = AlarmChanges(state, None, None, lambda _alarm: None)
    commits = GroupCommit(state, alarms, spool, trends, None, broker.ack, batch=16)
    commits.timer = Timer()
    return commits


def message(n: int, bed: str = "Bed 1") -> tuple[Row, TrendSample, Delivery]:
    """The record path's row, trend sample and delivery of one message (packet id ``n``)."""
    time_ms = round(T0 * 1000) + n * 1000
    text = line("vitals", {"bed": bed, "device": "mon-1"}, {"heartrate": 70.0}, time_ms)
    sample = TrendSample(bed, "mon-1", time_ms, {"heartrate": 70.0})
    return ("mon-1", n, text), sample, Delivery(generation=1, mid=n, qos=1)


def test_without_a_historian_the_ack_follows_the_trend_stores_commit(
    tmp_path: Path, clock: FakeClock, trends: TrendStore
) -> None:
    broker = Broker(trends.path, None)
    commits = group_commit(tmp_path, clock, trends, None, broker)
    for n in range(1, 4):
        row, sample, delivery = message(n)
        commits.stage(row, sample, delivery)  # no spool: the record path's row goes nowhere
    commits.commit()  # the commit timer fires (the watch period has not come yet)
    assert broker.acked == [(1, 3, 0), (2, 3, 0), (3, 3, 0)]  # every sample on disk first


def test_a_rejected_message_alone_waits_for_nothing(
    tmp_path: Path, clock: FakeClock, trends: TrendStore
) -> None:
    broker = Broker(trends.path, None)
    commits = group_commit(tmp_path, clock, trends, None, broker)
    commits.stage(None, None, Delivery(1, 7, 1))  # quarantined: no sample to wait for
    commits.commit()
    assert broker.acked == [(7, 0, 0)]


@pytest.fixture
def spool(tmp_path: Path, clock: FakeClock) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.sqlite", clock=clock)
    s.open()
    yield s
    s.close()


def test_with_the_spool_the_point_is_the_record_and_trends_keep_their_cadence(
    tmp_path: Path, clock: FakeClock, trends: TrendStore, spool: Spool
) -> None:
    broker = Broker(trends.path, spool.path)
    commits = group_commit(tmp_path, clock, trends, spool, broker)
    row, sample, delivery = message(1)
    commits.stage(row, sample, delivery)
    commits.commit()
    assert broker.acked == [(1, 0, 1)]  # spooled (fsynced) first; the sample waits its 250 ms
    commits.flush_trends()  # the core's watch period
    assert _count(trends.path, "raw") == 1


def test_a_bed_without_storage_consent_has_its_sample_on_disk_before_the_ack(
    tmp_path: Path, clock: FakeClock, trends: TrendStore, spool: Spool
) -> None:
    broker = Broker(trends.path, spool.path)
    commits = group_commit(tmp_path, clock, trends, spool, broker)
    row, sample, delivery = message(1)
    commits.stage(row, sample, delivery)
    _, sample, delivery = message(2, bed="Bed 2")
    commits.stage(None, sample, delivery)  # no consent: the sample is all the station keeps
    commits.commit()
    assert broker.acked == [(1, 2, 1), (2, 2, 1)]


def test_a_refusing_spool_has_the_samples_on_disk_before_the_ack(
    tmp_path: Path, clock: FakeClock, trends: TrendStore, spool: Spool
) -> None:
    spool.budget_bytes = 0  # full: the points go to the historian's memory queue
    broker = Broker(trends.path, spool.path)
    commits = group_commit(tmp_path, clock, trends, spool, broker)
    row, sample, delivery = message(1)
    commits.stage(row, sample, delivery)
    commits.commit()
    assert commits.spool_fault is not None
    assert broker.acked == [(1, 1, 0)]
