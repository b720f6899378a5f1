"""The core's live path (issue 13): clock steps blind nothing, a forgery is flagged and silences
nobody, a flooding device is reported and held to its budget, the two sessions' copies of a
message are shown once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain import ingest
from station.domain.alarms import Alarm, AlarmState
from station.domain.messages import Accepted
from station.services.ingest.core import CoreWorker
from station.services.ingest.live_inbox import LiveInbox, LiveItem, source_key
from tests.payloads import FILTERS, vitals

T0 = 1_800_000_000.0


class Clocks:
    """A wall clock and a monotonic one the test moves separately."""

    def __init__(self) -> None:
        self.wall, self.mono = T0, 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


class Trail:
    """The audit sink: records what the core asks to record."""

    fault = None

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def record(self, action: str, **fields: Any) -> None:
        self.records.append((action, fields))

    def actions(self) -> list[str]:
        return [a for a, _ in self.records]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return from_mapping(
        {
            "station": {"data_dir": str(tmp_path)},
            "ward": {"beds": 2, "devices": {"mon-1": 1, "mon-2": 2}},
            "devices": {"live_budget_hz": 5},
        }
    )


class Live:
    def __init__(self, settings: Settings) -> None:
        self.clocks = Clocks()
        self.trail = Trail()
        self.inbox = LiveInbox(settings.devices.live_budget_hz)
        self.core = CoreWorker(
            settings,
            self.trail,
            None,
            None,
            lambda: True,
            lambda: self.clocks.wall,
            monotonic=lambda: self.clocks.mono,
        )
        self.core.attach(lambda _n: ([], False), self.inbox.take, self.inbox.flooding)
        self.alarms: list[Alarm] = []
        self.shown: list[tuple[str, Accepted]] = []
        self.core.alarm_changed.connect(self.alarms.append)
        self.core.vitals_batch.connect(self.shown.extend)  # no event loop: one batch a message

    def message(self, device: str, at: float | None = None, **values: Any) -> Accepted:
        """A message of ``device`` stamped ``at`` (default: the true time), received now."""
        true_time = T0 + (self.clocks.mono - 1000.0)
        raw = vitals(device, at=true_time if at is None else at, **values)
        now = self.core._time.now()
        result = ingest.parse(f"healthcare/devices/{device}/vitals", raw, now, FILTERS)
        assert isinstance(result, Accepted), result
        return result

    def received(self, device: str, **values: Any) -> tuple[str, bytes, float]:
        """A message of ``device`` as the record session hands it over (parsed by the core):
        topic, payload stamped with the true time, the station's time of arrival."""
        raw = vitals(device, at=T0 + (self.clocks.mono - 1000.0), **values)
        return f"healthcare/devices/{device}/vitals", raw, self.core._time.now()

    def open_alarms(self, parameter: str) -> list[Alarm]:
        latest: dict[str, Alarm] = {}
        for alarm in self.alarms:
            latest[alarm.alarm_id] = alarm
        return [
            a
            for a in latest.values()
            if a.parameter == parameter and a.state is not AlarmState.CLEARED
        ]


@pytest.fixture
def live(qtbot: QtBot, settings: Settings) -> Live:
    return Live(settings)


def test_a_clock_stepped_back_an_hour_delays_no_data_not_at_all(live: Live) -> None:
    live.core.on_accepted(live.message("mon-1", heartrate=80))
    live.clocks.wall -= 3600  # the station's clock steps back an hour
    live.clocks.advance(9.9)
    live.core.tick()
    assert live.open_alarms("no_data") == []  # 9.9 s of silence, by the monotonic clock
    live.clocks.advance(0.25)  # one watch period later: 10.15 s of silence
    live.core._watches.silence()  # what the core's 250 ms watch timer runs
    assert sorted(a.device_id for a in live.open_alarms("no_data")) == ["mon-1", "mon-2"]
    clock = live.open_alarms("clock")
    assert [a.message for a in clock] == [
        "Station clock changed by -3600 s: timers and alarms unaffected"
    ]
    assert "clock.step" in live.trail.actions()
    # Devices with correct clocks are not "from the future" and still raise alarms.
    live.core.on_accepted(live.message("mon-1", heartrate=170))
    assert [a.bed for a in live.open_alarms("heartrate")] == ["Bed 1"]


def test_a_clock_stepped_forward_past_the_live_window_blinds_nothing(live: Live) -> None:
    live.clocks.wall += 120
    live.clocks.mono += 1
    live.core.on_accepted(live.message("mon-1", heartrate=170))
    assert [bed for bed, _ in live.shown] == ["Bed 1"]
    assert [a.bed for a in live.open_alarms("heartrate")] == ["Bed 1"]
    assert live.open_alarms("clock") == [] or all(
        a.device_id == "" for a in live.open_alarms("clock")
    )
    # A replay two hours old is old by both readings: stored, not shown.
    live.core.on_accepted(live.message("mon-2", at=T0 - 7200, heartrate=40))
    assert [bed for bed, _ in live.shown] == ["Bed 1"]


