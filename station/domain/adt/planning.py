"""What an ADT request changes in the patient table, decided against the table as saved.

Why decided here, and on the ward admin's worker rather than where the message arrives: the
worker holds the saved table and makes one change at a time, so the patient an A02 moves is the
one in that bed *now*, not in a snapshot a change still on its way has made stale. Each event
becomes one of the dialog's own changes (admit, transfer, discharge) or one of the two the feed
adds (an identity correction, a discharge taken back), or nothing (:class:`Nothing`: the
message is answered AA and changes no bed).

Resending is safe: a message already in force plans to :class:`Nothing` (the patient is already
in that bed, already discharged), so an engine that resends after a lost ACK, or after a station
restart, never moves a patient twice. What cannot be done is refused with an AE and its reason
(:class:`~station.domain.adt.requests.Refusal`), and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from station.domain.adt.requests import (
    ErrorCode,
    Event,
    PlacedRequest,
    Placement,
    content_error,
)
from station.domain.patients.records import Patient
from station.domain.patients.table import PatientTable

CONFLICT = ErrorCode.INTERNAL_ERROR
"""Table 0357 has no code for a business rule; engines take 207 as "refused by the application",
and ERR-8 says which rule."""


@dataclass(frozen=True, slots=True, repr=False)
class Admit:
    """Admit the patient to ``bed`` (the dialog's admission)."""

    bed: str
    name: str
    mrn: str
    birth_date: date

    def __repr__(self) -> str:
        return f"Admit(bed={self.bed!r})"


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move the patient from ``from_bed`` to ``to_bed``; ``action`` names it in the audit trail
    (``patient.transfer``, or ``patient.transfer_cancel`` for an A12)."""

    from_bed: str
    to_bed: str
    action: str = "patient.transfer"


@dataclass(frozen=True, slots=True)
class Discharge:
    """Discharge the patient of ``bed`` (``patient.discharge``, or ``patient.admit_cancel``)."""

    bed: str
    action: str = "patient.discharge"


@dataclass(frozen=True, slots=True, repr=False)
class Correct:
    """Correct the patient's name and birth date (A08); the MRN stays the key."""

    patient_id: str
    name: str
    birth_date: date | None

    def __repr__(self) -> str:
        return f"Correct(patient_id={self.patient_id!r})"


@dataclass(frozen=True, slots=True)
class Readmit:
    """Take the patient's discharge back (A13): the stay goes on in the bed it was in."""

    patient_id: str


@dataclass(frozen=True, slots=True)
class Nothing:
    """No change: ``reason`` says why (for the admin's view), with the patient and bed if any."""

    reason: str
    patient: str = ""
    bed: str = ""


Step = Admit | Transfer | Discharge | Correct | Readmit | Nothing


def plan(placed: PlacedRequest, table: PatientTable) -> Step:
    """The change ``placed`` asks of ``table``.

    Raises:
        Refusal: it cannot be done (an AE: unknown bed, bed occupied, patient not found,
            conflicting state, a field the change needs is missing).
    """
    mrn = placed.request.person.mrn
    if not mrn.strip():
        raise content_error(ErrorCode.REQUIRED_FIELD_MISSING, "PID-3: the MRN is empty", "PID^1^3")
    active = _active(table, mrn)
    planner = _PLANNERS.get(placed.event)
    if planner is None:  # A04, A05: the patient is announced, no bed changes
        return Nothing("announced for the admit dialog; no bed changes")
    return planner(placed, table, active)


# -- one planner per event ---------------------------------------------------------------------


def _admit(placed: PlacedRequest, table: PatientTable, active: Patient | None) -> Step:
    where = placed.location
    if where.elsewhere:
        if active is not None:
            raise content_error(
                CONFLICT,
                f"admitted here in {active.bed}; a move to {where.text} needs a transfer",
                "PV1^1^3",
            )
        return Nothing(f"an admission to another unit ({where.text})")
    bed = _bed(where)
    if active is not None:
        if active.bed == bed:
            return Nothing(f"already admitted to {bed}", active.patient_id, bed)
        raise content_error(
            ErrorCode.DUPLICATE_KEY,
            f"a patient with this MRN is already admitted in {active.bed}",
            "PID^1^3",
        )
    return _admission(placed, table, bed)


def _transfer(placed: PlacedRequest, table: PatientTable, active: Patient | None) -> Step:
    where = placed.location
    if where.elsewhere:
        if active is not None and active.bed is not None:  # off this ward: it ends here
            return Discharge(active.bed)
        return Nothing(f"a transfer outside this ward ({where.text})")
    bed = _bed(where)
    if active is None:  # arrives on this ward: admitted here, as the dialog would
        return _admission(placed, table, bed)
    if active.bed == bed:
        return Nothing(f"already in {bed}", active.patient_id, bed)
    _prior_agrees(placed.prior, active)
    _free(table, bed)
    return Transfer(_current(active), bed)


def _discharge(placed: PlacedRequest, table: PatientTable, active: Patient | None) -> Step:
    if active is None:
        return _not_admitted(placed, table, "discharged")
    _location_agrees(placed.location, active)
    return Discharge(_current(active))


def _update(placed: PlacedRequest, _table: PatientTable, active: Patient | None) -> Step:
    if active is None:
        return Nothing("not admitted here; kept for the admit dialog")
    person = placed.request.person
    name = person.name.strip()
    born = person.birth_date
    if (not name or name == active.name) and (born is None or born == active.birth_date):
        return Nothing("identity unchanged", active.patient_id, _current(active))
    return Correct(active.patient_id, name, born)


def _cancel_admit(placed: PlacedRequest, table: PatientTable, active: Patient | None) -> Step:
    if active is None:
        return _not_admitted(placed, table, "ended")
    _location_agrees(placed.location, active)
    if len(active.stays) > 1:
        raise content_error(
            CONFLICT, "transferred since the admission: cancel the transfer (A12) first"
        )
    return Discharge(_current(active), "patient.admit_cancel")


def _cancel_transfer(placed: PlacedRequest, table: PatientTable, active: Patient | None) -> Step:
    where = placed.location  # A12: PV1-3 is where the patient goes back to
    if active is None:
        return _not_admitted(placed, table, "gone from this ward")
    current = _current(active)
    if where.bed == current:
        return Nothing(f"already in {current}", active.patient_id, current)
    if len(active.stays) < 2:
        if where.elsewhere:  # the transfer onto this ward is taken back
            return Discharge(current, "patient.transfer_cancel")
        raise content_error(CONFLICT, f"no transfer into {current} to cancel on this ward")
    back = active.stays[-2].bed
    if where.unknown:
        raise content_error(
            ErrorCode.TABLE_VALUE_NOT_FOUND, f"no bed of this ward at {where.text}", "PV1^1^3"
        )
    if where.bed is not None and where.bed != back:
        raise content_error(
            CONFLICT, f"the transfer being cancelled came from {back}, not {where.bed}", "PV1^1^3"
        )
    _prior_agrees(placed.prior, active)
    _free(table, back)
    return Transfer(current, back, "patient.transfer_cancel")


def _cancel_discharge(placed: PlacedRequest, table: PatientTable, active: Patient | None) -> Step:
    where = placed.location
    if active is not None:
        if where.bed is None or where.bed == active.bed:
            return Nothing(f"already admitted in {active.bed}", active.patient_id, active.bed or "")
        raise content_error(
            ErrorCode.DUPLICATE_KEY,
            f"a patient with this MRN is already admitted in {active.bed}",
            "PID^1^3",
        )
    left = _last_discharged(table, placed.request.person.mrn)
    if left is None:
        raise content_error(
            ErrorCode.UNKNOWN_KEY, "no discharge of a patient with this MRN is kept here", "PID^1^3"
        )
    bed = left.stays[-1].bed
    if where.bed is not None and where.bed != bed:
        raise content_error(CONFLICT, f"the patient was discharged from {bed}, not {where.bed}")
    _free(table, bed)
    return Readmit(left.patient_id)


_PLANNERS = {
    Event.ADMIT: _admit,
    Event.TRANSFER: _transfer,
    Event.DISCHARGE: _discharge,
    Event.UPDATE: _update,
    Event.CANCEL_ADMIT: _cancel_admit,
    Event.CANCEL_TRANSFER: _cancel_transfer,
    Event.CANCEL_DISCHARGE: _cancel_discharge,
}


# -- the checks the planners share --------------------------------------------------------------


def _admission(placed: PlacedRequest, table: PatientTable, bed: str) -> Step:
    person = placed.request.person
    if not person.name.strip():
        raise content_error(
            ErrorCode.REQUIRED_FIELD_MISSING, "PID-5: the name is needed to admit", "PID^1^5"
        )
    if person.birth_date is None:
        raise content_error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "PID-7: the date of birth is needed to admit",
            "PID^1^7",
        )
    _free(table, bed)
    return Admit(bed, person.name, person.mrn, person.birth_date)


