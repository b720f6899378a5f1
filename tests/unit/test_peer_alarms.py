"""Peer acknowledgements and ward events taken only from a listed, signing station, and never for
the receiving station's own technical alarms (the hardening issue's "Peers" finding).

Two "stations" are two cores' worth of parts (state, alarm changes, limits keeper, peer events,
peer inbox), each publishing through :class:`PeerSeal` as the MQTT worker does, joined by lists
standing in for the broker. Pure Python: no Qt, no network (the integration test
``test_peer_trust.py`` runs the same with two station processes and Mosquitto).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.settings import ConfigError, from_mapping
from station.config.settings_file import to_toml
from station.domain.alarms import AlarmLimits, AlarmState, Priority
from station.domain.clock import StationClock
from station.domain.peer_signature import PeerKeys, seal
from station.domain.vouchers.keys import public_pem
from station.domain.ward import BedPolicy
from station.domain.ward_events import WardMessage, limits_change_event
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.bed_limits import BedLimitsKeeper
from station.services.ingest.core_state import CoreState
from station.services.ingest.pacing import Throttle
from station.services.ingest.peer_events import PeerEvents
from station.services.ingest.peer_inbox import PeerInbox, load_peer_keys
from station.services.ingest.peer_seal import PeerSeal
from tests.fakes import FakeClock, RecordingAudit

T0 = 1_738_411_200.0
DEV, BED = "monitor-a", "Bed 1"
KEYS = {"ward-a": Ed25519PrivateKey.generate(), "ward-b": Ed25519PrivateKey.generate()}
STRANGER = Ed25519PrivateKey.generate()


@dataclass
class Publisher:
    """A station's MQTT worker as far as peers see it: every event signed, kept in order."""

    seal: PeerSeal
    alarms: list[dict[str, object]] = field(default_factory=list)
    ward: list[bytes] = field(default_factory=list)

    def publish_alarm(self, event: dict[str, object]) -> None:
        self.alarms.append(json.loads(json.dumps(self.seal(event))))

    def publish_ward(self, event: dict[str, object]) -> None:
        self.ward.append(json.dumps(self.seal(event)).encode())


@dataclass
class Station:
    station_id: str
    clock: FakeClock
    audit: RecordingAudit
    alarms: AlarmChanges
    state: CoreState
    inbox: PeerInbox
    out: Publisher
    keeper: BedLimitsKeeper
    shown_limits: dict[str, Any]

    def vitals(self, heartrate: float, at: float) -> None:
        self.alarms.emit(self.state.engine.evaluate(DEV, BED, {"heartrate": heartrate}, at=at))

    def open(self, alarm_id: str) -> AlarmState | None:
        found = [a for a in self.state.engine.open_alarms() if a.alarm_id == alarm_id]
        return found[0].state if found else None

    def ack_event(self, alarm_id: str) -> dict[str, object]:
        (event,) = [e for e in self.out.alarms if e["alarm_id"] == alarm_id and e["by"]]
        return event


def make_station(station_id: str, tmp_path: Path, peers: dict[str, Ed25519PrivateKey]) -> Station:
    data = tmp_path / station_id
    settings = from_mapping(
        {"station": {"id": station_id, "data_dir": str(data)}, "ward": {"beds": 2}}
    )
    clock = FakeClock(T0)
    audit = RecordingAudit()
    policy: dict[str, BedPolicy] = {}
    state = CoreState.build(settings, StationClock.single(clock), policy, audit)
    out = Publisher(PeerSeal(station_id, KEYS[station_id]))
    alarms = AlarmChanges(state, out, None, lambda _alarm: None)
    shown: dict[str, Any] = {}
    keeper = BedLimitsKeeper(state, alarms, None, shown.__setitem__)
    events = PeerEvents(station_id, out, keeper, audit, Throttle(clock), clock)
    keeper.share = events.publish_limits
    trusted = PeerKeys({sid: key.public_key() for sid, key in peers.items()})
    inbox = PeerInbox(state, alarms, events, Throttle(clock), trusted)
    return Station(station_id, clock, audit, alarms, state, inbox, out, keeper, shown)


