"""The ``hl7-out`` thread end to end: the station's real stores, the outbox, a scripted engine on
loopback. Alarm changes arrive with identity only under export consent; a refused message is
quarantined and audited without identity, never sent again; ``AR``/``CE`` are tried again and
quarantined only after too many; a silent engine gets the same
message again and the ``hl7`` alarm after the down time, cleared when it answers; observations of
a patient who withdrew storage consent are withheld, and none leave while the patient table is
not known; a stop is prompt whatever the engine (or its DNS) does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from station.config.hl7_settings import Hl7Section
from station.domain.alarm_history import AlarmEpisode
from station.domain.alarms import AlarmKind, Priority
from station.domain.clock import StationClock
from station.domain.hl7.content import DeviceValues, Metric, ObservationReport
from station.domain.hl7.subjects import Identity, Subject, Subjects
from station.domain.patients.records import Stay
from station.services.hospital import hl7_mllp_client, hl7_sender
from station.services.hospital.hl7_outbox import OUTBOX_FILE, REJECTED, Outbox
from station.services.hospital.hl7_sender import THREAD, Hl7Sender
from station.services.hospital.hl7_sources import Sources
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.trends import TrendStore
from tests.unit.test_hl7_mllp_client import HangingDns, Peer
from tests.waiting import wait_until

ADA = Identity("Ada Example", "MRN-7", date(1961, 2, 3))


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.fault: str | None = None
        self._lock = threading.Lock()

    def record(self, action: str, **fields: Any) -> None:
        with self._lock:
            self.records.append((action, fields))

    def of(self, action: str) -> list[dict[str, Any]]:
        with self._lock:
            return [fields for a, fields in self.records if a == action]


class Conditions:
    def __init__(self) -> None:
        self.changes: list[tuple[str, bool]] = []

    def __call__(self, parameter: str, present: bool, _priority: str, _message: str) -> None:
        self.changes.append((parameter, present))


def _subjects(export: bool = True, storage: bool = True) -> Subjects:
    stay = Stay("Bed 1", time.time() - 3600, None)
    identity = ADA if export else None
    return Subjects((Subject("p1", (stay,), storage, export, identity),))


class Rig:
    """A data folder with the station's stores, a sender on it, and what it told."""

    def __init__(self, folder: Path, peer: Peer, **settings: Any) -> None:
        self.alarms = AlarmStore(folder / "alarms.sqlite")
        self.alarms.open()
        self.trends = TrendStore(folder / "trends.sqlite")
        self.trends.open()
        self.outbox_path = folder / OUTBOX_FILE
        self.audit = Audit()
        self.conditions = Conditions()
        values = {"enabled": True, "port": peer.port, "ack_timeout_s": 0.5, "retry_max_s": 1.0,
                  "down_alarm_s": 1.0, "observations": "off", **settings}  # fmt: skip
        self.sender = Hl7Sender(
            Hl7Section(**values),
            station_id="ward-1",
            outbox=Outbox(self.outbox_path),
            sources=Sources(self.alarms.path, self.trends.path),
            audit=self.audit,
            condition=self.conditions,
            clock=StationClock(),
        )

    def raise_alarm(self, alarm_id: str, bed: str = "Bed 1", **changes: Any) -> None:
        episode = AlarmEpisode(alarm_id, bed, "mon-1", AlarmKind.PHYSIOLOGICAL, "heartrate",
                               Priority.HIGH, "HR 150 > 120", time.time())  # fmt: skip
        self.alarms.save([replace(episode, **changes)])

    def stop(self) -> None:
        assert self.sender.stop(3.0), "hl7-out did not stop"
        self.alarms.close()
        self.trends.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


@pytest.fixture
def rig(tmp_path: Path, peer: Peer) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(**settings: Any) -> Rig:
        made.append(Rig(tmp_path, peer, **settings))
        return made[-1]

    yield make
    for r in made:
        r.stop()
    assert not [t for t in threading.enumerate() if t.name == THREAD]


def _started(rig: Rig, subjects: Subjects) -> Rig:
    rig.sender.set_subjects(subjects)
    rig.sender.start()
    wait_until(lambda: rig.sender.status() != "HL7: connecting", 5, "the first try")
    return rig


def _pid(message: str) -> list[str]:
    return next(s for s in message.split("\r") if s.startswith("PID|")).split("|")


def test_alarm_changes_go_out_with_identity_only_under_export_consent(
    rig: Callable[..., Rig], peer: Peer
) -> None:
    r = _started(rig(), _subjects(export=True))
    assert [t.name for t in threading.enumerate()].count(THREAD) == 1
    r.raise_alarm("a1")
    r.raise_alarm("a2", bed="Bed 2")  # nobody in Bed 2
    wait_until(lambda: len(peer.received) == 2, 10, "two raises")
    by_bed = {_pid(m)[3].split("^")[0]: m for m in peer.received}
    assert set(by_bed) == {"MRN-7", "UNKNOWN"}
    assert _pid(by_bed["MRN-7"])[5] == "Ada Example^^^^^^L"
    assert all(peer.valid)
    r.raise_alarm("a1", acknowledged_at=time.time(), acknowledged_by="ann")
    wait_until(lambda: len(peer.received) == 3, 10, "the acknowledgement")
    assert "|ann|" in peer.received[2]
    wait_until(lambda: r.sender.status() == "HL7: up", 5, "all sent")
    assert [f["details"]["state"] for f in r.audit.of("hl7.connection")] == ["up"]