def test_a_forged_message_is_flagged_and_the_real_alarm_follows(live: Live) -> None:
    live.core.on_accepted(live.message("mon-1", seq=1, heartrate=80))
    forged = live.message("mon-1", at=T0 + 180, seq=2**63 - 1, heartrate=60)
    live.core.on_accepted(forged)
    flagged = live.open_alarms("sequence")
    assert [(a.device_id, a.bed) for a in flagged] == [("mon-1", "Bed 1")]
    assert "device.suspect" in live.trail.actions()
    live.clocks.advance(1)
    live.core.on_accepted(live.message("mon-1", seq=2, heartrate=170))
    assert [a.bed for a in live.open_alarms("heartrate")] == ["Bed 1"]
    assert [msg.payload.seq for _, msg in live.shown] == [1, 2]  # the forgery was never shown
    live.clocks.advance(61)
    live.core.tick()
    assert live.open_alarms("sequence") == []  # held a minute, then ended


def test_a_flooding_device_is_held_to_its_budget_and_reported(live: Live) -> None:
    for n in range(200):
        raw = vitals("mon-1", at=T0, seq=n + 1, heartrate=80)
        item = LiveItem("healthcare/devices/mon-1/vitals", raw, T0)
        live.inbox.put(source_key("mon-1", True), item, live.clocks.mono)
    raw = vitals("mon-2", at=T0, seq=1, heartrate=170)
    live.inbox.put(
        source_key("mon-2", True),
        LiveItem("healthcare/devices/mon-2/vitals", raw, T0),
        live.clocks.mono,
    )
    live.core.drain_live()
    shown = [msg.payload.seq for bed, msg in live.shown if bed == "Bed 1"]
    assert shown == [1, 2, 3, 4, 200]  # its budget, then its newest
    assert [a.bed for a in live.open_alarms("heartrate")] == ["Bed 2"]
    live.core.tick()
    flooding = live.open_alarms("flooding")
    assert [(a.device_id, a.bed) for a in flooding] == [("mon-1", "Bed 1")]
    assert "200 msg/s" in flooding[0].message
    record = next(f for a, f in live.trail.records if a == "device.flooding")
    assert record["details"]["rate"] == 200
    live.clocks.advance(8)
    live.core.tick()
    assert live.open_alarms("flooding") == []
    assert "device.flooding_ended" in live.trail.actions()


def test_a_message_both_sessions_bring_is_shown_once(live: Live) -> None:
    msg = live.message("mon-1", seq=1, heartrate=80)
    raw = json.dumps({**json.loads(vitals("mon-1", at=msg.device_time, seq=1, heartrate=80))})
    live.inbox.put(source_key("mon-1", True), LiveItem(msg.topic, raw.encode(), msg.received_at), 0)
    live.core.drain_live()
    live.core.on_accepted(msg)  # the persistent session's copy, recorded only
    assert len(live.shown) == 1
    assert live.core.accepted == 1


def test_live_messages_go_first_also_between_the_record_chunk_s_messages(live: Live) -> None:
    from station.services.ingest.record_inbox import Delivery

    record = [(live.received("mon-1", seq=n, heartrate=80), Delivery(1, n, 1)) for n in (1, 2)]
    alarm = live.message("mon-2", seq=1, heartrate=170)
    raw = vitals("mon-2", at=alarm.device_time, seq=1, heartrate=170)
    live.inbox.put(source_key("mon-2", True), LiveItem(alarm.topic, raw, alarm.received_at), 0)
    inbox = live.inbox
    live.core.attach(lambda n: (record[:n], False), inbox.take, live_waiting=inbox.waiting)
    live.core.drain_record()
    # The bed in alarm first, though its live message came after the record's were taken.
    assert next((bed, msg.payload.seq) for bed, msg in live.shown) == ("Bed 2", 1)
    assert [a.bed for a in live.open_alarms("heartrate")] == ["Bed 2"]
    assert live.core.accepted == 2  # the record's both kept


def test_an_old_batch_goes_to_the_window_though_the_busy_core_fires_no_timer(live: Live) -> None:
    class Busy:
        """The batch timer of a core too busy to fire it (a flood's record path)."""

        def isActive(self) -> bool:
            return True

        def start(self) -> None:
            raise AssertionError("running already")

    live.core._live_path.timer = Busy()
    live.core.on_accepted(live.message("mon-1", seq=1, heartrate=80))
    live.clocks.advance(0.03)
    live.core.on_accepted(live.message("mon-2", seq=1, heartrate=80))
    assert live.shown == []  # younger than the batch period: the timer's to send
    live.clocks.advance(0.03)
    live.core.on_accepted(live.message("mon-1", seq=2, heartrate=81))
    assert [msg.device_id for _, msg in live.shown] == ["mon-1", "mon-2", "mon-1"]


def test_a_message_the_record_path_fails_on_costs_that_message_only(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    from station.services.ingest.record_inbox import Delivery

    acked: list[list[Delivery]] = []
    live.core._ack = acked.append
    queue = [(live.received(d, seq=1), Delivery(1, n, 1)) for n, d in enumerate(["mon-1", "mon-2"])]
    record = live.core._record

    def failing(msg: Accepted, delivery: Delivery | None) -> bool:
        if msg.device_id == "mon-1":
            raise RuntimeError("a bug")
        return record(msg, delivery)

    monkeypatch.setattr(live.core, "_record", failing)
    live.core.attach(lambda n: (queue[:n], False))
    live.core.drain_record()
    live.core.commit()
    assert [d.mid for batch in acked for d in batch] == [0, 1]  # both acknowledged, in order
    assert [bed for bed, _ in live.shown] == ["Bed 2"]