@pytest.fixture
def a(tmp_path: Path) -> Station:
    return make_station("ward-a", tmp_path, {"ward-b": KEYS["ward-b"]})


@pytest.fixture
def b(tmp_path: Path) -> Station:
    return make_station("ward-b", tmp_path, {"ward-a": KEYS["ward-a"]})


def hr_alarm_on_both(a: Station, b: Station) -> str:
    """Bed 1's HR 170 seen by both stations (same message, same device time): one alarm id."""
    for station in (a, b):
        station.vitals(170, at=T0 - 1)
    (alarm,) = a.state.engine.open_alarms()
    assert b.open(alarm.alarm_id) == AlarmState.ACTIVE
    return alarm.alarm_id


# -- acknowledgements ----------------------------------------------------------------------------


def test_a_trusted_peers_acknowledgement_is_applied_as_that_stations_word(
    a: Station, b: Station
) -> None:
    alarm_id = hr_alarm_on_both(a, b)
    a.alarms.acknowledge(alarm_id, "nurse-ann")
    b.inbox.receive("ward-a", a.ack_event(alarm_id))

    assert b.open(alarm_id) == AlarmState.ACKNOWLEDGED
    (record,) = b.audit.of("alarm.acknowledge")
    assert (record["actor"], record["role"]) == ("nurse-ann@ward-a", "peer")
    assert record["details"]["via"] == "ward-a"
    assert b.inbox.alarms.applied == 1
    assert b.audit.of("alarm.peer_refused") == []
    # B tells the ward (signed by B); A already has it acknowledged: nothing changes there.
    a.inbox.receive("ward-b", b.ack_event(alarm_id))
    assert len(a.audit.of("alarm.acknowledge")) == 1
    # The condition ends: the clear of an alarm a peer acknowledged is the peer's too.
    b.vitals(80, at=T0 + 5)
    (cleared,) = b.audit.of("alarm.clear")
    assert (cleared["actor"], cleared["role"]) == ("nurse-ann@ward-a", "peer")


def _unsigned(event: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in event.items() if k not in ("station", "key_id", "sig")}


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_unsigned, "unsigned"),
        (lambda e: seal(_unsigned(e), "ward-a", STRANGER), "wrong_key"),
        (lambda e: {**e, "by": "mallory"}, "bad_signature"),
        (lambda e: {**e, "alarm_id": "0" * 16}, "bad_signature"),
    ],
)
def test_an_unsigned_foreign_or_altered_acknowledgement_is_refused_counted_and_audited(
    a: Station, b: Station, forge: Any, reason: str
) -> None:
    alarm_id = hr_alarm_on_both(a, b)
    a.alarms.acknowledge(alarm_id, "nurse-ann")
    b.inbox.receive("ward-a", forge(a.ack_event(alarm_id)))

    assert b.open(alarm_id) == AlarmState.ACTIVE
    assert b.audit.of("alarm.acknowledge") == []
    assert b.inbox.alarms.refused == {reason: 1}
    (refused,) = b.audit.of("alarm.peer_refused")
    assert (refused["target"], refused["outcome"]) == ("ward-a", "failure")
    assert refused["details"]["reason"] == reason
    assert refused["details"]["left_out"] == 0


def test_a_station_not_on_the_list_is_refused_even_when_it_signs(
    tmp_path: Path, a: Station
) -> None:
    c = make_station("ward-b", tmp_path / "c", {})  # trusts nobody
    alarm_id = hr_alarm_on_both(a, c)
    a.alarms.acknowledge(alarm_id, "nurse-ann")
    c.inbox.receive("ward-a", a.ack_event(alarm_id))
    assert c.open(alarm_id) == AlarmState.ACTIVE
    assert c.inbox.alarms.refused == {"not_a_peer": 1}


