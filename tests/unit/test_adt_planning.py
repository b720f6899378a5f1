"""What each ADT event changes, decided against the patient table: the dialog's own changes, a
refusal with its reason (unknown bed, bed occupied, patient not found, conflicting state), or
nothing for a message already in force (a resend moves no one twice)."""

from __future__ import annotations

from datetime import date

import pytest

from station.domain.adt.beds import BedMap
from station.domain.adt.parsing import Receiver, check_header, parse_request, read_header
from station.domain.adt.planning import (
    CONFLICT,
    Admit,
    Correct,
    Discharge,
    Nothing,
    Readmit,
    Step,
    Transfer,
    plan,
)
from station.domain.adt.requests import (
    AdtRequest,
    ErrorCode,
    Event,
    Header,
    Location,
    Person,
    PlacedRequest,
    Refusal,
)
from station.domain.patients.table import PatientTable
from station.domain.ward import bed_labels
from tests.unit.test_adt_messages import adt

BEDS = bed_labels(4)
T0 = 1_700_000_000.0
MRN = "MRN-4711"
BORN = date(1950, 1, 2)
NAME = "Ottilie Vandersloot"


def placed(event: str, *, point_of_care: tuple[str, ...] = (), **fields: object) -> PlacedRequest:
    """An ADT message built with hl7apy, read and placed on the ward as the listener does."""
    text = adt(event, **fields)  # type: ignore[arg-type]
    header = read_header(text)
    kind = check_header(header, Receiver())
    assert kind is not None
    request = parse_request(text, header, kind)
    beds = BedMap(BEDS, point_of_care)
    return PlacedRequest(
        request, beds.place(request.location), beds.place(request.prior), "adt:HOSP"
    )


def ward(*admitted: tuple[str, str]) -> PatientTable:
    """A table with ``(bed, mrn)`` admitted at T0."""
    table = PatientTable()
    for n, (bed, mrn) in enumerate(admitted):
        table.admit(bed, name=f"Patient {n}", mrn=mrn, birth_date=BORN, by="nurse", at=T0)
    return table


def refused(step: PlacedRequest, table: PatientTable) -> Refusal:
    with pytest.raises(Refusal) as caught:
        plan(step, table)
    assert caught.value.ack == "AE"
    return caught.value


def test_a01_admits_to_a_free_bed() -> None:
    step = plan(placed("A01", bed=("ICU", "101", "2")), ward())
    assert isinstance(step, Admit)
    assert (step.bed, step.mrn, step.name, step.birth_date) == ("Bed 2", MRN, NAME, BORN)
    assert NAME not in repr(step)


def test_a01_again_for_the_same_bed_changes_nothing() -> None:
    step = plan(placed("A01", bed=("ICU", "101", "1")), ward(("Bed 1", MRN)))
    assert isinstance(step, Nothing)


@pytest.mark.parametrize(
    ("fields", "admitted", "code", "words"),
    [
        ({"bed": ("ICU", "101", "2")}, ("Bed 1", MRN), ErrorCode.DUPLICATE_KEY, "Bed 1"),
        ({"bed": ("ICU", "101", "1")}, ("Bed 1", "OTHER"), CONFLICT, "Bed 1 is occupied"),
        ({"bed": ("ICU", "101", "9")}, None, ErrorCode.TABLE_VALUE_NOT_FOUND, "ICU/101/9"),
        ({"bed": None}, None, ErrorCode.REQUIRED_FIELD_MISSING, "PV1-3"),
        ({"born": ""}, None, ErrorCode.REQUIRED_FIELD_MISSING, "PID-7"),
    ],
)
def test_a01_refusals(
    fields: dict[str, object], admitted: tuple[str, str] | None, code: ErrorCode, words: str
) -> None:
    table = ward(admitted) if admitted else ward()
    refusal = refused(placed("A01", **fields), table)
    assert refusal.code == code
    assert words in refusal.reason
    assert MRN not in refusal.reason


def test_a01_of_another_unit_is_not_this_wards() -> None:
    other = placed("A01", bed=("ER", "1", "1"), point_of_care=("ICU",))
    assert isinstance(plan(other, ward()), Nothing)
    assert refused(other, ward(("Bed 1", MRN))).code == CONFLICT


def test_a02_moves_the_patient_and_checks_where_they_were() -> None:
    table = ward(("Bed 1", MRN))
    step = plan(placed("A02", bed=("ICU", "101", "3"), prior=("ICU", "101", "1")), table)
    assert step == Transfer("Bed 1", "Bed 3")
    assert isinstance(plan(placed("A02", bed=("ICU", "101", "1")), table), Nothing)
    wrong = placed("A02", bed=("ICU", "101", "3"), prior=("ICU", "101", "2"))
    assert "PV1-6" in refused(wrong, table).reason
    full = ward(("Bed 1", MRN), ("Bed 3", "OTHER"))
    assert "Bed 3 is occupied" in refused(placed("A02", bed=("ICU", "101", "3")), full).reason


