"""From the station's real alarm and trend stores (SQLite files written as the core writes them)
to the HL7 outbox: history before the first start stays unsent, each alarm change is queued
once, across restarts and a failed write too; periods are summarised once after they settle;
a full outbox holds observations back while alarms use their reserve; what the raw samples no
longer hold is skipped and audited; samples that come after their period was summarised are
counted and audited; a pass stops between periods when the owner stops."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from station.domain.alarm_history import AlarmEpisode
from station.domain.alarms import AlarmKind, Priority
from station.domain.hl7.codes import AlarmEvent
from station.domain.hl7.content import AlarmReport, DeviceValues, Metric, ObservationReport
from station.domain.hl7.subjects import Subject, Subjects
from station.domain.patients.records import Stay
from station.services.hospital import hl7_collector
from station.services.hospital.hl7_collector import Collector
from station.services.hospital.hl7_outbox import OUTBOX_FILE, Outbox
from station.services.hospital.hl7_sources import SourceError, Sources
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.trends import TrendSample, TrendStore
from tests.fakes import FakeClock

PERIOD = 60.0
T0 = 1_790_000_080.0  # 40 s into a period
assert T0 % PERIOD == 40
STATION = "ward-1"


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.fault: str | None = None

    def record(self, action: str, **fields: Any) -> None:
        self.records.append((action, fields))


def _episode(alarm_id: str, bed: str = "Bed 1", **changes: Any) -> AlarmEpisode:
    base = AlarmEpisode(alarm_id, bed, "mon-1", AlarmKind.PHYSIOLOGICAL, "heartrate",
                        Priority.HIGH, "HR 150 > 120", T0 - 5)  # fmt: skip
    return replace(base, **changes)


class Ward:
    """The station's stores and the interface's outbox in one data folder."""

    def __init__(self, folder: Path, wall: FakeClock) -> None:
        self.folder = folder
        self.wall = wall
        self.alarms = AlarmStore(folder / "alarms.sqlite", clock=wall)
        self.alarms.open()
        self.trends = TrendStore(folder / "trends.sqlite", clock=wall)
        self.trends.open()
        self.audit = Audit()
        self.outbox: Outbox | None = None

    def collector(
        self, mode: str = "summary", budget: int = 1000, stopping: Any = lambda: False
    ) -> Collector:
        """A collector as a (re)started station builds it: fresh connections, same files."""
        if self.outbox is not None:
            self.outbox.close()
        self.outbox = Outbox(self.folder / OUTBOX_FILE)
        self.outbox.open()
        sources = Sources(self.alarms.path, self.trends.path)
        collector = Collector(self.outbox, sources, station_id=STATION, mode=mode,
                              period_s=PERIOD, budget=budget, wall=self.wall,
                              audit=self.audit, stopping=stopping)  # fmt: skip
        stay = Stay("Bed 1", T0 - 3600, None)
        collector.subjects = Subjects((Subject("p1", (stay,), True, False),))
        return collector

    def queued(self) -> list[tuple[str, str, str]]:
        """(kind, bed, what) of every queued row, in queue order."""
        assert self.outbox is not None
        conn = sqlite3.connect(self.outbox.path)
        try:
            rows = conn.execute("SELECT kind, bed, body FROM messages ORDER BY id").fetchall()
        finally:
            conn.close()
        return [(k, b, body.split('"event":"')[1].split('"')[0] if k == "R40" else "period")
                for k, b, body in rows]  # fmt: skip

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
        self.alarms.close()
        self.trends.close()


@pytest.fixture
def ward(tmp_path: Path) -> Any:
    w = Ward(tmp_path, FakeClock(T0))
    yield w
    w.close()


def test_history_stays_home_and_each_alarm_change_is_queued_once(ward: Ward) -> None:
    ward.alarms.save([_episode("old")])  # before the interface was switched on
    collector = ward.collector(mode="off")
    assert collector.collect().alarms == 0
    ward.alarms.save([_episode("new"), _episode("own", bed="")])  # "own": the station's alarm
    assert collector.collect().alarms == 1
    assert collector.collect().alarms == 0
    ward.alarms.save([_episode("old", cleared_at=T0)])  # history: its clear stays home too
    ward.alarms.save([_episode("new", escalated_at=T0 + 1, acknowledged_at=T0 + 2,
                               acknowledged_by="ann")])  # fmt: skip
    assert collector.collect().alarms == 2
    collector = ward.collector(mode="off")  # a restart: new connections, the same files
    assert collector.collect().alarms == 0
    ward.alarms.save([_episode("new", escalated_at=T0 + 1, acknowledged_at=T0 + 2,
                               acknowledged_by="ann", cleared_at=T0 + 3)])  # fmt: skip
    assert collector.collect().alarms == 1
    assert ward.queued() == [
        ("R40", "Bed 1", "raise"),
        ("R40", "Bed 1", "escalate"),
        ("R40", "Bed 1", "acknowledge"),
        ("R40", "Bed 1", "clear"),
    ]
    assert ward.outbox is not None
    assert ward.outbox.open_alarms() == {}  # cleared: no longer watched


def test_a_failed_write_loses_and_doubles_nothing(
    ward: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = ward.collector(mode="off")
    collector.collect()
    ward.alarms.save([_episode("a"), _episode("b", bed="Bed 2")])
    outbox = ward.outbox
    assert outbox is not None
    real = outbox.add

    def full_disk(*_args: Any, **_kw: Any) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(outbox, "add", full_disk)
    with pytest.raises(sqlite3.OperationalError):
        collector.collect()
    monkeypatch.setattr(outbox, "add", real)
    assert collector.collect().alarms == 2
    assert collector.collect().alarms == 0
    assert [q[2] for q in ward.queued()] == ["raise", "raise"]


def test_an_unreadable_store_is_a_source_error(tmp_path: Path) -> None:
    sources = Sources(tmp_path / "missing-alarms.sqlite", tmp_path / "missing-trends.sqlite")
    with pytest.raises(SourceError):
        sources.last_alarm_row()
    with pytest.raises(SourceError):
        sources.samples(0, 1)


def _samples(ward: Ward, start: float, *rates: float, bed: str = "Bed 1") -> None:
    ward.trends.add([
        TrendSample(bed, "mon-1", round((start + n) * 1000), {"heartrate": r})
        for n, r in enumerate(rates)
    ])  # fmt: skip


def test_a_period_is_summarised_once_after_it_settles(ward: Ward) -> None:
    period = T0 - 40  # the period the interface starts in
    _samples(ward, period - 30, 99, 99)  # before the start: not sent
    collector = ward.collector()
    assert collector.collect().observations == 0  # the cursor starts at this period
    _samples(ward, period + 1, 70, 72, 200)
    _samples(ward, period + 5, 80, bed="Bed 4")  # nobody in Bed 4
    ward.wall.set(period + PERIOD + hl7_collector.SETTLE_S - 0.5)
    assert collector.collect().observations == 0  # late samples may still come
    ward.wall.advance(1)
    assert collector.collect().observations == 1
    assert collector.collect().observations == 0
    assert ward.outbox is not None
    item = ward.outbox.next()
    assert item is not None
    assert (item.bed, item.patient_id) == ("Bed 1", "p1")
    assert '"value":72.0' in item.body  # the median: the spike does not move it


def test_a_full_outbox_holds_observations_and_alarms_use_their_reserve(ward: Ward) -> None:
    collector = ward.collector(budget=100)
    collector.collect()
    assert ward.outbox is not None
    filler = DeviceValues("mon-1", (Metric("heartrate", 70.0),), 1)
    ward.outbox.add(
        ObservationReport(f"f{n}", T0, "Bed 9", "p9", T0, T0, (filler,)) for n in range(100)
    )
    _samples(ward, T0 - 39, 70, 71)
    ward.alarms.save([_episode("a")])
    ward.wall.advance(PERIOD + hl7_collector.SETTLE_S)
    held = collector.collect()
    assert (held.alarms, held.observations, held.full) == (1, 0, True)
    while (item := ward.outbox.next()) is not None:  # the engine takes the backlog
        ward.outbox.acked(item.row, T0)
    freed = collector.collect()
    assert (freed.observations, freed.full) == (1, False)  # the period waited in the store


def test_the_alarm_reserve_has_an_end_too(ward: Ward) -> None:
    collector = ward.collector(mode="off", budget=100)
    collector.collect()
    assert ward.outbox is not None
    ward.outbox.add(
        AlarmReport(f"r{n}", T0, "Bed 9", None, f"x{n}", AlarmEvent.RAISE, "m", "technical",
                    "no_data", "low", "No data", T0, T0, None, False)
        for n in range(200)
    )  # fmt: skip
    ward.alarms.save([_episode("a")])
    assert collector.collect().full
    assert ward.outbox.queued == 200  # waits in the alarm store, not lost


def test_periods_the_raw_samples_no_longer_hold_are_skipped_and_audited(ward: Ward) -> None:
    collector = ward.collector()
    collector.collect()
    ward.wall.advance(5 * 3600)  # the station was off for five hours
    assert collector.collect().observations == 0
    ((action, fields),) = ward.audit.records
    assert action == "hl7.observations_skipped"
    assert fields["outcome"] == "failure"
    assert ward.outbox is not None
    assert float(ward.outbox.cursor("observations") or 0) > ward.wall() - 2 * PERIOD


def test_each_sample_mode_reads_every_sample_once_in_batches(
    ward: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hl7_collector, "SAMPLE_BATCH", 2)
    collector = ward.collector(mode="each")
    collector.collect()
    _samples(ward, T0 - 5, 70, 71, 72, 73, 74)
    ward.trends.add([TrendSample("Bed 1", "mon-2", round((T0 - 5) * 1000), {"oxygen": 97})])
    ward.wall.advance(hl7_collector.SETTLE_S)
    counts = [collector.collect().observations for _ in range(4)]
    assert counts == [2, 2, 2, 0]
    assert len(ward.queued()) == 6


def test_catching_up_stops_between_periods_when_the_owner_stops(ward: Ward) -> None:
    asked = iter([False, False])  # two periods, then the owner stops
    collector = ward.collector(stopping=lambda: next(asked, True))
    collector.collect()
    start = float(ward.outbox.cursor("observations") or 0) if ward.outbox else 0.0
    ward.wall.advance(20 * PERIOD)  # twenty periods to catch up
    collector.collect()
    assert ward.outbox is not None
    assert float(ward.outbox.cursor("observations") or 0) == start + 2 * PERIOD


def test_samples_that_come_after_their_summary_are_counted_and_audited_once(ward: Ward) -> None:
    period = T0 - 40
    collector = ward.collector()
    collector.collect()
    _samples(ward, period + 1, 70, 72)
    ward.wall.set(period + PERIOD + hl7_collector.SETTLE_S)
    assert collector.collect().observations == 1
    # A monitor whose clock runs 30 s slow: its samples of the period arrive after the summary.
    _samples(ward, period + 50, 90, 91, 92)
    _samples(ward, period + 50, 60, bed="Bed 4")  # nobody in Bed 4: nothing missed there
    assert collector.collect().observations == 0  # counted once a period, not every pass
    assert ward.audit.records == []
    ward.wall.advance(PERIOD)
    collector.collect()
    ((action, fields),) = ward.audit.records
    assert (action, fields["target"], fields["outcome"]) == (
        "hl7.observations_late",
        "Bed 1",
        "failure",
    )
    assert fields["details"]["late"] == 3
    ward.wall.advance(PERIOD)
    collector.collect()
    assert len(ward.audit.records) == 1  # each late sample is said once