def _bed(where: Placement) -> str:
    if not where.given:
        raise content_error(
            ErrorCode.REQUIRED_FIELD_MISSING, "PV1-3: the bed is missing", "PV1^1^3"
        )
    if where.bed is None:
        raise content_error(
            ErrorCode.TABLE_VALUE_NOT_FOUND, f"no bed of this ward at {where.text}", "PV1^1^3"
        )
    return where.bed


def _free(table: PatientTable, bed: str) -> None:
    if table.occupant(bed) is not None:
        raise content_error(
            CONFLICT, f"{bed} is occupied; its patient must be discharged or moved first", "PV1^1^3"
        )


def _current(active: Patient) -> str:
    if active.bed is None:  # an active patient always has a bed (the table's rule)
        raise content_error(ErrorCode.INTERNAL_ERROR, "the patient's bed cannot be found")
    return active.bed


def _location_agrees(where: Placement, active: Patient) -> None:
    if where.bed is not None and where.bed != active.bed:
        raise content_error(
            CONFLICT, f"the patient is in {active.bed}, not {where.bed} as PV1-3 says", "PV1^1^3"
        )


def _prior_agrees(prior: Placement, active: Patient) -> None:
    if prior.bed is not None and prior.bed != active.bed:
        raise content_error(
            CONFLICT, f"the patient is in {active.bed}, not {prior.bed} as PV1-6 says", "PV1^1^6"
        )


def _not_admitted(placed: PlacedRequest, table: PatientTable, state: str) -> Step:
    """A discharge or a cancel for a patient not admitted here: nothing to do when it is done
    already (a resend) or not this ward's; refused when the message says it is this ward's."""
    mrn = placed.request.person.mrn
    if _last_discharged(table, mrn) is not None:
        return Nothing(f"already {state}")
    if placed.location.elsewhere:
        return Nothing(f"not this ward's ({placed.location.text})")
    raise content_error(
        ErrorCode.UNKNOWN_KEY, "no patient with this MRN is admitted on this ward", "PID^1^3"
    )


def _active(table: PatientTable, mrn: str) -> Patient | None:
    key = mrn.strip().upper()
    return next((p for p in table.active() if p.mrn.upper() == key), None)


def _last_discharged(table: PatientTable, mrn: str) -> Patient | None:
    key = mrn.strip().upper()
    left = [p for p in table.all_patients() if not p.active and p.mrn.upper() == key]
    return max(left, key=lambda p: p.discharged_at or 0.0, default=None)
