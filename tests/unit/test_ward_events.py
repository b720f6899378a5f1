"""Ward events between the stations of one ward (issue 15.10): a bed's limits changed at one
station, published, read strictly at another and applied there through the same keeper path,
audited with who and where; malformed, unknown, stale and echoed events refused and counted.

Two "stations" are two cores' worth of parts (state, alarm changes, limits keeper, peer events)
on their own data folders, joined by a list standing in for the broker. Pure Python: no Qt, no
network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from station.config.settings import from_mapping
from station.domain.alarms import AlarmLimits, Priority
from station.domain.bed_limits import BedLimits
from station.domain.clock import StationClock
from station.domain.ward import BedPolicy
from station.domain.ward_events import (
    MAX_WARD_EVENT_BYTES,
    LimitsChange,
    WardMessage,
    WardRefusal,
    WardSink,
    limits_change_event,
    parse_ward_event,
)
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.bed_limits import BedLimitsKeeper
from station.services.ingest.core_state import CoreState
from station.services.ingest.pacing import Throttle
from station.services.ingest.peer_events import PeerEvents
from station.services.storage.bed_limits_file import BED_LIMITS_FILE, BedLimitsFile
from tests.fakes import FakeClock, RecordingAudit

T0 = 1_738_411_200.0
HR_140 = AlarmLimits(low=50, high=140, priority=Priority.HIGH)


@dataclass
class Broker:
    """Ward events published, as (station, payload bytes): what a peer would receive."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Sink:
    """One station's publisher."""

    station: str
    broker: Broker

    def publish_ward(self, event: dict[str, object]) -> None:
        self.broker.sent.append((self.station, json.dumps(event).encode()))


@dataclass
class Station:
    station_id: str
    clock: FakeClock
    audit: RecordingAudit
    keeper: BedLimitsKeeper
    peers: PeerEvents
    shown: dict[str, BedLimits]
    data: Path
    policy: dict[str, BedPolicy]

    def saved(self) -> dict[str, Any]:
        owners = json.loads((self.data / BED_LIMITS_FILE).read_text())["owners"]
        assert isinstance(owners, dict)
        return owners


def make_station(station_id: str, tmp_path: Path, broker: Broker, start: float = T0) -> Station:
    data = tmp_path / station_id
    settings = from_mapping(
        {"station": {"id": station_id, "data_dir": str(data)}, "ward": {"beds": 4}}
    )
    clock = FakeClock(start)
    audit = RecordingAudit()
    policy: dict[str, BedPolicy] = {}
    state = CoreState.build(settings, StationClock.single(clock), policy, audit)
    alarms = AlarmChanges(state, None, None, lambda _alarm: None)
    shown: dict[str, BedLimits] = {}
    store = BedLimitsFile(data / BED_LIMITS_FILE)
    keeper = BedLimitsKeeper(state, alarms, store, shown.__setitem__)
    peers = PeerEvents(station_id, Sink(station_id, broker), keeper, audit, Throttle(clock), clock)
    keeper.share = peers.publish_limits
    return Station(station_id, clock, audit, keeper, peers, shown, data, policy)


def deliver(broker: Broker, to: Station) -> None:
    """What the broker hands ``to`` (the MQTT worker drops a station's own events; ``to`` gets
    them anyway here, to show it drops them too)."""
    for station, payload in broker.sent:
        to.peers.receive(WardMessage(station, payload))


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def a(tmp_path: Path, broker: Broker) -> Station:
    return make_station("ward-a", tmp_path, broker)


@pytest.fixture
def b(tmp_path: Path, broker: Broker) -> Station:
    return make_station("ward-b", tmp_path, broker, start=T0 + 2.5)


def event(**overrides: object) -> bytes:
    doc = limits_change_event("0123456789abcdef", "Bed 2", {"heartrate": HR_140}, None, "ann", T0)
    doc.update(overrides)
    return json.dumps(doc).encode()


# -- the payload ---------------------------------------------------------------------------------


