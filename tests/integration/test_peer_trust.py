"""Peers trusted by key (the hardening issue's "Peers" finding), with two real station processes on
a real Mosquitto, as in ``test_two_stations.py`` (whose processes, listener and fixtures this
module reuses): ``ward-a`` and ``ward-b`` list each other in ``[peers] stations``, each signing
with its own audit key.

A client with the broker's station credential (the ACL lets it write any station's topics, as
any client could on a broker without the hardened ACL) publishes acknowledgements of Bed 1's HR
alarm: unsigned, signed with a key that is not ward-a's, and from ``ward-z``, a station on no
list; and one signed with ward-a's real key that names ward-b's own technical alarm. Station B
applies none of them, counts and audits each; then the nurse at A acknowledges the HR alarm and
B applies it, recorded as her word at A (role ``peer``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.domain.peer_signature import seal, unsealed
from station.domain.ward_events import limits_change_event
from station.services.storage.bed_limits_file import BED_LIMITS_FILE
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import publish
from tests.integration.test_two_stations import (  # noqa: F401 (fixtures used by name)
    BED,
    DEVICE,
    NURSE,
    State,
    StationProcess,
    WardListener,
    listener,
    stations,
    ward_keys,
)
from tests.payloads import vitals
from tests.waiting import wait_until

FORGER = "station"  # the broker user stations share here: it may write healthcare/station/#


@pytest.fixture
def prepare_station() -> Callable[[str, Path], None]:
    """B starts with its saved limits unreadable: a technical alarm of B itself ("Saved alarm
    limits unreadable"), raised by B's own conditions and named by B's id, as its sound, broker
    link and audit trail alarms are."""

    def prepare(sid: str, data: Path) -> None:
        if sid == "ward-b":
            (data / BED_LIMITS_FILE).write_text("not the limits file\n")

    return prepare


def _forge(broker: Mosquitto, station: str, kind: str, doc: dict[str, object]) -> None:
    topic = f"healthcare/station/{station}/{kind}"
    publish(broker, FORGER, [json.dumps(doc).encode()], topic=topic)


def _alarm(screen: State, **fields: object) -> dict[str, Any] | None:
    for alarm in screen["alarms"]:
        if all(alarm.get(k) == v for k, v in fields.items()):
            assert isinstance(alarm, dict)
            return alarm
    return None


def _records(data: Path, action: str) -> list[State]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["action"] == action]


def test_only_a_listed_peers_signed_acknowledgement_is_applied_never_to_own_technical_alarms(
    mosquitto: Mosquitto,
    listener: WardListener,  # noqa: F811
    stations: dict[str, StationProcess],  # noqa: F811
    ward_keys: dict[str, Ed25519PrivateKey],  # noqa: F811
    tmp_path: Path,
) -> None:
    a, b = stations["ward-a"], stations["ward-b"]
    now = time.time()
    publish(mosquitto, DEVICE, [vitals(DEVICE, at=now - 2 + i, heartrate=170) for i in range(3)])

    # Both stations raise Bed 1's HR alarm under one id (same message, same device time).
    seen_a = a.screen_until(lambda s: bool(_alarm(s, parameter="heartrate")), "HR alarm", 15)
    hr = _alarm(seen_a, parameter="heartrate")
    assert hr is not None
    hr_id = hr["alarm_id"]
    seen_b = b.screen_until(lambda s: bool(_alarm(s, alarm_id=hr_id)), "HR alarm at B", 15)
    own = _alarm(seen_b, parameter="bed_limits", device="")
    assert own is not None, seen_b["alarms"]
    assert _alarm(a.ask("state"), alarm_id=own["alarm_id"]) is None  # B's alone

    # What A published of the HR alarm, signed by A: the forgeries start from it.
    wait_until(lambda: bool(listener.find("ward-a", "alarms", alarm_id=hr_id)), 10, "A's event")
    (raised,) = listener.find("ward-a", "alarms", alarm_id=hr_id, state="active")
    assert raised["station"] == "ward-a"
    assert raised["sig"]
    ack = {**unsealed(raised), "state": "acknowledged", "by": "mallory"}
    stranger = Ed25519PrivateKey.generate()
    _forge(mosquitto, "ward-a", "alarms", ack)  # unsigned, on A's topic
    _forge(mosquitto, "ward-a", "alarms", seal(ack, "ward-a", stranger))  # not A's key
    _forge(mosquitto, "ward-z", "alarms", seal(ack, "ward-z", stranger))  # on no list
    # Signed with A's real key (a trusted peer, or its key stolen): B's own technical alarm.
    own_ack = {
        "alarm_id": own["alarm_id"],
        "device_id": "",
        "bed": "",
        "kind": "technical",
        "parameter": "bed_limits",
        "state": "acknowledged",
        "by": "mallory",
    }
    _forge(mosquitto, "ward-a", "alarms", seal(own_ack, "ward-a", ward_keys["ward-a"]))
    # And an unsigned ward event in A's name: Bed 1's high HR limit pushed out of the way.
    limits = {"heartrate": {"low": 30, "high": 250, "priority": "low"}}
    change = limits_change_event("00112233aabbccdd", BED, {}, None, "mallory", now)
    _forge(mosquitto, "ward-a", "ward", {**change, "limits": limits})

    refusals = {
        "alarm:unsigned": 1,
        "alarm:wrong_key": 1,
        "alarm:not_a_peer": 1,
        "alarm:own_alarm": 1,
        "unsigned": 1,
    }
    after = b.screen_until(lambda s: s["peer_refused"] == refusals, "every forgery refused", 15)
    for alarm_id in (hr_id, own["alarm_id"]):
        still = _alarm(after, alarm_id=alarm_id)
        assert still is not None
        assert (still["state"], still["by"]) in {("active", None), ("escalated", None)}
    assert "250" not in after["tiles"][BED]
    assert after["limits"][BED]["source"] == "ward"

    # The nurse at A acknowledges: B applies it, in her name at A.
    a.ask("ack", alarm_id=hr_id)
    b.screen_until(
        lambda s: (_alarm(s, alarm_id=hr_id) or {}).get("by") == f"{NURSE}@ward-a",
        "A's acknowledgement at B",
        10,
    )
    assert b.ask("state")["peer_refused"] == refusals

    for proc in stations.values():
        assert proc.stop() == 0, proc.tail()
    data_b = tmp_path / "ward-b"
    (ack_b,) = _records(data_b, "alarm.acknowledge")
    assert (ack_b["actor"], ack_b["role"]) == (f"{NURSE}@ward-a", "peer")
    assert (ack_b["details"]["alarm_id"], ack_b["details"]["via"]) == (hr_id, "ward-a")
    # One record a minute per peer: A's first refusal, and ward-z's; the rest counted.
    refused = {
        (r["target"], r["details"]["reason"]) for r in _records(data_b, "alarm.peer_refused")
    }
    assert refused == {("ward-a", "unsigned"), ("ward-z", "not_a_peer")}
    (ward_refused,) = _records(data_b, "ward.peer_refused")
    assert (ward_refused["target"], ward_refused["details"]["reason"]) == ("ward-a", "unsigned")
    assert _records(data_b, "alarm.limits_change") == []
    verify = subprocess.run(
        [sys.executable, "-m", "station", "audit", "verify", str(data_b / "audit")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
