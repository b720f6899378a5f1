"""One ADT message from frame to ACK on the listener's thread: an AA only once the admission
path answered, an AE or AR with the reason otherwise, no ACK when no answer comes in time (the
engine resends, and the resend gets the answer that came meanwhile, never a second change);
every message audited under the interface's actor without a name, MRN or birth date.

The admission path here is a stand-in that plans against an in-memory table (the real one, on
the GUI thread and the ward admin's worker, is in the Qt and integration tests).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from station.domain.adt.ack import Sender
from station.domain.adt.beds import BedMap
from station.domain.adt.feed import Received
from station.domain.adt.framing import Oversized
from station.domain.adt.parsing import Receiver
from station.domain.adt.planning import Admit, Nothing, plan
from station.domain.adt.requests import ErrorCode, PlacedRequest, Refusal, content_error
from station.domain.patients.table import PatientTable
from station.domain.roles import INTERFACE_ROLE
from station.domain.ward import bed_labels
from station.services.hospital import adt_handling
from station.services.hospital.adt_handling import AdtHandler, Applied, NotNow, Pending
from tests.fakes import RecordingAudit
from tests.unit.test_adt_messages import STATION_APP, adt, loose

T0 = 1_700_000_000.0
IDENTITY = ("Vandersloot", "Ottilie", "MRN-4711", "1950")


@dataclass
class Path:
    """The admission path, answering at once from an in-memory table (or never, or with a
    given answer)."""

    table: PatientTable = field(default_factory=PatientTable)
    answer: Applied | Refusal | NotNow | None = None
    silent: bool = False
    asked: list[PlacedRequest] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    journal: list[Received] = field(default_factory=list)

    def apply(self, placed: PlacedRequest) -> Pending:
        self.asked.append(placed)
        pending = Pending()
        self.pending.append(pending)
        if self.silent:
            return pending
        if self.answer is not None:
            pending.settle(self.answer)
            return pending
        try:
            step = plan(placed, self.table)
        except Refusal as refusal:
            pending.settle(refusal)
            return pending
        if isinstance(step, Admit):
            p = self.table.admit(
                step.bed, name=step.name, mrn=step.mrn, birth_date=step.birth_date,
                by=placed.actor, at=T0,
            )  # fmt: skip
            pending.settle(Applied(f"admitted to {step.bed}", p.patient_id, step.bed))
        else:
            assert isinstance(step, Nothing)
            pending.settle(Applied(step.reason, step.patient, step.bed, changed=False))
        return pending

    def report(self, entry: Received) -> None:
        self.journal.append(entry)


@dataclass
class Rig:
    handler: AdtHandler
    path: Path
    audit: RecordingAudit
    stopping: list[bool]

    def send(self, text: str, peer: str = "127.0.0.1") -> Any:
        reply = self.handler.handle(text.encode("utf-8"), peer)
        if reply is None:
            return None
        return parse_message(reply.decode(), validation_level=VALIDATION_LEVEL.QUIET)

    def received(self) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["action"] == "adt.received"]


def rig(name: str = "", timeout: float = 0.3) -> Rig:
    path, audit, stopping = Path(), RecordingAudit(), [False]
    handler = AdtHandler(
        receiver=Receiver(STATION_APP, "ICU", "P"),
        sender=Sender(STATION_APP, "ICU"),
        beds=BedMap(bed_labels(4)),
        admissions=path,
        audit=audit,
        name=name,
        reply_timeout_s=timeout,
        wall=lambda: T0,
        monotonic=time.monotonic,
        stopping=lambda: stopping[0],
    )
    return Rig(handler, path, audit, stopping)


def no_identity(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    written = repr(rig.audit.records) + repr(rig.path.journal) + caplog.text
    for part in IDENTITY:
        assert part not in written


def test_an_admission_is_acked_aa_and_audited_under_the_interface(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    r = rig()
    ack = r.send(adt("A01", control_id="C-1", bed=("ICU", "101", "2")))
    assert (ack.msa.msa_1.to_er7(), ack.msa.msa_2.to_er7()) == ("AA", "C-1")
    patient = r.path.table.occupant("Bed 2")
    assert patient is not None
    assert patient.admitted_by == "adt:HOSP"
    [record] = r.received()
    assert (record["actor"], record["role"], record["target"], record["outcome"]) == (
        "adt:HOSP",
        INTERFACE_ROLE,
        "Bed 2",
        "success",
    )
    details = record["details"]
    assert (details["event"], details["control_id"], details["ack"], details["outcome"]) == (
        "A01",
        "C-1",
        "AA",
        "applied",
    )
    assert details["patient"] == patient.patient_id
    assert r.path.journal[0].patient == patient.patient_id
    no_identity(r, caplog)


def test_the_configured_name_is_the_actor() -> None:
    r = rig(name="HIS-1")
    r.send(adt("A01"))
    assert r.received()[0]["actor"] == "adt:HIS-1"


def test_a_resend_gets_the_same_answer_without_a_second_change() -> None:
    r = rig()
    text = adt("A01", control_id="C-2")
    first, again = r.send(text), r.send(text)
    assert first.msa.msa_1.to_er7() == again.msa.msa_1.to_er7() == "AA"
    assert len(r.path.asked) == 1
    assert [e.outcome for e in r.path.journal] == ["applied", "duplicate"]


def test_a_control_id_used_for_another_message_is_refused() -> None:
    r = rig()
    r.send(adt("A01", control_id="C-3"))
    ack = r.send(adt("A03", control_id="C-3"))
    assert ack.msa.msa_1.to_er7() == "AR"
    assert ack.err.err_3.cwe_1.to_er7() == str(int(ErrorCode.DUPLICATE_KEY))
    assert len(r.path.asked) == 1


def test_a_refusal_is_an_ae_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    r = rig()
    r.path.answer = content_error(ErrorCode.INTERNAL_ERROR, "Bed 1 is occupied", "PV1^1^3")
    ack = r.send(adt("A01"))
    assert ack.msa.msa_1.to_er7() == "AE"
    assert ack.err.err_8.to_er7() == "Bed 1 is occupied"
    [record] = r.received()
    assert record["outcome"] == "failure"
    assert record["details"]["reason"] == "Bed 1 is occupied"
    assert r.path.journal[0].ack == "AE"
    no_identity(r, caplog)


def test_no_answer_in_time_sends_no_ack_and_the_resend_gets_the_late_answer() -> None:
    r = rig(timeout=0.2)
    r.path.silent = True
    text = adt("A01", control_id="C-4")
    started = time.monotonic()
    assert r.send(text) is None
    assert time.monotonic() - started < 2
    assert r.path.journal[-1].outcome == "no reply"
    assert r.received()[-1]["details"]["ack"] == "none"
    r.path.pending[0].settle(Applied("admitted to Bed 1", "p" * 32, "Bed 1"))
    ack = r.send(text)
    assert ack.msa.msa_1.to_er7() == "AA"
    assert len(r.path.asked) == 1


def test_a_stopping_station_sends_no_ack() -> None:
    r = rig(timeout=5)
    r.path.silent = True
    r.stopping[0] = True
    started = time.monotonic()
    assert r.send(adt("A01")) is None
    assert time.monotonic() - started < 1
    r2 = rig()
    r2.path.answer = NotNow("the station is stopping")
    assert r2.send(adt("A01")) is None


def test_garbage_and_an_oversized_message_get_an_ar() -> None:
    r = rig()
    ack = r.send("GET / HTTP/1.1")
    assert ack.msa.msa_1.to_er7() == "AR"
    head = adt("A01", control_id="BIG-1").encode()
    reply = r.handler.handle(Oversized(head, 10_000_000), "127.0.0.1")
    assert reply is not None
    big = parse_message(reply.decode(), validation_level=VALIDATION_LEVEL.QUIET)
    assert (big.msa.msa_1.to_er7(), big.msa.msa_2.to_er7()) == ("AR", "BIG-1")
    assert "KiB" in big.err.err_8.to_er7()
    assert r.path.asked == []


def test_an_event_the_station_does_not_read_is_acked_and_ignored() -> None:
    r = rig()
    msg = loose(adt("A01"))
    msg.msh.msh_9 = "ADT^A31^ADT_A05"
    ack = r.send(msg.to_er7())
    assert ack.msa.msa_1.to_er7() == "AA"
    assert r.path.asked == []
    assert r.path.journal[0].outcome == "no change"


def test_a_malformed_message_is_an_ae_naming_the_field_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = rig()
    ack = r.send(adt("A01", born="1950"))
    assert ack.msa.msa_1.to_er7() == "AE"
    assert ack.err.err_2.to_er7() == "PID^1^7"
    assert r.path.asked == []
    assert r.path.table.active() == ()
    no_identity(r, caplog)


def test_a_message_for_another_receiver_is_refused() -> None:
    r = rig()
    ack = r.send(adt("A01", receiving=("LAB", "ICU")))
    assert ack.msa.msa_1.to_er7() == "AR"
    assert ack.err.err_2.to_er7() == "MSH^1^5"


def test_a_fault_in_the_handler_is_answered_ae_207_audited_and_journalled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug must not stall the feed unseen (no ACK: the engine resends forever): the engine
    gets AE 207, the trail and the admin's journal (hence the alarm) say ``fault``."""
    r = rig()

    def broken(placed: PlacedRequest) -> Pending:
        raise RuntimeError(f"bug quoting {placed.request.person.mrn}")

    r.path.apply = broken  # type: ignore[method-assign]
    ack = r.send(adt("A01", control_id="C-F"))
    assert (ack.msa.msa_1.to_er7(), ack.msa.msa_2.to_er7()) == ("AE", "C-F")
    assert ack.err.err_3.cwe_1.to_er7() == str(int(ErrorCode.INTERNAL_ERROR)) == "207"
    [record] = r.received()
    assert record["outcome"] == "failure"
    assert (record["details"]["ack"], record["details"]["outcome"]) == ("AE", "fault")
    assert "RuntimeError" in record["details"]["reason"]
    [entry] = r.path.journal
    assert (entry.event, entry.control_id) == ("A01", "C-F")
    assert (entry.ack, entry.outcome) == ("AE", "fault")
    assert "RuntimeError" in caplog.text
    no_identity(r, caplog)