def test_a_limits_change_reads_back_as_published() -> None:
    change = parse_ward_event(event(profile="neonatal"))
    assert isinstance(change, LimitsChange)
    assert change.limits_in_force() == {"heartrate": HR_140}
    assert (change.bed, change.profile, change.by) == ("Bed 2", "neonatal", "ann")
    assert change.at_s == pytest.approx(T0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff not json", "not_json"),
        (b'{"kind": "limits_change", "kind": "limits_change"}', "not_json"),
        (event().replace(b'"low": 50.0', b'"low": NaN'), "not_json"),
        (b"[1, 2]", "not_object"),
        (json.dumps({"kind": "nurse_call", "bed": "Bed 2"}).encode(), "unknown_kind"),
        (json.dumps({"kind": "audio_pause_bed", "bed": "Bed 2"}).encode(), "invalid"),
        (event(v=2), "invalid"),
        (event(v=True), "invalid"),
        (event(extra="x"), "invalid"),
        (event(by="emergency (no login)"), "invalid"),
        (event(event_id="not-hex"), "invalid"),
        (event(at="2025-02-01T12:00:00"), "invalid"),  # naive: whose clock?
        (event(at=T0), "invalid"),
        (event(bed=""), "invalid"),
        (event(limits={}), "invalid"),
        (event(limits={"pulse": {"low": 40}}), "invalid"),
        (event(limits={"heartrate": {"low": "50"}}), "invalid"),  # a string is not a number
        (event(limits={"heartrate": {"low": 150, "high": 140}}), "invalid"),
        (event(limits={"heartrate": {"priority": "urgent"}}), "invalid"),
        (event(patient="MRN-1"), "invalid"),  # no patient identity over MQTT, ever
        (b" " * (MAX_WARD_EVENT_BYTES + 1), "too_large"),
    ],
)
def test_a_malformed_event_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    refusal = parse_ward_event(payload)
    assert isinstance(refusal, WardRefusal)
    assert refusal.reason == reason


def test_a_publisher_with_publish_ward_is_a_ward_sink() -> None:
    """How the core finds out that its publisher can tell the ward (the MQTT worker can)."""
    assert isinstance(Sink("x", Broker()), WardSink)
    assert not isinstance(object(), WardSink)


# -- two stations --------------------------------------------------------------------------------


def test_a_change_at_one_station_is_applied_audited_saved_and_shown_at_the_other(
    a: Station, b: Station, broker: Broker
) -> None:
    a.keeper.change("Bed 2", {"heartrate": HR_140}, "adult", "nurse-ann")
    ((origin, _),) = broker.sent
    assert origin == "ward-a"
    deliver(broker, b)

    assert b.shown["Bed 2"].limits["heartrate"] == HR_140
    assert b.shown["Bed 2"].own
    assert b.shown["Bed 2"].profile == "adult"
    (here,) = a.audit.of("alarm.limits_change")
    (there,) = b.audit.of("alarm.limits_change")
    assert (there["actor"], there["role"], there["target"]) == ("nurse-ann", "nurse", "Bed 2")
    assert there["details"]["via"] == "ward-a"
    assert there["details"]["event_id"] == here["details"]["event_id"]
    assert there["details"]["changes"]["heartrate"]["high"] == [120.0, 140.0]
    assert there["details"]["changes"] == here["details"]["changes"]  # same ward defaults
    assert "via" not in here["details"]
    saved = b.saved()["bed:Bed 2"]
    assert (saved["by"], saved["at"]) == ("nurse-ann", pytest.approx(T0))
    assert b.peers.applied == 1


def test_a_peers_change_is_never_told_on(a: Station, b: Station, broker: Broker) -> None:
    a.keeper.change("Bed 2", {"heartrate": HR_140}, None, "nurse-ann")
    deliver(broker, b)
    assert [station for station, _ in broker.sent] == ["ward-a"]  # B published nothing
    deliver(broker, a)  # A's own event handed back to it: dropped, not applied again
    assert len(a.audit.of("alarm.limits_change")) == 1
    assert a.peers.applied == 0


def test_a_redelivered_event_is_applied_once(a: Station, b: Station, broker: Broker) -> None:
    a.keeper.change("Bed 2", {"heartrate": HR_140}, None, "nurse-ann")
    deliver(broker, b)
    deliver(broker, b)
    assert len(b.audit.of("alarm.limits_change")) == 1