def test_refusals_are_audited_once_a_minute_per_peer_with_the_count_left_out(
    a: Station, b: Station
) -> None:
    alarm_id = hr_alarm_on_both(a, b)
    a.alarms.acknowledge(alarm_id, "nurse-ann")
    unsigned = _unsigned(a.ack_event(alarm_id))
    for _ in range(5):
        b.inbox.receive("ward-a", unsigned)
    b.inbox.receive("ward-x", unsigned)  # another sender: its own record
    assert [r["target"] for r in b.audit.of("alarm.peer_refused")] == ["ward-a", "ward-x"]
    b.clock.advance(61)
    b.inbox.receive("ward-a", unsigned)
    last = b.audit.of("alarm.peer_refused")[-1]
    assert (last["target"], last["details"]["left_out"]) == ("ward-a", 4)
    assert b.inbox.alarms.refused == {"unsigned": 6, "not_a_peer": 1}


def test_other_alarm_events_of_any_station_are_neither_applied_nor_refused(
    a: Station, b: Station
) -> None:
    """A raise or a clear by the condition carries no acknowledgement: nothing to take, so no
    refusal either (a station of another ward on the same broker fills no audit trail)."""
    hr_alarm_on_both(a, b)
    (raised,) = a.out.alarms
    b.inbox.receive("ward-a", raised)
    b.inbox.receive("ward-x", _unsigned(raised))
    assert b.inbox.alarms.refused == {}
    assert b.audit.of("alarm.peer_refused") == []


def test_the_stations_own_technical_alarm_is_never_acknowledged_by_a_peer(
    a: Station, b: Station
) -> None:
    """Even signed by a trusted peer that names the very id (it reads B's alarms topic)."""
    b.alarms.station("audit", True, Priority.HIGH, "audit trail rolled back")
    (own,) = b.out.alarms
    assert isinstance(own["alarm_id"], str)
    forged = {**_unsigned(own), "state": "acknowledged", "by": "nurse-ann"}
    b.inbox.receive("ward-a", seal(forged, "ward-a", KEYS["ward-a"]))

    assert b.open(own["alarm_id"]) == AlarmState.ACTIVE
    assert b.audit.of("alarm.acknowledge") == []
    assert b.inbox.alarms.refused == {"own_alarm": 1}
    (refused,) = b.audit.of("alarm.peer_refused")
    assert refused["details"]["alarm_id"] == own["alarm_id"]


def test_a_devices_technical_alarm_named_by_its_data_is_shared_one_named_locally_is_not(
    a: Station, b: Station
) -> None:
    for station in (a, b):
        station.vitals(80, at=T0 - 1)  # both heard the device: "no data" named by its data
        station.alarms.technical(DEV, BED, "no_data", True)
    (shared,) = [x.alarm_id for x in b.state.engine.open_alarms()]
    a.alarms.acknowledge(shared, "nurse-ann")
    b.inbox.receive("ward-a", a.ack_event(shared))
    assert b.open(shared) == AlarmState.ACKNOWLEDGED

    # A device B has not heard since it started: named by B alone, never a peer's to silence.
    b.alarms.technical("monitor-z", "Bed 2", "no_data", True)
    (local,) = [x.alarm_id for x in b.state.engine.open_alarms() if x.device_id == "monitor-z"]
    forged = seal(
        {"alarm_id": local, "state": "acknowledged", "by": "nurse-ann"}, "ward-a", KEYS["ward-a"]
    )
    b.inbox.receive("ward-a", forged)
    assert b.open(local) == AlarmState.ACTIVE
    assert b.inbox.alarms.refused == {"own_alarm": 1}


@pytest.mark.parametrize("by", ["", "x" * 201, "ann\nroot", 7])
def test_a_signed_acknowledgement_with_an_unusable_name_is_refused(
    a: Station, b: Station, by: object
) -> None:
    alarm_id = hr_alarm_on_both(a, b)
    forged = seal(
        {"alarm_id": alarm_id, "state": "acknowledged", "by": by}, "ward-a", KEYS["ward-a"]
    )
    b.inbox.receive("ward-a", forged)
    assert b.open(alarm_id) == AlarmState.ACTIVE
    assert b.inbox.alarms.refused == {"invalid": 1}