def test_a02_onto_the_ward_admits_and_off_the_ward_discharges() -> None:
    arriving = placed("A02", bed=("ICU", "101", "2"), prior=("ER", "1", "1"))
    assert isinstance(plan(arriving, ward()), Admit)
    leaving = placed("A02", bed=("WARD5", "1", "1"), point_of_care=("ICU",))
    assert plan(leaving, ward(("Bed 1", MRN))) == Discharge("Bed 1")
    assert isinstance(plan(leaving, ward()), Nothing)


def test_a03_discharges_once() -> None:
    table = ward(("Bed 2", MRN))
    step = plan(placed("A03", bed=("ICU", "101", "2")), table)
    assert step == Discharge("Bed 2")
    assert "PV1-3" in refused(placed("A03", bed=("ICU", "101", "1")), table).reason
    table.discharge("Bed 2", by="nurse", at=T0 + 60)
    assert isinstance(plan(placed("A03", bed=("ICU", "101", "2")), table), Nothing)


def test_a03_for_a_patient_never_admitted_here() -> None:
    assert refused(placed("A03"), ward()).code == ErrorCode.UNKNOWN_KEY
    other_unit = placed("A03", bed=("ER", "1", "1"), point_of_care=("ICU",))
    assert isinstance(plan(other_unit, ward()), Nothing)


def test_a08_corrects_name_and_birth_date_of_the_admitted_only() -> None:
    table = ward(("Bed 1", MRN))
    step = plan(placed("A08", family="Vander-Sloot", born="19500103"), table)
    assert isinstance(step, Correct)
    assert (step.name, step.birth_date) == ("Ottilie Vander-Sloot", date(1950, 1, 3))
    assert "Vander" not in repr(step)
    assert isinstance(plan(placed("A08"), ward()), Nothing)
    same = PatientTable()
    same.admit("Bed 1", name=NAME, mrn=MRN, birth_date=BORN, by="nurse", at=T0)
    assert isinstance(plan(placed("A08"), same), Nothing)


def test_a11_cancels_an_admission_not_followed_by_a_transfer() -> None:
    table = ward(("Bed 1", MRN))
    assert plan(placed("A11"), table) == Discharge("Bed 1", "patient.admit_cancel")
    table.transfer("Bed 1", "Bed 2", by="nurse", at=T0 + 60)
    assert "A12" in refused(placed("A11", bed=None), table).reason


def test_a12_takes_the_patient_back_where_the_transfer_came_from() -> None:
    table = ward(("Bed 1", MRN))
    table.transfer("Bed 1", "Bed 3", by="nurse", at=T0 + 60)
    back = placed("A12", bed=("ICU", "101", "1"), prior=("ICU", "101", "3"))
    assert plan(back, table) == Transfer("Bed 3", "Bed 1", "patient.transfer_cancel")
    assert "Bed 1, not Bed 2" in refused(placed("A12", bed=("ICU", "101", "2")), table).reason
    table.transfer("Bed 3", "Bed 1", by="nurse", at=T0 + 120)
    assert isinstance(plan(back, table), Nothing)  # a resend: already back


def test_a12_without_a_transfer_to_cancel() -> None:
    assert refused(placed("A12", bed=("ICU", "101", "2")), ward(("Bed 1", MRN))).code == CONFLICT


def test_a13_takes_a_discharge_back_into_a_free_bed() -> None:
    table = ward(("Bed 2", MRN))
    patient = table.discharge("Bed 2", by="nurse", at=T0 + 60)
    assert plan(placed("A13", bed=("ICU", "101", "2")), table) == Readmit(patient.patient_id)
    table.admit("Bed 2", name="Someone", mrn="OTHER", birth_date=BORN, by="nurse", at=T0 + 90)
    assert "occupied" in refused(placed("A13", bed=None), table).reason
    assert refused(placed("A13", mrn="NOBODY"), ward()).code == ErrorCode.UNKNOWN_KEY


def test_a13_for_a_patient_admitted_in_that_bed_changes_nothing() -> None:
    assert isinstance(plan(placed("A13"), ward(("Bed 1", MRN))), Nothing)


@pytest.mark.parametrize("event", ["A04", "A05"])
def test_announcements_change_no_bed(event: str) -> None:
    assert isinstance(plan(placed(event), ward()), Nothing)


def test_an_empty_mrn_is_refused() -> None:
    request = AdtRequest(Header(), Event.ADMIT, Person(""), Location(), Location())
    nowhere = BedMap(BEDS).place(Location())
    step: Step | None = None
    with pytest.raises(Refusal) as caught:
        step = plan(PlacedRequest(request, nowhere, nowhere, "adt:x"), ward())
    assert step is None
    assert caught.value.code == ErrorCode.REQUIRED_FIELD_MISSING
