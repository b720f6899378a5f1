"""The core's durable path with a real spool, a real trend store and a real audit file:
acknowledge only after the commit, duplicates and late data kept off the screen, seq gaps shown
and audited, and a full spool that never stops the display or the alarms (issue 4)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.alarms import AlarmState
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.services.ingest.historian import Historian
from station.services.ingest.record_inbox import Delivery
from station.services.storage.spool import Spool
from station.services.storage.trends import TrendStore
from station.ui.main_window import MainWindow
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Wiring

BED = "Bed 1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return from_mapping(
        {
            "station": {"data_dir": str(tmp_path / "data")},
            "influx": {"enabled": True, "url": "http://127.0.0.1:9"},
            "ward": {"beds": 4, "devices": {"mon-1": 1, "mon-2": 2}},
        }
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Parts:
    """The window and a core on the test's thread, wired as the app wires them, and what the
    core writes to."""

    def __init__(
        self, wire: Wiring, tmp_path: Path, settings: Settings, clock: FakeClock, spool: Spool
    ) -> None:
        self.audit = AuditWriter(tmp_path / "audit", clock=clock)
        self.audit.start()
        self.spool = spool
        self.trends = TrendStore(tmp_path / "trends.sqlite", clock=clock)
        self.trends.open()
        # Never started: its memory queue is where points go when the spool refuses them.
        self.historian = Historian("http://127.0.0.1:9", "ward", "vitals", None, spool=spool)
        self.acked: list[list[Delivery]] = []
        self.spooled_when_acked: list[int] = []
        screen = wire(
            settings,
            clock,
            self.audit,
            historian=self.historian,
            spool=spool,
            trends=self.trends,
            acknowledge=self._ack,
        )
        assert screen.core is not None
        self.window: MainWindow = screen.window
        self.core: CoreWorker = screen.core
        self._mid = 0

    def _ack(self, deliveries: list[Delivery]) -> None:
        self.acked.append(deliveries)
        self.spooled_when_acked.append(len(self.spool.pending(100_000)))

    def delivery(self) -> Delivery:
        self._mid += 1
        return Delivery(1, self._mid, 1)

    def records(self) -> list[dict[str, object]]:
        assert self.audit.close(5.0)
        lines = self.audit.path.read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def parts(wire: Wiring, tmp_path: Path, settings: Settings, clock: FakeClock) -> Iterator[Parts]:
    spool = Spool(tmp_path / "spool.sqlite", clock=clock)
    spool.open()
    p = Parts(wire, tmp_path, settings, clock, spool)
    yield p
    p.audit.close(5.0)
    p.trends.close()
    spool.close()


def _hr_samples(window: MainWindow) -> list[float]:
    return list(window.beds[BED].buffers["heartrate"].view()[1])


def test_messages_are_acknowledged_only_once_their_points_are_in_the_spool(
    parts: Parts, clock: FakeClock
) -> None:
    for i in range(3):
        clock.now += 1
        parts.core.on_accepted(accepted("mon-1", clock.now, heartrate=70 + i), parts.delivery())
    # No event loop timer in this test: each message is committed, then acknowledged.
    assert [[d.mid for d in batch] for batch in parts.acked] == [[1], [2], [3]]
    assert parts.spooled_when_acked == [1, 2, 3]
    lines = [line for _, line in parts.spool.pending(10)]
    assert all(line.startswith("vitals,bed=Bed\\ 1,device=mon-1,") for line in lines)


def test_group_commit_acknowledges_a_burst_in_arrival_order(
    qtbot: QtBot, parts: Parts, clock: FakeClock
) -> None:
    parts.core.start()  # the commit timer exists from here: messages are grouped
    try:
        for _ in range(10):
            clock.now += 1
            parts.core.on_accepted(accepted("mon-1", clock.now, heartrate=70), parts.delivery())
        assert parts.acked == []  # nothing acknowledged before the commit
        qtbot.waitUntil(lambda: len(parts.acked) == 1, timeout=2000)
        assert [d.mid for d in parts.acked[0]] == list(range(1, 11))
        assert parts.spooled_when_acked == [10]
    finally:
        parts.core.shutdown()


def test_a_redelivery_adds_no_sample_alarm_or_point(parts: Parts, clock: FakeClock) -> None:
    msg = accepted("mon-1", clock.now, heartrate=160, seq=1)
    parts.core.on_accepted(msg, parts.delivery())
    parts.core.on_accepted(msg, parts.delivery())  # QoS 1 redelivery of the same message
    parts.core.on_accepted(msg, parts.delivery())
    assert _hr_samples(parts.window) == [160.0]
    raised = [a for a in parts.window.alarm_list.alarms() if a.parameter == "heartrate"]
    assert len(raised) == 1
    assert parts.spool.backlog()[0] == 2  # the vitals point and the alarm point, once each
    assert sum(len(b) for b in parts.acked) == 3  # every delivery is still acknowledged
    assert parts.trends.query(BED, clock.now - 60, clock.now + 1).rows == 1
    records = parts.records()
    assert [r["action"] for r in records].count("alarm.raise") == 1


def test_late_data_is_stored_at_its_device_time_but_never_shown_or_alarmed(
    parts: Parts, clock: FakeClock
) -> None:
    parts.core.on_accepted(accepted("mon-1", clock.now, heartrate=72, seq=10), parts.delivery())
    late_at = clock.now - 5
    late = accepted("mon-1", late_at, heartrate=190, seq=5)  # out of order, alarming value
    parts.core.on_accepted(late, parts.delivery())
    assert _hr_samples(parts.window) == [72.0]
    assert parts.window.alarm_list.alarms() == []
    lines = [line for _, line in parts.spool.pending(10)]
    late_ms = round(late.device_time * 1000)
    assert any(line.endswith(f" {late_ms}") and "heartrate=190.0" in line for line in lines)
    stored = parts.trends.query(BED, clock.now - 60, clock.now + 1)
    assert stored.rows == 2
    assert parts.core._late == 1


def test_a_seq_gap_breaks_the_curve_shows_on_the_tile_and_is_audited(
    parts: Parts, clock: FakeClock
) -> None:
    for seq in (1, 2, 3):
        clock.now += 1
        parts.core.on_accepted(accepted("mon-1", clock.now, seq=seq), parts.delivery())
    clock.now += 5
    parts.core.on_accepted(accepted("mon-1", clock.now, seq=8), parts.delivery())  # 4–7 lost
    parts.window.paint_frame()
    tile = parts.window.tiles[BED]
    assert "DATA GAP: 4 lost" in tile.age.text()
    values = _hr_samples(parts.window)
    assert len(values) == 5
    assert values[3] != values[3]  # a NaN between the 3rd and the 4th sample: the curve breaks
    gaps = [r for r in parts.records() if r["action"] == "data.gap"]
    assert len(gaps) == 1
    details = gaps[0]["details"]
    assert isinstance(details, dict)
    assert (details["device"], details["after_seq"], details["seq"], details["missing"]) == (
        "mon-1",
        3,
        8,
        4,
    )
    assert gaps[0]["target"] == BED


def _fill_disk(path: Path) -> None:
    """Fill the file system holding ``path`` to the last byte (unbuffered, ever smaller
    writes, so nothing is left for a buffer to flush at close)."""
    with (path / "filler").open("wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                continue


@contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a real file system that fills up. Mounting needs root, as CI runs."""
    assert os.geteuid() == 0, "this test mounts a 1 MiB tmpfs: run the suite as root (as CI)"
    mount = where / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("limit", ["full tmpfs", "spool budget"])