def test_a_fault_before_the_header_is_read_is_journalled_without_an_ack(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(frame: bytes) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(adt_handling, "decode", broken)
    r = rig()
    assert r.send(adt("A01")) is None  # an ACK without MSA-2 would match nothing
    [record] = r.received()
    assert (record["details"]["ack"], record["details"]["outcome"]) == ("none", "fault")
    [entry] = r.path.journal
    assert (entry.ack, entry.outcome) == ("", "fault")
    assert "RuntimeError" in caplog.text


def test_a_fault_that_cannot_even_be_recorded_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = rig()

    def failing(action: str, **fields: Any) -> None:
        raise OSError("trail gone")

    r.audit.record = failing  # type: ignore[method-assign]
    assert r.send(adt("A01")) is None
    assert "OSError" in caplog.text


@pytest.mark.parametrize("field", [9, 11, 12])
def test_header_values_quoted_in_a_refusal_cannot_forge_log_lines(
    field: int, caplog: pytest.LogCaptureFixture
) -> None:
    """MSH-9, 11 and 12 are quoted in the refusal's reason; what breaks a line in one (NEL,
    LINE SEPARATOR, VT; hl7apy cuts a field at LF itself) or drives a terminal (ESC) must not
    reach the log line."""
    text = adt("A01", control_id="C-L")
    msh, rest = text.split("\r", 1)
    fields = msh.split("|")
    fields[field - 1] = "X9\x85FORGED\u2028line\x1b[2K\x0bend"
    r = rig()
    ack = r.send("|".join(fields) + "\r" + rest)
    assert ack.msa.msa_1.to_er7() == "AR"
    [refused] = [rec for rec in caplog.records if "C-L" in rec.getMessage()]
    said = refused.getMessage()
    assert "X9FORGEDline[2Kend" in said  # quoted, on the same line
    assert len(said.splitlines()) == 1