def test_a_refused_message_is_quarantined_audited_without_identity_and_not_sent_again(
    rig: Callable[..., Rig], peer: Peer
) -> None:
    peer.mode = "AE"
    r = _started(rig(), _subjects(export=True))
    r.raise_alarm("a1")
    wait_until(lambda: bool(r.audit.of("hl7.rejected")), 10, "the refusal audited")
    (rejected,) = r.audit.of("hl7.rejected")
    details = rejected["details"]
    assert (details["code"], details["bed"], details["patient"], details["event"]) == (
        "AE", "Bed 1", "p1", "raise",
    )  # fmt: skip
    assert details["error_code"] == "207"
    assert "Ada" not in json.dumps(rejected)
    assert "MRN-7" not in json.dumps(rejected)
    peer.mode = "AA"
    r.raise_alarm("a2")
    wait_until(lambda: r.sender.status() == "HL7: up, 1 rejected", 10, "the next one accepted")
    assert len(peer.received) == 2
    outbox = Outbox(r.outbox_path)
    outbox.open()
    assert outbox.count(REJECTED) == 1
    outbox.close()


def test_a_silent_engine_gets_the_same_message_again_and_the_alarm_after_the_down_time(
    rig: Callable[..., Rig], peer: Peer
) -> None:
    peer.mode = "silent"
    r = _started(rig(), _subjects())
    r.raise_alarm("a1")
    wait_until(lambda: ("hl7", True) in r.conditions.changes, 10, "the hl7 alarm")
    wait_until(lambda: len(peer.received) >= 2, 10, "a second try")
    assert len(set(peer.received)) == 1  # the same message, the same control id
    assert r.sender.status().startswith("HL7: down")
    peer.mode = "AA"
    wait_until(lambda: ("hl7", False) in r.conditions.changes, 10, "the alarm cleared")
    states = [f["details"]["state"] for f in r.audit.of("hl7.connection")]
    assert states in (["up", "down", "up"], ["down", "up"])  # once per change, not per try


def _observation(cid: str, patient: str) -> ObservationReport:
    values = DeviceValues("mon-1", (Metric("heartrate", 70.0),), 1)
    now = time.time()
    return ObservationReport(cid, now, "Bed 1", patient, now - 60, now, (values,))


def test_observations_wait_for_a_known_table_and_go_only_with_storage_consent(
    rig: Callable[..., Rig], peer: Peer
) -> None:
    r = rig()
    queue = Outbox(r.outbox_path)
    queue.open()
    queue.add([_observation("o1", "p1"), _observation("o2", "p1"), _observation("o3", "p2")])
    queue.close()
    stay = Stay("Bed 2", time.time() - 3600, None)
    p2 = Subject("p2", (stay,), True, False)
    _started(r, Subjects((), known=False))  # the patient table could not be read
    holding = "HL7: up, 3 queued · observations held (patient table unreadable)"
    wait_until(lambda: r.sender.status() == holding, 5, "connected, holding")
    assert peer.received == []
    refused = Subject("p1", (Stay("Bed 1", time.time() - 3600, None),), False, True, ADA)
    r.sender.set_subjects(Subjects((refused, p2)))
    wait_until(lambda: len(peer.received) == 1, 10, "p2's observation")
    assert _pid(peer.received[0])[3] == "p2^^^ward-1^PI"
    wait_until(lambda: bool(r.audit.of("hl7.withheld")), 5, "the withholding audited")
    (withheld,) = r.audit.of("hl7.withheld")
    assert withheld["details"] == {"patient": "p1", "withheld": 2, "reason": "no storage consent"}
    wait_until(lambda: r.sender.status() == "HL7: up", 5, "nothing left")


def test_a_stop_is_prompt_while_waiting_on_a_silent_engine(
    rig: Callable[..., Rig], peer: Peer
) -> None:
    peer.mode = "silent"
    r = _started(rig(ack_timeout_s=60.0), _subjects())
    r.raise_alarm("a1")
    wait_until(lambda: len(peer.received) == 1, 10, "the message sent")
    started = time.monotonic()
    assert r.sender.stop(2.0)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("code", ["AR", "CE"])