def test_a_full_spool_raises_a_technical_alarm_while_display_and_alarms_go_on(
    wire: Wiring, tmp_path: Path, settings: Settings, clock: FakeClock, limit: str
) -> None:
    with ExitStack() as stack:
        if limit == "full tmpfs":
            disk = stack.enter_context(small_disk(tmp_path))
            spool = Spool(disk / "spool.sqlite", clock=clock)
        else:
            spool = Spool(tmp_path / "spool.sqlite", budget_bytes=64 * 1024, clock=clock)
        spool.open()
        stack.callback(spool.close)
        p = Parts(wire, tmp_path, settings, clock, spool)
        stack.callback(p.trends.close)
        stack.callback(p.audit.close, 5.0)
        _run_until_full_and_back(p, clock, disk if limit == "full tmpfs" else None)


def _run_until_full_and_back(p: Parts, clock: FakeClock, disk: Path | None) -> None:
    """Messages until the spool refuses; then display and alarms still work; then room again."""
    clock.now += 1
    p.core.on_accepted(accepted("mon-1", clock.now, heartrate=72, seq=1), p.delivery())
    if disk is not None:
        _fill_disk(disk)
    for seq in range(2, 5000):
        clock.now += 1
        p.core.on_accepted(accepted("mon-1", clock.now, heartrate=72, seq=seq), p.delivery())
        if p.core._spool_fault:
            break
    assert p.core._spool_fault, "the disk filled but the spool never refused"
    p.window.paint_frame()
    technical = [a for a in p.window.alarm_list.alarms() if a.parameter == "spool"]
    assert len(technical) == 1
    assert technical[0].priority.value == "high"
    assert "not saved to disk" in technical[0].message
    # Display and alarms go on: a new value shows and a high heart rate still alarms.
    clock.now += 1
    p.core.on_accepted(accepted("mon-1", clock.now, heartrate=170, seq=99), p.delivery())
    p.window.paint_frame()
    assert p.window.tiles[BED].hr.value.text() == "170"
    hr = [a for a in p.window.alarm_list.alarms() if a.parameter == "heartrate"]
    assert len(hr) == 1
    assert hr[0].state == AlarmState.ACTIVE
    # Every message was acknowledged (or the station would go deaf) and nothing refused by
    # the spool was dropped: it waits in the historian's memory queue.
    assert sum(len(b) for b in p.acked) == p._mid
    unspooled = p.core._unspooled
    assert unspooled > 0
    assert p.historian.status().backlog >= unspooled
    # Room again: the spool takes points, the alarm clears and the audit says how many
    # went to memory only.
    if disk is not None:
        (disk / "filler").unlink()
    else:
        p.spool.budget_bytes *= 4
    clock.now += 1
    p.core.on_accepted(accepted("mon-1", clock.now, heartrate=72, seq=100), p.delivery())
    assert p.core._spool_fault is None
    p.window.paint_frame()
    assert not [a for a in p.window.alarm_list.alarms() if a.parameter == "spool"]
    actions = {r["action"]: r for r in p.records()}
    assert actions["spool.full"]["outcome"] == "failure"
    assert "full" in json.dumps(actions["spool.full"]["details"])
    recovered = actions["spool.recovered"]["details"]
    assert isinstance(recovered, dict)
    assert recovered["points_in_memory"] == unspooled


