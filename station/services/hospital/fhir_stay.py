"""Which stay an export covers, and which of its times may leave the station.

A *stay* is what a ward hands on: one admission of a patient (every bed they were in, from
admission to discharge or now), or, for a bed with nobody admitted, that bed over a period.
The stores keep data by bed and time, not by patient, so a stay becomes *spans* (bed, since,
until), and what may not leave becomes *exclusions* per bed. Pure: the patient table is given.

What is left out, and why:

- every stay of a patient who has not consented to export (the table's withheld stays, with
  the exclusions kept from purged patients): the rule of the CSV export and the trend print.
  Pseudonymisation is no way round a refused consent: pseudonymised data are still personal
  data (GDPR art. 4(5)). Such a patient's bundle names them by pseudonym and holds none of
  their values;
- every other patient's stay in the same bed: one patient's values must never end up under
  another's name (a wrong-patient error), even for a minute that straddles a change;
- in a bed's anonymous period, every patient's stay: their values belong to their own export.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from station.domain.patients.records import Patient, Purpose
from station.domain.patients.table import PatientTable

Interval = tuple[float, float]


class StayError(ValueError):
    """The stay asked for does not exist; the message says why (never a name or an MRN)."""


@dataclass(frozen=True, slots=True)
class PatientStay:
    """One admission, by the patient's pseudonym; ``pseudonymous`` asks for no identity even
    when the patient consented to export (a quality review, a study)."""

    patient_id: str
    pseudonymous: bool = False


@dataclass(frozen=True, slots=True)
class BedOccupant:
    """The admission of the patient in ``bed`` now (an error when nobody is admitted)."""

    bed: str
    pseudonymous: bool = False


@dataclass(frozen=True, slots=True)
class BedPeriod:
    """A bed from ``since`` to ``until`` (UTC epoch seconds), anonymous: any patient's stay in it
    is left out."""

    bed: str
    since: float
    until: float


@dataclass(frozen=True, slots=True)
class BedShown:
    """What a trend view shows: the admission of the bed's patient if one is admitted now, else
    the bed over the period on screen."""

    bed: str
    since: float
    until: float


Selection = PatientStay | BedOccupant | BedPeriod | BedShown


@dataclass(frozen=True, slots=True)
class Span:
    """One bed over one stretch of time."""

    bed: str
    since: float
    until: float


@dataclass(frozen=True, slots=True)
class StayPlan:
    """A stay resolved against the patient table.

    Attributes:
        patient: the admission exported; None for a bed's anonymous period.
        identified: the Patient resource carries name, MRN and birth date (export consent, and
            not asked to be pseudonymous).
        withheld: the patient has not consented to export: none of their values leave.
        spans: the beds and times covered.
        excluded: per bed, the times whose values are left out.
    """

    patient: Patient | None
    identified: bool
    withheld: bool
    spans: tuple[Span, ...]
    excluded: Mapping[str, tuple[Interval, ...]] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """What an audit record names: the pseudonym, or the bed of an anonymous period."""
        if self.patient is not None:
            return self.patient.patient_id
        return self.spans[0].bed

    def kept(self, span: Span) -> tuple[Interval, ...]:
        """The parts of ``span`` that are not excluded."""
        return subtract((span.since, span.until), self.excluded.get(span.bed, ()))


def asked_for(selection: Selection) -> str:
    """What an audit record names before the stay is resolved: the pseudonym, or the bed."""
    return selection.patient_id if isinstance(selection, PatientStay) else selection.bed


def plan_stay(table: PatientTable, selection: Selection, now: float) -> StayPlan:
    """Resolve ``selection`` (see the module docstring).

    Raises:
        StayError: no such patient, an admission with no stay, or an empty period.
    """
    if isinstance(selection, BedOccupant | BedShown):
        occupant = table.occupant(selection.bed)
        if occupant is not None:
            pseudonymous = isinstance(selection, BedOccupant) and selection.pseudonymous
            return plan_stay(table, PatientStay(occupant.patient_id, pseudonymous), now)
        if isinstance(selection, BedOccupant):
            raise StayError(
                f"no patient is admitted to {selection.bed}: give a period for the bed itself"
            )
        selection = BedPeriod(selection.bed, selection.since, selection.until)
    if isinstance(selection, BedPeriod):
        if not selection.since < selection.until:
            raise StayError(f"the period of {selection.bed} is empty: since must be before until")
        span = Span(selection.bed, selection.since, min(selection.until, now))
        if not span.since < span.until:
            raise StayError(f"the period of {selection.bed} starts in the future")
        others = _stays_on(table, {span.bed}, keep=None)
        excluded = _merge(others, _withheld(table, {span.bed}))
        return StayPlan(None, False, False, (span,), excluded)
    patient = table.patient(selection.patient_id)
    if patient is None:
        raise StayError(f"no patient {selection.patient_id} on record at this station")
    spans = tuple(
        Span(s.bed, s.since, now if s.until is None else s.until)
        for s in patient.stays
        if (now if s.until is None else s.until) > s.since
    )
    if not spans:
        raise StayError(f"patient {patient.patient_id} has no stay to export")
    beds = {s.bed for s in spans}
    consented = table.allows(patient.patient_id, Purpose.EXPORT)
    excluded = _merge(_stays_on(table, beds, keep=patient.patient_id), _withheld(table, beds))
    return StayPlan(
        patient,
        identified=consented and not selection.pseudonymous,
        withheld=not consented,
        spans=spans,
        excluded=excluded,
    )


def _stays_on(table: PatientTable, beds: set[str], keep: str | None) -> dict[str, list[Interval]]:
    """Every stay in ``beds`` of every patient on record but ``keep``."""
    out: dict[str, list[Interval]] = {}
    for patient in table.all_patients():
        if patient.patient_id == keep:
            continue
        for stay in patient.stays:
            if stay.bed in beds:
                until = math.inf if stay.until is None else stay.until
                out.setdefault(stay.bed, []).append((stay.since, until))
    return out


def _withheld(table: PatientTable, beds: set[str]) -> dict[str, list[Interval]]:
    """The stays in ``beds`` that may not be exported (the export exclusions of the table)."""
    out: dict[str, list[Interval]] = {}
    for stay in table.withheld(Purpose.EXPORT):
        if stay.bed in beds:
            until = math.inf if stay.until is None else stay.until
            out.setdefault(stay.bed, []).append((stay.since, until))
    return out


def _merge(*parts: dict[str, list[Interval]]) -> dict[str, tuple[Interval, ...]]:
    out: dict[str, list[Interval]] = {}
    for part in parts:
        for bed, intervals in part.items():
            out.setdefault(bed, []).extend(intervals)
    return {bed: tuple(sorted(set(intervals))) for bed, intervals in out.items()}


def subtract(span: Interval, holes: tuple[Interval, ...]) -> tuple[Interval, ...]:
    """``span`` without every ``[since, until)`` of ``holes``, as ordered intervals."""
    pieces = [span]
    for hole_start, hole_end in holes:
        cut: list[Interval] = []
        for start, end in pieces:
            if hole_end <= start or hole_start >= end:
                cut.append((start, end))
                continue
            if start < hole_start:
                cut.append((start, hole_start))
            if hole_end < end:
                cut.append((hole_end, end))
        pieces = cut
    return tuple(pieces)


def overlaps(start: float, end: float, holes: tuple[Interval, ...]) -> bool:
    """Whether ``[start, end)`` (or the instant ``start`` when ``end == start``) meets a hole."""
    if end <= start:
        return any(a <= start < b for a, b in holes)
    return any(start < b and end > a for a, b in holes)
