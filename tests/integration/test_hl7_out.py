"""HL7 v2 out (issue 18, point 1): a real station process, a real Mosquitto, and a real MLLP peer
(``servers/mllp_peer.py``, its own process, built on hl7apy's MLLP server and validating every
message with its strict HL7 2.6 validation).

Scripted session (observations off: only alarms travel, so every message is one the test caused):

1. Bed 1's HR goes high: the raise reaches the peer; the nurse acknowledges it: the
   acknowledgement reaches it, naming her.
2. The peer stops. Bed 2's HR goes low: queued, retried; after ``down_alarm_s`` the station raises
   its ``hl7`` technical alarm. The peer starts again: the raise arrives, the alarm clears; Bed 2's
   alarm escalates unacknowledged, and that arrives too.
3. The peer falls silent. The nurse acknowledges Bed 2: the message reaches the peer, unanswered,
   again and again, and the ``hl7`` alarm is raised again; the station is SIGKILLed. The peer
   answers again; the restarted station sends the acknowledgement again under the same control
   id, and it is accepted.
4. The peer refuses a new alarm's raise (``AE``): quarantined and audited (``hl7.rejected``), never
   sent again; then it answers another's ``AR`` (its application unavailable for a moment): that
   one is tried again, not quarantined, and accepted once the peer accepts again; the first one's
   clear is accepted.

At the end every alarm change in the station's alarm store reached the peer and was accepted
exactly once or refused exactly once, every message validated, connection changes were audited
once per change, and the outbox is owner-only.

A second test runs a station in this process (the ward admin's admissions and consents are made
as the dialogs make them) with observation summaries on: identity goes out only with export
consent, observations only with storage consent, never for an empty bed; alarms always, by
identity, pseudonym or bed.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import stat
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytestqt.qtbot import QtBot

from station.domain.hl7.text import control_id
from station.domain.patients.records import Purpose
from station.services.hospital import hl7_collector
from tests.integration.mllp_fixtures import MllpPeer, mllp_peer  # noqa: F401 (fixture)
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import (
    ensure_accounts,
    publish,
    running_station,
    station_settings,
)
from tests.integration.test_two_stations import NURSE, START_S, State, StationProcess
from tests.payloads import vitals
from tests.waiting import wait_until

STATION = "ward-hl7"
BED_1, BED_2 = "Bed 1", "Bed 2"
DOWN_ALARM_S = 3.0
ESCALATE_S = 10
DEVICES = {"monitor-a": 1, "monitor-b": 2, "monitor-c": 3, "monitor-d": 4}
PERIOD_S = 10


@pytest.fixture
def mosquitto_devices() -> tuple[str, ...]:
    return tuple(DEVICES)


def _config(broker: Mosquitto, data: Path, peer: MllpPeer) -> Path:
    settings = station_settings(broker, data, station={"id": STATION})
    ensure_accounts(settings, NURSE)
    path = data.parent / f"{STATION}.toml"
    path.write_text(
        f"""
[station]
id = "{STATION}"
data_dir = "{data}"
[mqtt]
host = "localhost"
port = {broker.port}
tls = true
ca_file = "{broker.ca_file}"
username = "station"
[ward]
beds = 2
devices = {{ "monitor-a" = 1, "monitor-b" = 2 }}
[alarms]
no_data_s = 600
escalate_after_s = {ESCALATE_S}
[hl7]
enabled = true
host = "127.0.0.1"
port = {peer.port}
observations = "off"
ack_timeout_s = 1.0
retry_max_s = 1.0
down_alarm_s = {DOWN_ALARM_S}
""",
        encoding="utf-8",
    )
    return path


def _start(config: Path, log: Path, broker: Mosquitto, key: Ed25519PrivateKey) -> StationProcess:
    station = StationProcess(STATION, config, log, broker, key)
    station.screen_until(lambda s: s["user"] == NURSE and s["connected"], "station up", START_S)
    return station


def _heart(broker: Mosquitto, device: str, rate: int) -> None:
    now = time.time()
    publish(broker, device, [vitals(device, at=now - 2 + i, heartrate=rate) for i in range(3)])


def _got(peer: MllpPeer, what: str, timeout: float = 15, **fields: object) -> dict[str, Any]:
    """The first message the peer logged with ``fields``, waiting for it."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [m for m in peer.received() if all(m.get(k) == v for k, v in fields.items())]
        return bool(found)

    wait_until(seen, timeout, what)
    return found[0]