def test_an_engine_not_accepting_for_a_moment_gets_the_message_again_not_quarantined(
    rig: Callable[..., Rig], peer: Peer, code: str
) -> None:
    peer.mode = code  # its application unavailable, or unable to commit: a short outage
    # An answer is awaited as long as a real engine's may take: the peer validates each message
    # strictly (hl7apy, ~0.1 s of CPU), and a loaded machine once took longer than the rig's
    # 0.5 s, which is a "down" this test is not about.
    r = _started(rig(ack_timeout_s=5.0), _subjects())
    r.raise_alarm("a1")
    wait_until(lambda: len(peer.received) >= 2, 10, "a second try")
    assert r.sender.status().startswith("HL7: not accepting")
    peer.mode = "AA"
    wait_until(lambda: r.sender.status() == "HL7: up", 10, "accepted at last")
    assert len(set(peer.received)) == 1  # the same message, the same control id
    assert r.audit.of("hl7.rejected") == []
    assert [f["details"]["state"] for f in r.audit.of("hl7.connection")] == ["up"]


def test_a_message_not_accepted_too_often_is_quarantined_and_the_engine_alarmed(
    rig: Callable[..., Rig], peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hl7_sender, "MAX_DEFERRALS", 3)
    peer.mode = "CE"
    r = _started(rig(), _subjects())
    r.raise_alarm("a1")
    wait_until(lambda: bool(r.audit.of("hl7.rejected")), 15, "quarantined after 3 answers")
    (rejected,) = r.audit.of("hl7.rejected")
    details = rejected["details"]
    assert (details["code"], details["reason"], details["attempts"]) == (
        "CE",
        "CE 3 times in a row",
        3,
    )
    assert len(peer.received) == 3
    assert ("hl7", True) in r.conditions.changes  # down_alarm_s (1 s) of not accepting
    peer.mode = "AA"
    r.raise_alarm("a2")
    wait_until(lambda: r.sender.status() == "HL7: up, 1 rejected", 10, "the next one accepted")
    assert ("hl7", False) in r.conditions.changes


def test_a_stop_is_prompt_while_the_engines_name_does_not_resolve(
    rig: Callable[..., Rig], peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = HangingDns(peer.port)
    monkeypatch.setattr(hl7_mllp_client, "lookup", dns)
    r = rig(host="engine.example", allow_plain_remote=True)
    try:
        r.sender.set_subjects(_subjects())
        r.sender.start()
        r.raise_alarm("a1")
        assert dns.asked.wait(10), "the name looked up"
        started = time.monotonic()
        assert r.sender.stop(2.0)
        assert time.monotonic() - started < 1.0
        assert not [t for t in threading.enumerate() if t.name == THREAD]
    finally:
        dns.done()


@pytest.mark.parametrize("mode", ["other", "echo", "garbage"])
def test_an_answer_that_is_not_this_messages_ack_leaves_it_queued(
    rig: Callable[..., Rig], peer: Peer, mode: str
) -> None:
    peer.mode = mode
    r = _started(rig(), _subjects())
    r.raise_alarm("a1")
    wait_until(lambda: ("hl7", True) in r.conditions.changes, 10, "the hl7 alarm")
    assert len(set(peer.received)) == 1  # tried again: the same message
    (down,) = [f for f in r.audit.of("hl7.connection") if f["details"]["state"] == "down"]
    assert down["details"]["reason"]
    peer.mode = "AA"
    wait_until(lambda: r.sender.status() == "HL7: up", 10, "sent at last")


def test_an_outbox_that_cannot_be_opened_is_a_fault_until_it_can(
    rig: Callable[..., Rig], peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hl7_sender, "FAULT_RETRY_S", 0.1)
    r = rig()
    r.outbox_path.mkdir()  # a folder where the file should be: SQLite cannot open it
    r.sender.set_subjects(_subjects())
    r.sender.start()
    wait_until(lambda: ("hl7_outbox", True) in r.conditions.changes, 5, "the outbox alarm")
    assert r.sender.status() == "HL7: fault"
    (fault,) = r.audit.of("hl7.fault")
    assert fault["details"]["part"] == "outbox"
    r.outbox_path.rmdir()
    wait_until(lambda: ("hl7_outbox", False) in r.conditions.changes, 5, "the outbox usable")
    r.raise_alarm("a1")
    wait_until(lambda: len(peer.received) == 1, 10, "then sent")


def test_a_full_outbox_is_said_with_a_technical_alarm_and_audited(
    rig: Callable[..., Rig], peer: Peer
) -> None:
    peer.mode = "silent"  # nothing drains
    r = rig(outbox_budget=100)
    queue = Outbox(r.outbox_path)
    queue.open()
    queue.add(_observation(f"o{n}", "p1") for n in range(200))  # the budget and its reserve
    queue.close()
    r.raise_alarm("a1")
    _started(r, _subjects())
    wait_until(lambda: ("hl7_outbox", True) in r.conditions.changes, 5, "the outbox alarm")
    (full,) = r.audit.of("hl7.outbox_full")
    assert full["details"] == {"state": "full", "queued": 200}
    assert r.sender.status().endswith("· outbox full")