def test_of_two_changes_at_once_the_later_wins_on_both(
    a: Station, b: Station, broker: Broker
) -> None:
    hr_130 = AlarmLimits(low=50, high=130, priority=Priority.HIGH)
    a.keeper.change("Bed 2", {"heartrate": HR_140}, None, "nurse-ann")  # T0
    b.keeper.change("Bed 2", {"heartrate": hr_130}, None, "nurse-bo")  # T0 + 2.5: later
    sent = list(broker.sent)
    for station in (a, b):
        for origin, payload in sent:
            station.peers.receive(WardMessage(origin, payload))
    assert a.shown["Bed 2"].limits["heartrate"] == hr_130
    assert b.shown["Bed 2"].limits["heartrate"] == hr_130
    assert b.peers.refused == {"stale": 1}
    (refused,) = b.audit.of("ward.peer_refused")
    assert refused["details"]["reason"] == "stale"


def test_an_unknown_bed_or_a_malformed_event_is_refused_counted_and_audited_once_a_minute(
    b: Station,
) -> None:
    b.peers.receive(WardMessage("ward-a", event(bed="Bed 9")))
    for _ in range(3):
        b.peers.receive(WardMessage("ward-a", b"{oops"))
    assert b.peers.refused == {"unknown_bed": 1, "not_json": 3}
    assert [r["details"]["reason"] for r in b.audit.of("ward.peer_refused")] == [
        "unknown_bed",
        "not_json",
    ]
    b.clock.advance(61)
    b.peers.receive(WardMessage("ward-a", b"{oops"))
    last = b.audit.of("ward.peer_refused")[-1]
    assert last["details"]["left_out"] == 2
    assert b.audit.of("alarm.limits_change") == []


def test_a_station_without_a_publisher_keeps_its_changes_to_itself(
    tmp_path: Path, broker: Broker
) -> None:
    lone = make_station("ward-c", tmp_path, broker)
    lone.peers = PeerEvents("ward-c", None, lone.keeper, lone.audit, Throttle(lone.clock))
    lone.keeper.share = lone.peers.publish_limits
    lone.keeper.change("Bed 1", {"heartrate": HR_140}, None, "nurse-ann")
    assert broker.sent == []
    (record,) = lone.audit.of("alarm.limits_change")
    assert "event_id" not in record["details"]


def test_limits_follow_the_bed_label_whoever_lies_there(
    a: Station, b: Station, broker: Broker
) -> None:
    """The ward's stations need not share one patient table: B keeps the limits for whoever is
    on its Bed 2 (here, its admitted patient), as if its own nurse had set them."""
    b.policy["Bed 2"] = BedPolicy(patient="p-123")
    a.keeper.change("Bed 2", {"heartrate": HR_140}, None, "nurse-ann")
    deliver(broker, b)
    assert list(b.saved()) == ["patient:p-123"]


# -- a bed's audio pause ---------------------------------------------------------------------------


def test_a_beds_audio_pause_is_shared_audited_and_ends_alike(
    a: Station, b: Station, broker: Broker
) -> None:
    told: list[tuple[str, float]] = []
    b.peers.paused = lambda bed, seconds: told.append((bed, seconds))
    a.peers.user_action("alarm.audio_pause_bed", "ann", {"bed": "Bed 2", "seconds": 120.0})
    a.peers.user_action("alarm.audio_pause", "ann", {})  # the ward's own pause: not shared
    (sent,) = broker.sent
    assert json.loads(sent[1])["kind"] == "audio_pause_bed"
    deliver(broker, b)
    deliver(broker, b)  # a redelivery: applied once
    assert told == [("Bed 2", pytest.approx(120 - 2.5))]  # B's clock is 2.5 s on
    (record,) = b.audit.of("alarm.audio_pause_bed")
    assert (record["actor"], record["details"]["via"], record["details"]["seconds"]) == (
        "ann",
        "ward-a",
        120,
    )
    broker.sent.clear()
    a.peers.user_action("alarm.audio_resume_bed", "LOCKED — actions need a login", {"bed": "Bed 2"})
    deliver(broker, b)
    assert told[-1] == ("Bed 2", 0.0)
    assert b.audit.of("alarm.audio_resume_bed")[0]["actor"] == "unknown"


def test_a_pause_already_over_is_audited_not_applied(
    a: Station, b: Station, broker: Broker
) -> None:
    told: list[tuple[str, float]] = []
    b.peers.paused = lambda bed, seconds: told.append((bed, seconds))
    a.peers.publish_pause("Bed 1", 60, "ann")
    b.clock.now += 120  # delivered two minutes late (a station away)
    deliver(broker, b)
    assert told == []
    assert b.audit.of("alarm.audio_pause_bed")[0]["details"]["left"] == 0.0