def _technical(screen: State, parameter: str) -> bool:
    return any(a["parameter"] == parameter and a["state"] != "cleared" for a in screen["alarms"])


def _records(data: Path, *actions: str) -> list[dict[str, Any]]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["action"] in actions]


def _expected(data: Path) -> dict[str, tuple[str, str]]:
    """Control id → (alarm, event) of every change the alarm store holds for a bed."""
    conn = sqlite3.connect(f"file:{data / 'alarms.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT alarm_id, acknowledged_at, escalated_at, cleared_at FROM episodes"
            " WHERE bed != ''"
        ).fetchall()
    finally:
        conn.close()
    out = {}
    for alarm_id, acked, escalated, cleared in rows:
        events = ["raise"]
        events += ["escalate"] * (escalated is not None)
        events += ["acknowledge"] * (acked is not None)
        events += ["clear"] * (cleared is not None)
        for event in events:
            out[control_id(STATION, "R40", alarm_id, event)] = (alarm_id, event)
    return out


def test_every_alarm_change_reaches_the_engine_once_across_peer_restart_and_station_kill(
    mosquitto: Mosquitto,
    mllp_peer: MllpPeer,  # noqa: F811 (the fixture, imported)
    tmp_path: Path,
) -> None:
    peer = mllp_peer
    data = tmp_path / STATION
    config = _config(mosquitto, data, peer)
    key = Ed25519PrivateKey.generate()
    log = tmp_path / "station.log"
    station = _start(config, log, mosquitto, key)
    try:
        # 1. A raise and its acknowledgement, with who.
        _heart(mosquitto, "monitor-a", 170)
        raised_1 = _got(peer, "Bed 1's raise", bed=BED_1, phase="start", answered="AA")
        assert raised_1["pid3"] == ["UNKNOWN"]  # nobody admitted: the bed only
        assert raised_1["obx"][0]["flags"] == ["H", "PH", "SP"]
        station.ask("ack", alarm_id=raised_1["alarm_id"])
        acked_1 = _got(
            peer,
            "Bed 1's acknowledgement",
            alarm_id=raised_1["alarm_id"],
            phase="update",
            answered="AA",
        )
        assert (acked_1["by"], acked_1["inactivation"]) == (NURSE, "alert-acknowledged")

        # 2. The engine down: queued, retried, a technical alarm; back: delivered, cleared.
        peer.stop()
        _heart(mosquitto, "monitor-b", 30)
        station.screen_until(lambda s: _technical(s, "hl7"), "the hl7 alarm", DOWN_ALARM_S + 10)
        peer.start()
        raised_2 = _got(peer, "Bed 2's raise", bed=BED_2, phase="start", answered="AA")
        station.screen_until(lambda s: not _technical(s, "hl7"), "hl7 alarm cleared", 10)
        _got(
            peer,
            "Bed 2's escalation",
            ESCALATE_S + 10,
            alarm_id=raised_2["alarm_id"],
            phase="escalate",
            answered="AA",
        )

        # 3. A silent engine, then the station killed: the acknowledgement is sent again.
        peer.answer("silent")
        station.ask("ack", alarm_id=raised_2["alarm_id"])
        unanswered = _got(
            peer,
            "Bed 2's acknowledgement, unanswered",
            alarm_id=raised_2["alarm_id"],
            phase="update",
            answered="silent",
        )
        # Retried (the same message), and after the down time the technical alarm.
        silent_alarm = DOWN_ALARM_S + 10
        station.screen_until(lambda s: _technical(s, "hl7"), "hl7 alarm, silent", silent_alarm)
        tries = [m for m in peer.received() if m["control_id"] == unanswered["control_id"]]
        assert len(tries) >= 2
        assert all(m["answered"] == "silent" for m in tries)
        os.kill(station.proc.pid, signal.SIGKILL)
        assert station.proc.wait(10) == -signal.SIGKILL
        peer.answer("AA")
        station = _start(config, log, mosquitto, key)
        again = _got(
            peer, "the acknowledgement again", control_id=unanswered["control_id"], answered="AA"
        )
        assert (again["by"], again["alarm_id"]) == (NURSE, raised_2["alarm_id"])

        # 4. Refused (AE): quarantined; not accepted for a moment (AR): tried again, then accepted.
        peer.answer("AE")
        _heart(mosquitto, "monitor-a", 170)
        refused_ae = _got(peer, "a raise refused (AE)", bed=BED_1, phase="start", answered="AE")
        peer.answer("AR")
        _heart(mosquitto, "monitor-b", 30)
        deferred = _got(peer, "a raise not accepted (AR)", bed=BED_2, phase="start", answered="AR")

        def tried_again() -> bool:
            answers = [m for m in peer.received() if m["control_id"] == deferred["control_id"]]
            return len(answers) >= 2

        wait_until(tried_again, 10, "the raise answered AR tried again")
        peer.answer("AA")
        _got(peer, "the raise accepted at last", control_id=deferred["control_id"], answered="AA")
        _heart(mosquitto, "monitor-a", 75)
        _got(
            peer,
            "the refused alarm's clear",
            alarm_id=refused_ae["alarm_id"],
            phase="end",
            answered="AA",
        )
    finally:
        code = station.stop()
    assert code == 0, station.tail()

    received = peer.received()
    invalid = [m for m in received if not m["valid"]]
    assert invalid == [], invalid
    answers = Counter((m["control_id"], m["answered"]) for m in received)
    accepted = {cid for cid, answer in answers if answer == "AA"}
    refused = {cid for cid, answer in answers if answer == "AE"}
    once = {"AA", "AE"}  # silent and AR answers are tried again
    assert all(n == 1 for (_cid, answer), n in answers.items() if answer in once), answers
    assert accepted.isdisjoint(refused)
    assert refused == {refused_ae["control_id"]}
    assert deferred["control_id"] in accepted
    expected = _expected(data)
    assert accepted | refused == set(expected), (sorted(expected.values()), answers)
    events = Counter(event for _alarm, event in expected.values())
    # Bed 2's last alarm may escalate too on a slow machine, before the station stops.
    assert (events["raise"], events["acknowledge"], events["clear"]) == (4, 2, 1)
    assert events["escalate"] in {1, 2}

    rejected = _records(data, "hl7.rejected")
    assert {(r["target"], r["details"]["code"]) for r in rejected} == {
        (refused_ae["control_id"], "AE"),
    }
    runs = _connection_states(data)
    assert len(runs) == 2  # the killed station and its successor
    assert "down" in runs[0]
    for states in runs:  # once per change, not per retry: every record differs from the last
        assert all(a != b for a, b in itertools.pairwise(states)), runs
    outbox = data / "hl7_outbox.sqlite"
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600


