"""The patient table as a JSON document, one record at a time, each checked again on the way in.

Why a module of its own: the document is what the encrypted store keeps across restarts and
versions, so its shape and the checks of a record read back (a field's rule, stays in order, no
devices after discharge) are kept apart from the table's day-to-day changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from itertools import pairwise

from station.domain.patients.records import (
    ConsentEvent,
    Patient,
    PatientError,
    Stay,
    WithheldStay,
)
from station.domain.patients.rules import (
    check_bed,
    check_birth_date,
    check_consent,
    check_device_id,
    check_mrn,
    check_name,
    check_patient_id,
    check_time,
    check_user,
    local_date,
)

FORMAT_VERSION = 1
"""Version of the :meth:`PatientTable.to_dict` document; ``from_dict`` refuses any other.

``exclusions`` (the export exclusions kept after a purge, see :meth:`PatientTable.purge_discharged`)
was added within version 1: a document without it has none, and it is written only when there
is one, so the document of a table without any is the same as before."""


def patient_to_dict(p: Patient) -> dict[str, object]:
    return {
        "patient_id": p.patient_id,
        "name": p.name,
        "mrn": p.mrn,
        "birth_date": p.birth_date.isoformat(),
        "admitted_at": p.admitted_at,
        "admitted_by": p.admitted_by,
        "stays": [{"bed": s.bed, "since": s.since, "until": s.until} for s in p.stays],
        "discharged_at": p.discharged_at,
        "discharged_by": p.discharged_by,
        "devices": list(p.devices),
    }


def consent_to_dict(e: ConsentEvent) -> dict[str, object]:
    return {
        "patient_id": e.patient_id,
        "purpose": e.purpose.value,
        "granted": e.granted,
        "given_by": e.given_by,
        "representative": e.representative,
        "captured_by": e.captured_by,
        "policy_version": e.policy_version,
        "at": e.at,
        "note": e.note,
    }


def as_mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise PatientError(f"{where} is not a JSON object")
    return value


def as_list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise PatientError(f"{where} is not a JSON list")
    return value


def patient_from_dict(item: object, where: str) -> Patient:
    d = as_mapping(item, where)
    try:
        patient_id = check_patient_id(d.get("patient_id"))
        raw_birth = d.get("birth_date")
        try:
            birth = date.fromisoformat(raw_birth) if isinstance(raw_birth, str) else None
        except ValueError:
            birth = None
        if birth is None:
            raise PatientError("the date of birth is not an ISO date")
        admitted_at = check_time(d.get("admitted_at"), "admission time")
        check_birth_date(birth, local_date(admitted_at))
        stays = tuple(_stay_from_dict(s) for s in as_list(d.get("stays"), "stays"))
        discharged = d.get("discharged_at") is not None
        patient = Patient(
            patient_id=patient_id,
            name=check_name(d.get("name")),
            mrn=check_mrn(d.get("mrn")),
            birth_date=birth,
            admitted_at=admitted_at,
            admitted_by=check_user(d.get("admitted_by"), "admitting user"),
            stays=stays,
            discharged_at=(
                check_time(d.get("discharged_at"), "discharge time") if discharged else None
            ),
            discharged_by=(
                check_user(d.get("discharged_by"), "discharging user") if discharged else None
            ),
            devices=tuple(check_device_id(x) for x in as_list(d.get("devices"), "devices")),
        )
        _check_history(patient, has_discharged_by=d.get("discharged_by") is not None)
    except PatientError as exc:
        raise PatientError(f"{where}: {exc}") from None
    return patient


def _stay_from_dict(item: object) -> Stay:
    d = as_mapping(item, "a stay")
    until = d.get("until")
    return Stay(
        bed=check_bed(d.get("bed")),
        since=check_time(d.get("since"), "stay's start"),
        until=None if until is None else check_time(until, "stay's end"),
    )


def _check_history(p: Patient, *, has_discharged_by: bool) -> None:
    """The invariants the methods keep: stays in order from admission, only the last one open
    and only while admitted, devices only while admitted and each once."""
    if not p.stays:
        raise PatientError("a patient record has no stay")
    if p.discharged_by is None and has_discharged_by:
        raise PatientError("a discharging user without a discharge time")
    if p.stays[0].since != p.admitted_at:
        raise PatientError("the first stay does not begin at admission")
    for before, after in pairwise(p.stays):
        if before.until is None or before.until != after.since:
            raise PatientError("the stays do not follow one another")
    for stay in p.stays:
        if stay.until is not None and stay.until < stay.since:
            raise PatientError("a stay ends before it begins")
    last_open = p.stays[-1].until is None
    if p.active != last_open:
        raise PatientError("the last stay must be open exactly while the patient is admitted")
    if not p.active and p.stays[-1].until != p.discharged_at:
        raise PatientError("the last stay does not end at discharge")
    if not p.active and p.devices:
        raise PatientError("a discharged patient still has devices")
    if len(set(p.devices)) != len(p.devices):
        raise PatientError("a device is listed twice")


def consent_from_dict(item: object, where: str) -> ConsentEvent:
    d = as_mapping(item, where)
    try:
        return check_consent(
            patient_id=d.get("patient_id"),
            purpose=d.get("purpose"),
            granted=d.get("granted"),
            given_by=d.get("given_by"),
            representative=d.get("representative"),
            captured_by=d.get("captured_by"),
            policy_version=d.get("policy_version"),
            at=d.get("at"),
            note=d.get("note", ""),
        )
    except PatientError as exc:
        raise PatientError(f"{where}: {exc}") from None


def exclusion_to_dict(e: WithheldStay) -> dict[str, object]:
    return {"bed": e.bed, "since": e.since, "until": e.until}


def exclusion_from_dict(item: object, where: str) -> WithheldStay:
    """An export exclusion kept after a purge: a closed stay, no patient (nobody is named)."""
    d = as_mapping(item, where)
    try:
        since = check_time(d.get("since"), "exclusion's start")
        until = check_time(d.get("until"), "exclusion's end")
        if until < since:
            raise PatientError("an exclusion ends before it begins")
        return WithheldStay(check_bed(d.get("bed")), since, until)
    except PatientError as exc:
        raise PatientError(f"{where}: {exc}") from None