def test_the_status_bar_counts_duplicates_and_lost_messages(parts: Parts, clock: FakeClock) -> None:
    first = accepted("mon-1", clock.now, seq=1)
    parts.core.on_accepted(first, parts.delivery())
    parts.core.on_accepted(first, parts.delivery())
    clock.now += 4
    parts.core.on_accepted(accepted("mon-1", clock.now, seq=5), parts.delivery())
    parts.core.tick()
    text = parts.window.ingest.text()
    assert "3 accepted" in text
    assert "1 duplicates ignored" in text
    assert "3 LOST before arrival (seq gaps)" in text
    assert "NOT SAVED" not in text


def test_values_after_a_device_clock_steps_back_are_shown_and_alarmed(
    parts: Parts, clock: FakeClock
) -> None:
    """NTP corrects a clock that ran 4 min fast: seq moves on, so the values are live."""
    parts.core.on_accepted(accepted("mon-1", clock.now + 240, heartrate=80, seq=1), None)
    for seq in range(2, 5):
        clock.now += 1
        parts.core.on_accepted(accepted("mon-1", clock.now, heartrate=30, seq=seq), None)
    assert _hr_samples(parts.window) == [80.0, 30.0, 30.0, 30.0]
    alarms = [a for a in parts.window.alarm_list.alarms() if a.parameter == "heartrate"]
    assert len(alarms) == 1
    assert alarms[0].message == "HR 30 < 50"
    assert parts.core._late == 0