def _connection_states(data: Path) -> list[list[str]]:
    """The ``hl7.connection`` states each station process audited, process by process."""
    runs: list[list[str]] = []
    for record in _records(data, "station.start", "hl7.connection"):
        if record["action"] == "station.start":
            runs.append([])
        else:
            runs[-1].append(record["details"]["state"])
    return runs


def test_observations_and_identity_follow_admission_and_consent(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    mllp_peer: MllpPeer,  # noqa: F811 (the fixture, imported)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A period is summarised 1 s after its end, not 10: the test waits one period, not two.
    monkeypatch.setattr(hl7_collector, "SETTLE_S", 1.0)
    hl7 = {
        "enabled": True,
        "port": mllp_peer.port,
        "summary_period_s": PERIOD_S,
        "mrn_authority": "HOSP",
        "ack_timeout_s": 2.0,
    }
    settings = station_settings(
        mosquitto, tmp_path / "data", ward={"beds": 4, "devices": DEVICES}, hl7=hl7
    )
    with running_station(qtbot, mosquitto, settings, monkeypatch) as st:
        user = "nurse-test"
        admitted = {
            "Bed 1": ("Ada Example", "MRN-7", date(1961, 2, 3), (Purpose.STORAGE, Purpose.EXPORT)),
            "Bed 2": ("Bo Example", "MRN-8", date(1972, 5, 6), (Purpose.STORAGE,)),
            "Bed 3": ("Cy Example", "MRN-9", date(1983, 8, 9), ()),  # storage refused
        }  # Bed 4: nobody
        patients = {}
        for bed, (name, mrn, born, given) in admitted.items():
            patients[bed] = st.ward.admit_now(bed, name, mrn, born, user)
            for purpose in given:
                st.ward.record_consent_now(
                    patients[bed], purpose, granted=True, given_by="patient",
                    representative="", user=user,
                )  # fmt: skip
        # Three samples per bed inside one period, after the admissions, the last one alarming
        # (HR 130 > 120): early enough in a period that all three fall in it.
        qtbot.waitUntil(lambda: 0.5 < time.time() % PERIOD_S < PERIOD_S - 4, timeout=15_000)
        at = time.time() + 0.1
        for device, bed in DEVICES.items():
            rates = (70 + bed, 72 + bed, 130)
            payloads = [vitals(device, at=at + i * 0.2, heartrate=r) for i, r in enumerate(rates)]
            publish(mosquitto, device, payloads)
        ours = _got(mllp_peer, "Bed 1's observations", PERIOD_S + 15, bed="Bed 1",
                    type="ORU^R01^ORU_R01")  # fmt: skip
        theirs = _got(mllp_peer, "Bed 2's observations", 5, bed="Bed 2", type="ORU^R01^ORU_R01")
        alarms = {
            bed: _got(mllp_peer, f"{bed}'s alarm", 10, bed=bed, phase="start")
            for bed in ("Bed 1", "Bed 2", "Bed 3", "Bed 4")
        }
        assert st.links.status().startswith("HL7: ")
        pseudonym = {bed: p.patient_id for bed, p in patients.items()}

    # Export consent: identity (MRN under its authority, name, birth date) and the pseudonym.
    assert ours["pid3"] == ["MRN-7^^^HOSP^MR", f"{pseudonym['Bed 1']}^^^ward-test^PI"]
    assert (ours["pid5"], ours["pid7"]) == ("Ada Example^^^^^^L", "19610203")
    heart = [o for o in ours["obx"] if o["code"] == "147842"]
    assert heart == [
        {"code": "147842", "loinc": "8867-4", "value": "73", "unit": "/min",
         "device": "monitor-a", "by": "", "flags": []},
    ]  # fmt: skip  # the median of 71, 73, 130: the spike does not move it
    # Storage but no export consent: the pseudonym only, an unknown name, no birth date.
    assert theirs["pid3"] == [f"{pseudonym['Bed 2']}^^^ward-test^PI"]
    assert (theirs["pid5"], theirs["pid7"]) == ("^^^^^^U", "")
    # No observation for a refused storage consent, nor for an empty bed.
    received = mllp_peer.received()
    assert not [
        m for m in received if m["type"].startswith("ORU^R01") and m["bed"] in {"Bed 3", "Bed 4"}
    ]
    # Alarms always: by identity, pseudonym or bed.
    assert alarms["Bed 1"]["pid3"][0] == "MRN-7^^^HOSP^MR"
    assert alarms["Bed 3"]["pid3"] == [f"{pseudonym['Bed 3']}^^^ward-test^PI"]
    assert alarms["Bed 4"]["pid3"] == ["UNKNOWN"]
    assert all(m["valid"] for m in received), [m["error"] for m in received if not m["valid"]]
    # Identity never rests in the queue, nor in the audit trail's HL7 records.
    outbox = (tmp_path / "data" / "hl7_outbox.sqlite").read_bytes()
    for secret in (b"Ada Example", b"MRN-7", b"Bo Example", b"MRN-8"):
        assert secret not in outbox
    records = _records(tmp_path / "data", "hl7.connection", "hl7.rejected", "hl7.withheld")
    assert "Example" not in json.dumps(records)
    assert "MRN-" not in json.dumps(records)
    assert not [t for t in threading.enumerate() if t.name == "hl7-out"]
