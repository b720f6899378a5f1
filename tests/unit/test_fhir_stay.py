"""Which times a stay's export covers and which it leaves out, on a real patient table: a
transfer, a readmission to the same bed, a purged patient who had refused export, and the trend
view's "the bed's patient, else the period shown"."""

from __future__ import annotations

import math
from datetime import date

import pytest

from station.domain.patients.records import Purpose
from station.domain.patients.table import PatientTable
from station.services.hospital.fhir_stay import (
    BedOccupant,
    BedPeriod,
    BedShown,
    PatientStay,
    Span,
    StayError,
    asked_for,
    overlaps,
    plan_stay,
    subtract,
)

T0 = 1_738_400_000.0
HOUR = 3600.0


def _consent(table: PatientTable, patient_id: str, export: bool, at: float) -> None:
    table.record_consent(
        patient_id,
        Purpose.EXPORT,
        granted=export,
        given_by="patient",
        representative="",
        captured_by="nurse",
        policy_version="v1",
        at=at,
    )


def _admit(table: PatientTable, bed: str, mrn: str, at: float) -> str:
    born = date(1950, 1, 1)
    return table.admit(bed, name="A Person", mrn=mrn, birth_date=born, by="nurse", at=at).patient_id


def test_a_transfer_covers_both_beds_and_leaves_the_other_patients_out() -> None:
    table = PatientTable()
    before = _admit(table, "Bed 2", "M-0", T0)  # Bed 2's earlier patient, consented
    _consent(table, before, True, T0 + 1)
    table.discharge("Bed 2", by="nurse", at=T0 + HOUR)
    moved = _admit(table, "Bed 1", "M-1", T0 + 2 * HOUR)
    _consent(table, moved, True, T0 + 2 * HOUR + 1)
    table.transfer("Bed 1", "Bed 2", by="nurse", at=T0 + 3 * HOUR)
    after = _admit(table, "Bed 1", "M-2", T0 + 4 * HOUR)  # Bed 1's next patient, refused
    _consent(table, after, False, T0 + 4 * HOUR + 1)
    now = T0 + 5 * HOUR

    plan = plan_stay(table, PatientStay(moved), now)
    assert plan.spans == (
        Span("Bed 1", T0 + 2 * HOUR, T0 + 3 * HOUR),
        Span("Bed 2", T0 + 3 * HOUR, now),
    )
    assert plan.identified
    assert not plan.withheld
    assert plan.target == moved
    assert plan.excluded["Bed 2"] == ((T0, T0 + HOUR),)  # consented, but someone else
    assert plan.excluded["Bed 1"] == ((T0 + 4 * HOUR, math.inf),)  # refused, and not her
    assert [plan.kept(s) for s in plan.spans] == [((s.since, s.until),) for s in plan.spans]

    refused = plan_stay(table, BedOccupant("Bed 1"), now)
    assert refused.withheld
    assert not refused.identified
    assert refused.kept(refused.spans[0]) == ()


def test_a_bed_period_leaves_out_every_patient_even_a_purged_one() -> None:
    table = PatientTable()
    gone = _admit(table, "Bed 3", "M-3", T0 + HOUR)
    _consent(table, gone, False, T0 + HOUR + 1)
    table.discharge("Bed 3", by="nurse", at=T0 + 2 * HOUR)
    assert table.purge_discharged(T0 + 3 * HOUR) == (gone,)
    consented = _admit(table, "Bed 3", "M-4", T0 + 3 * HOUR)
    _consent(table, consented, True, T0 + 3 * HOUR + 1)
    table.discharge("Bed 3", by="nurse", at=T0 + 4 * HOUR)

    plan = plan_stay(table, BedPeriod("Bed 3", T0, T0 + 10 * HOUR), T0 + 5 * HOUR)
    assert plan.patient is None
    assert plan.target == "Bed 3"
    assert plan.spans == (Span("Bed 3", T0, T0 + 5 * HOUR),)  # not past now
    assert plan.kept(plan.spans[0]) == (
        (T0, T0 + HOUR),
        (T0 + 2 * HOUR, T0 + 3 * HOUR),
        (T0 + 4 * HOUR, T0 + 5 * HOUR),
    )


def test_the_trend_view_exports_the_patient_in_the_bed_else_the_period_shown() -> None:
    table = PatientTable()
    here = _admit(table, "Bed 1", "M-5", T0)
    shown = BedShown("Bed 1", T0 + HOUR, T0 + 2 * HOUR)
    plan = plan_stay(table, shown, T0 + 2 * HOUR)
    assert plan.patient is not None
    assert plan.patient.patient_id == here
    assert plan.spans == (Span("Bed 1", T0, T0 + 2 * HOUR),)  # the whole admission
    assert not plan.identified  # no export consent recorded: no is the answer
    empty = plan_stay(table, BedShown("Bed 2", T0, T0 + HOUR), T0 + 2 * HOUR)
    assert empty.patient is None
    assert empty.spans == (Span("Bed 2", T0, T0 + HOUR),)


def test_pseudonymous_on_request_and_the_errors() -> None:
    table = PatientTable()
    pid = _admit(table, "Bed 1", "M-6", T0)
    _consent(table, pid, True, T0 + 1)
    assert plan_stay(table, BedOccupant("Bed 1"), T0 + HOUR).identified
    assert not plan_stay(table, BedOccupant("Bed 1", pseudonymous=True), T0 + HOUR).identified
    with pytest.raises(StayError, match="no patient is admitted to Bed 2"):
        plan_stay(table, BedOccupant("Bed 2"), T0 + HOUR)
    with pytest.raises(StayError, match="no patient feed"):
        plan_stay(table, PatientStay("feed"), T0 + HOUR)
    with pytest.raises(StayError, match="empty"):
        plan_stay(table, BedPeriod("Bed 2", T0, T0), T0 + HOUR)
    with pytest.raises(StayError, match="future"):
        plan_stay(table, BedPeriod("Bed 2", T0 + 2 * HOUR, T0 + 3 * HOUR), T0 + HOUR)
    assert asked_for(PatientStay(pid)) == pid
    assert asked_for(BedShown("Bed 4", 0, 1)) == "Bed 4"


def test_interval_arithmetic() -> None:
    assert subtract((0, 10), ()) == ((0, 10),)
    assert subtract((0, 10), ((2, 3), (5, 20))) == ((0, 2), (3, 5))
    assert subtract((0, 10), ((-5, 0), (10, 11))) == ((0, 10),)
    assert subtract((0, 10), ((0, math.inf),)) == ()
    assert overlaps(2, 2, ((2, 3),))  # an instant at a hole's start is in it
    assert not overlaps(3, 3, ((2, 3),))  # and at its end is not
    assert overlaps(0, 60, ((59, 70),))  # a minute that straddles a hole's start
    assert not overlaps(0, 60, ((60, 70),))
