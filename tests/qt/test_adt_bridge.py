"""pytest-qt: the ADT feed's way into the admission path. A request handed over from another
thread (as the listener hands it) is applied by the same WardAdmin the dialogs use, on its
worker, against the saved table, audited under ``adt:<facility>`` in role ``interface``, and
answered only once saved; a refusal changes nothing. The bridge keeps the census for the admit
dialog and the journal, and raises the "ADT message refused" alarm until an admin has seen it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import from_mapping
from station.domain.adt.beds import BedMap
from station.domain.adt.feed import AdtFeed, Received
from station.domain.adt.parsing import Receiver, check_header, parse_request, read_header
from station.domain.adt.requests import PlacedRequest, Refusal
from station.domain.roles import INTERFACE_ROLE
from station.presenters.adt_admissions import AdtAdmissions
from station.presenters.ward_admin import WardAdmin
from station.services.hospital.adt_handling import Answer, Applied, NotNow, Pending
from tests.fakes import FakeClock
from tests.unit.test_adt_messages import adt

MRN, NAME = "MRN-4711", "Ottilie Vandersloot"
ACTOR = "adt:HOSP"


@dataclass
class Audit:
    records: list[dict[str, Any]] = field(default_factory=list)
    fault: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, action: str, **fields: Any) -> None:
        with self._lock:
            self.records.append({"action": action, **fields})

    def of(self, prefix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if r["action"].startswith(prefix)]


@dataclass
class Bridge:
    ward: WardAdmin
    bridge: AdtAdmissions
    feed: AdtFeed
    audit: Audit
    alarms: list[tuple[bool, str]]
    qtbot: QtBot
    point_of_care: tuple[str, ...] = ()

    def send(self, event: str, **fields: Any) -> Answer:
        """Read ``event`` as the listener does, hand it over from a thread of its own, and wait
        (on the GUI thread's event loop) for the answer."""
        text = adt(event, **fields)
        header = read_header(text)
        kind = check_header(header, Receiver())
        assert kind is not None
        request = parse_request(text, header, kind)
        beds = BedMap(self.ward.beds, self.point_of_care)
        placed = PlacedRequest(
            request, beds.place(request.location), beds.place(request.prior), ACTOR
        )
        handed: list[Pending] = []
        listener = threading.Thread(target=lambda: handed.append(self.bridge.apply(placed)))
        listener.start()
        listener.join(5)
        [pending] = handed
        answer: list[Answer | None] = [None]

        def settled() -> bool:
            answer[0] = pending.wait(0)
            return answer[0] is not None

        self.qtbot.waitUntil(settled, timeout=5000)
        assert answer[0] is not None
        return answer[0]

    def bed_of(self, mrn: str = MRN) -> str | None:
        return next((p.bed for p in self.ward.table.active() if p.mrn == mrn), None)


@pytest.fixture
def rig(qtbot: QtBot, tmp_path: Path) -> Iterator[Bridge]:
    settings = from_mapping({"station": {"data_dir": str(tmp_path)}, "ward": {"beds": 4}})
    clock = FakeClock(tick=1.0)
    audit = Audit()
    ward = WardAdmin(settings, audit, clock=clock)
    feed = AdtFeed.empty()
    ward.adt_feed = feed
    alarms: list[tuple[bool, str]] = []
    bridge = AdtAdmissions(ward, feed, lambda on, text: alarms.append((on, text)), wall=clock)
    yield Bridge(ward, bridge, feed, audit, alarms, qtbot)
    assert ward.stop(5.0)


def test_admit_transfer_discharge_as_the_dialog_with_the_interface_named(rig: Bridge) -> None:
    with rig.qtbot.waitSignal(rig.ward.policy_changed, timeout=5000):
        admitted = rig.send("A01", bed=("ICU", "101", "1"))
    assert isinstance(admitted, Applied)
    assert admitted.bed == "Bed 1"
    assert rig.bed_of() == "Bed 1"
    patient = rig.ward.occupant("Bed 1")
    assert patient is not None
    assert (patient.name, patient.birth_date, patient.admitted_by) == (
        NAME,
        date(1950, 1, 2),
        ACTOR,
    )
    assert rig.ward.consents(patient) == ()  # consent is asked at the bedside, never assumed
    moved = rig.send("A02", bed=("ICU", "101", "3"), prior=("ICU", "101", "1"))
    assert isinstance(moved, Applied)
    assert rig.bed_of() == "Bed 3"
    assert rig.ward.occupant("Bed 1") is None
    left = rig.send("A03", bed=("ICU", "101", "3"))
    assert isinstance(left, Applied)
    assert rig.bed_of() is None
    assert rig.ward.policy()["Bed 3"].standby
    changes = rig.audit.of("patient.")
    assert [r["action"] for r in changes] == [
        "patient.admit",
        "patient.transfer",
        "patient.discharge",
    ]
    assert {(r["actor"], r["role"]) for r in changes} == {(ACTOR, INTERFACE_ROLE)}
    assert {r["details"]["patient"] for r in changes} == {patient.patient_id}


def test_corrections_and_cancels_through_the_same_path(rig: Bridge) -> None:
    rig.send("A01", bed=("ICU", "101", "2"))
    assert isinstance(rig.send("A08", family="Vander-Sloot", bed=None), Applied)
    patient = rig.ward.occupant("Bed 2")
    assert patient is not None
    assert patient.name == "Ottilie Vander-Sloot"
    rig.send("A02", bed=("ICU", "101", "4"))
    assert isinstance(rig.send("A12", bed=("ICU", "101", "2")), Applied)
    assert rig.bed_of() == "Bed 2"
    assert isinstance(rig.send("A03", bed=("ICU", "101", "2")), Applied)
    assert rig.bed_of() is None
    assert isinstance(rig.send("A13", bed=None), Applied)
    assert rig.bed_of() == "Bed 2"
    refused = rig.send("A11")  # a transfer was made (and cancelled) since the admission
    assert isinstance(refused, Refusal)
    assert rig.bed_of() == "Bed 2"
    assert [r["action"] for r in rig.audit.of("patient.")] == [
        "patient.admit",
        "patient.identity_update",
        "patient.transfer",
        "patient.transfer_cancel",
        "patient.discharge",
        "patient.discharge_cancel",
    ]


def test_a_cancelled_admission_ends_the_stay(rig: Bridge) -> None:
    rig.send("A01", bed=("ICU", "101", "1"))
    assert isinstance(rig.send("A11", bed=("ICU", "101", "1")), Applied)
    assert rig.bed_of() is None
    assert rig.audit.of("patient.")[-1]["action"] == "patient.admit_cancel"


def test_a_conflict_is_refused_and_changes_nothing(rig: Bridge) -> None:
    rig.send("A01", mrn="MRN-1", bed=("ICU", "101", "1"))
    before = rig.ward.table.to_dict()
    refused = rig.send("A01", mrn="MRN-2", bed=("ICU", "101", "1"))
    assert isinstance(refused, Refusal)
    assert refused.ack == "AE"
    assert "Bed 1 is occupied" in refused.reason
    assert rig.ward.table.to_dict() == before
    assert len(rig.audit.of("patient.")) == 1


def test_the_census_keeps_what_the_feed_announced_for_this_ward(rig: Bridge) -> None:
    rig.point_of_care = ("ICU",)
    rig.send("A05", mrn="MRN-5", bed=("ICU", "101", "2"))
    rig.send("A04", mrn="MRN-6", bed=("ER", "1", "1"))  # another unit's
    rig.send("A01", mrn="MRN-7", bed=("ICU", "101", "3"))
    assert [w.mrn for w in rig.feed.census.find("")] == ["MRN-7", "MRN-5"]
    assert rig.feed.census.find("MRN-5")[0].bed == "Bed 2"
    rig.send("A03", mrn="MRN-7")
    assert [w.mrn for w in rig.feed.census.find("")] == ["MRN-5"]


def test_a_refusal_raises_the_alarm_until_an_admin_has_seen_it(rig: Bridge) -> None:
    entry = Received(1.0, "A02", "C-9", "Bed 3", "AE", "refused", "Bed 3 is occupied")
    with rig.qtbot.waitSignal(rig.bridge.changed, timeout=5000):
        threading.Thread(target=rig.bridge.report, args=(entry,)).start()
    assert rig.feed.journal.entries() == (entry,)
    [(present, message)] = rig.alarms
    assert present
    assert "A02" in message
    assert "Bed 3 is occupied" in message
    rig.feed.seen()
    assert rig.alarms[-1] == (False, "")
    rig.feed.seen()
    assert len(rig.alarms) == 2  # ended once


def test_a_fault_raises_the_alarm_even_without_an_ack(rig: Bridge) -> None:
    """A message the station failed on and could not answer would otherwise be resent by the
    engine forever with nobody told."""
    entry = Received(1.0, "", "", "", "", "fault", "internal error at the station (KeyError)")
    with rig.qtbot.waitSignal(rig.bridge.changed, timeout=5000):
        threading.Thread(target=rig.bridge.report, args=(entry,)).start()
    [(present, message)] = rig.alarms
    assert present
    assert "internal error at the station" in message


def test_the_listeners_state_reaches_the_feed(rig: Bridge) -> None:
    with rig.qtbot.waitSignal(rig.bridge.changed, timeout=5000):
        rig.bridge.listening("not listening", "port 2576 in use")
    assert rig.feed.state == "not listening: port 2576 in use"


def test_a_stopping_ward_admin_is_no_answer_yet(rig: Bridge) -> None:
    assert rig.ward.stop(5.0)
    answer = rig.send("A01")
    assert isinstance(answer, NotNow)
    assert rig.bed_of() is None