# -- ward events ---------------------------------------------------------------------------------

HR_140 = AlarmLimits(low=50, high=140, priority=Priority.HIGH)


def test_a_trusted_peers_signed_limits_change_is_applied(a: Station, b: Station) -> None:
    a.keeper.change(BED, {"heartrate": HR_140}, None, "nurse-ann")
    (payload,) = a.out.ward
    assert json.loads(payload)["station"] == "ward-a"
    b.inbox.receive("ward-a", WardMessage("ward-a", payload))
    assert b.shown_limits[BED].limits["heartrate"] == HR_140
    (record,) = b.audit.of("alarm.limits_change")
    assert record["details"]["via"] == "ward-a"


def _ward_event(**overrides: object) -> dict[str, object]:
    doc = limits_change_event("0123456789abcdef", BED, {"heartrate": HR_140}, None, "ann", T0)
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    ("station", "payload", "reason"),
    [
        ("ward-a", json.dumps(_ward_event()).encode(), "unsigned"),
        ("ward-a", json.dumps(seal(_ward_event(), "ward-a", STRANGER)).encode(), "wrong_key"),
        (
            "ward-a",
            json.dumps({**seal(_ward_event(), "ward-a", KEYS["ward-a"]), "bed": "Bed 2"}).encode(),
            "bad_signature",
        ),
        ("ward-x", json.dumps(seal(_ward_event(), "ward-x", STRANGER)).encode(), "not_a_peer"),
        ("ward-a", b"{oops", "not_json"),
    ],
)
def test_an_unsigned_foreign_or_altered_ward_event_is_refused_and_audited(
    b: Station, station: str, payload: bytes, reason: str
) -> None:
    b.inbox.receive(station, WardMessage(station, payload))
    assert BED not in b.shown_limits
    assert b.audit.of("alarm.limits_change") == []
    (refused,) = b.audit.of("ward.peer_refused")
    assert refused["details"]["reason"] == reason


# -- the allowlist in the settings ---------------------------------------------------------------


def _pub(tmp_path: Path, name: str, key: Ed25519PrivateKey) -> str:
    path = tmp_path / f"{name}.pub"
    path.write_bytes(public_pem(key.public_key()))
    return str(path)


def test_peers_are_read_from_the_settings_own_id_skipped(tmp_path: Path) -> None:
    settings = from_mapping(
        {
            "station": {"id": "ward-a"},
            "peers": {
                "stations": {
                    "ward-a": _pub(tmp_path, "a", KEYS["ward-a"]),
                    "ward-b": _pub(tmp_path, "b", KEYS["ward-b"]),
                }
            },
        }
    )
    assert load_peer_keys(settings).stations == frozenset({"ward-b"})
    text = to_toml(settings)  # the settings dialog's save keeps the list
    assert "[peers.stations]" in text
    assert from_mapping(tomllib.loads(text)) == settings


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("relative/ward-b.pub", "absolute path"),
        ("/nonexistent/ward-b.pub", "cannot read"),
        ("{tmp}/garbage.pub", "neither a PEM public key"),
    ],
)
def test_a_peer_key_that_cannot_be_used_stops_the_start_naming_the_station(
    tmp_path: Path, value: str, complaint: str
) -> None:
    (tmp_path / "garbage.pub").write_text("hello\n")
    mapping: dict[str, object] = {"peers": {"stations": {"ward-b": value.format(tmp=tmp_path)}}}
    with pytest.raises(ConfigError, match=rf"peers\.stations: ward-b: .*{complaint}"):
        from_mapping(mapping)


def test_a_peer_station_id_must_be_a_station_id(tmp_path: Path) -> None:
    mapping: dict[str, object] = {
        "peers": {"stations": {"ward b/#": _pub(tmp_path, "b", KEYS["ward-b"])}}
    }
    with pytest.raises(ConfigError, match=r"peers\.stations"):
        from_mapping(mapping)
