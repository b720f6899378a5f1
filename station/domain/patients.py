"""Who lies in which bed: admission, transfer, discharge, devices, and GDPR consent per purpose.

The station ties live signals to a person, so a wrong tie is a clinical error: two active
patients in one bed, one MRN admitted twice, or a monitor feeding two patients would put one
patient's alarms on another's tile. :class:`PatientTable` is therefore mutated only through
methods that check every rule first and change nothing when one fails (:class:`PatientError`,
worded for the person at the station), and it hands back the immutable record that changed so
the caller can audit exactly that.

Identity (name, MRN, birth date) is personal data under the GDPR. It lives only here and in the
encrypted patient store; everything else (audit records, logs, the historian) uses the
pseudonymous ``patient_id``. Hence :class:`Patient` and :class:`ConsentEvent` leave identity out
of their ``repr``, and no error message here ever quotes a name, an MRN or a birth date, since
callers log error messages.

A discharged patient's record is kept (retention; the historian's data still points at the
pseudonym), with its stays closed and its devices released. Consent is an append-only history
per patient and purpose, because the GDPR asks the controller to show when and how consent was
given and withdrawn; the latest event for a purpose decides, and no event means not given.

Pure Python: no Qt, no I/O. The clock is the caller's (``at``, seconds since the epoch).
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from itertools import pairwise

FORMAT_VERSION = 1
"""Version of the :meth:`PatientTable.to_dict` document; ``from_dict`` refuses any other."""

NAME_MAX = 120
NOTE_MAX = 500
DEVICE_ID_MAX = 128
EARLIEST_BIRTH = date(1900, 1, 1)
GIVEN_BY = ("patient", "representative")

_MRN = re.compile(r"[A-Za-z0-9./-]{1,32}")
_PATIENT_ID = re.compile(r"[0-9a-f]{32}")
# Bidirectional overrides and isolates: a name holding them can display as another name.
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


class Purpose(StrEnum):
    """What a consent covers. Each is asked and withdrawn on its own (GDPR art. 6(1)(a), 7)."""

    DISPLAY = "display"
    STORAGE = "storage"
    EXPORT = "export"


LABELS: Mapping[Purpose, str] = {
    Purpose.DISPLAY: "Display at the station",
    Purpose.STORAGE: "Storage in the historian",
    Purpose.EXPORT: "Export and sharing",
}


class PatientError(ValueError):
    """A request the table refuses; the message tells the person at the station why.

    Messages never quote a name, an MRN or a birth date: callers log them.
    """


@dataclass(frozen=True, slots=True)
class Stay:
    """One stretch in one bed; ``until`` is None while the patient is still there."""

    bed: str
    since: float
    until: float | None


@dataclass(frozen=True, slots=True, repr=False)
class Patient:
    """One admission, kept after discharge. Immutable: every change makes a new record.

    ``patient_id`` is the pseudonym (uuid4 hex) that audit records and logs use instead of the
    identity fields. ``stays`` is the bed history in order; the last one is open while the
    patient is admitted.
    """

    patient_id: str
    name: str
    mrn: str
    birth_date: date
    admitted_at: float
    admitted_by: str
    stays: tuple[Stay, ...]
    discharged_at: float | None = None
    discharged_by: str | None = None
    devices: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """True until discharged."""
        return self.discharged_at is None

    @property
    def bed(self) -> str | None:
        """The current bed; None once discharged."""
        if not self.active or not self.stays or self.stays[-1].until is not None:
            return None
        return self.stays[-1].bed

    def __repr__(self) -> str:
        # Pseudonym and bed only: a record in a log line or a traceback must not identify anyone.
        return f"Patient(patient_id={self.patient_id!r}, bed={self.bed!r})"


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One consent given or withdrawn, with who gave it, who recorded it, and under which policy.

    ``given_by`` is ``"patient"`` or ``"representative"``; ``representative`` names the latter
    and is empty for the former. A representative's name and the note are personal data too, so
    they are left out of the ``repr``.
    """

    patient_id: str
    purpose: Purpose
    granted: bool
    given_by: str
    representative: str = field(repr=False)
    captured_by: str
    policy_version: str
    at: float
    note: str = field(default="", repr=False)


class PatientTable:
    """The station's patients, by pseudonym, and their consent history. In memory, not thread
    safe: one owner (the core thread) mutates it."""

    def __init__(self) -> None:
        self._patients: dict[str, Patient] = {}
        self._consents: list[ConsentEvent] = []

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatientTable):
            return NotImplemented
        return self._patients == other._patients and self._consents == other._consents

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by content

    # -- queries ---------------------------------------------------------------------------------

    def occupant(self, bed: str) -> Patient | None:
        """The active patient in ``bed``, if any."""
        return next((p for p in self._active() if p.bed == bed), None)

    def patient(self, patient_id: str) -> Patient | None:
        """The record of ``patient_id``, active or discharged."""
        return self._patients.get(patient_id)

    def active(self) -> tuple[Patient, ...]:
        """The admitted patients, in order of admission."""
        return tuple(self._active())

    def purge_discharged(self, before: float) -> tuple[str, ...]:
        """Forget patients discharged before ``before`` (the retention setting), with their
        consent history; returns their ids for the audit trail."""
        gone = tuple(
            pid
            for pid, p in self._patients.items()
            if p.discharged_at is not None and p.discharged_at < before
        )
        for pid in gone:
            del self._patients[pid]
        self._consents = [e for e in self._consents if e.patient_id not in gone]
        return gone

    def all_patients(self) -> tuple[Patient, ...]:
        """Every record kept, discharged ones included, in order of admission."""
        return tuple(self._patients.values())

    def consent_events(self, patient_id: str) -> tuple[ConsentEvent, ...]:
        """The patient's consent history, in the order it was recorded."""
        return tuple(e for e in self._consents if e.patient_id == patient_id)

    def allows(self, patient_id: str, purpose: Purpose) -> bool:
        """Whether the latest consent recorded for ``purpose`` grants it; no consent is a no.

        "Latest" is the order of recording, not ``at``: a clock stepping back must not revive a
        withdrawn consent.
        """
        for event in reversed(self._consents):
            if event.patient_id == patient_id and event.purpose == purpose:
                return event.granted
        return False

    def bed_of_device(self, device_id: str) -> str | None:
        """The bed of the active patient the device is associated with, if any."""
        return next((p.bed for p in self._active() if device_id in p.devices), None)

    def history_beds(self, patient_id: str) -> tuple[Stay, ...]:
        """The patient's stays in order (empty for an unknown patient)."""
        found = self._patients.get(patient_id)
        return found.stays if found is not None else ()

    # -- admission, transfer, discharge ----------------------------------------------------------

    def admit(
        self,
        bed: str,
        *,
        name: str,
        mrn: str,
        birth_date: date,
        by: str,
        at: float,
        patient_id: str | None = None,
    ) -> Patient:
        """Admit a patient to a free bed and return the new record.

        The name and MRN are stored stripped of surrounding blanks; MRNs are compared without
        regard to case, since a scanner and a keyboard may disagree on it.

        Raises:
            PatientError: the bed is taken, the MRN is already admitted, a field is not valid,
                or ``patient_id`` is not a fresh uuid hex.
        """
        bed = _bed(bed)
        by = _user(by, "admitting user")
        at = _time(at)
        clean_name = _name(name)
        clean_mrn = _mrn(mrn)
        _birth_date(birth_date, _local_date(at))
        if patient_id is None:
            patient_id = uuid.uuid4().hex
        else:
            _patient_id(patient_id)
            if patient_id in self._patients:
                raise PatientError("this patient id is already in use")
        taken = self.occupant(bed)
        if taken is not None:
            raise PatientError(f"{bed} is occupied; discharge or transfer its patient first")
        self._check_mrn_free(clean_mrn)
        admitted = Patient(
            patient_id=patient_id,
            name=clean_name,
            mrn=clean_mrn,
            birth_date=birth_date,
            admitted_at=at,
            admitted_by=by,
            stays=(Stay(bed, at, None),),
        )
        self._patients[patient_id] = admitted
        return admitted

    def discharge(self, bed: str, *, by: str, at: float) -> Patient:
        """Discharge the patient in ``bed``: the stay closes, devices are released, the record
        is kept (retention), and the bed goes to standby.

        Raises:
            PatientError: no active patient in ``bed``, or ``at`` is before the stay began.
        """
        current = self._occupant_or_error(bed)
        by = _user(by, "discharging user")
        at = self._not_before_stay(current, at)
        done = replace(
            current,
            stays=_closed(current.stays, at),
            discharged_at=at,
            discharged_by=by,
            devices=(),
        )
        self._patients[done.patient_id] = done
        return done

    def transfer(self, from_bed: str, to_bed: str, *, by: str, at: float) -> Patient:
        """Move a patient to a free bed; the history (stays) and the devices go with them.

        ``by`` is not kept on the record (the audit trail has it) but must name someone.

        Raises:
            PatientError: the same bed twice, no patient in ``from_bed``, ``to_bed`` taken, or
                ``at`` before the current stay began.
        """
        to_bed = _bed(to_bed)
        if _bed(from_bed) == to_bed:
            raise PatientError(f"the patient is already in {to_bed}; choose another bed")
        current = self._occupant_or_error(from_bed)
        _user(by, "transferring user")
        at = self._not_before_stay(current, at)
        if self.occupant(to_bed) is not None:
            raise PatientError(f"{to_bed} is occupied; discharge or transfer its patient first")
        moved = replace(current, stays=(*_closed(current.stays, at), Stay(to_bed, at, None)))
        self._patients[moved.patient_id] = moved
        return moved

    # -- devices ---------------------------------------------------------------------------------

    def associate_device(self, bed: str, device_id: str, *, at: float) -> Patient:
        """Associate a device with the patient in ``bed``, so its signals are that patient's.

        ``at`` is checked like every other time (the caller audits it) but is not kept: the
        record holds the current devices, not their history.

        Raises:
            PatientError: no patient in ``bed``, a bad device id, or the device is already
                associated (with this patient or, naming the bed, with another).
        """
        current = self._occupant_or_error(bed)
        device_id = _device_id(device_id)
        self._not_before_stay(current, at)
        if device_id in current.devices:
            raise PatientError(f"device {device_id} is already associated with {current.bed}")
        other = self.bed_of_device(device_id)
        if other is not None:
            raise PatientError(
                f"device {device_id} is associated with the patient in {other}; release it there"
                " first"
            )
        changed = replace(current, devices=(*current.devices, device_id))
        self._patients[changed.patient_id] = changed
        return changed

    def release_device(self, bed: str, device_id: str, *, at: float) -> Patient:
        """Release a device from the patient in ``bed``.

        Raises:
            PatientError: no patient in ``bed``, or the device is not associated with them.
        """
        current = self._occupant_or_error(bed)
        self._not_before_stay(current, at)
        if device_id not in current.devices:
            raise PatientError(f"device {device_id} is not associated with {current.bed}")
        changed = replace(current, devices=tuple(d for d in current.devices if d != device_id))
        self._patients[changed.patient_id] = changed
        return changed

    # -- consent ---------------------------------------------------------------------------------

    def record_consent(
        self,
        patient_id: str,
        purpose: Purpose,
        *,
        granted: bool,
        given_by: str,
        representative: str,
        captured_by: str,
        policy_version: str,
        at: float,
        note: str = "",
    ) -> ConsentEvent:
        """Record consent given (``granted``) or withdrawn for one purpose and return the event.

        Allowed after discharge too: a withdrawal may come at any time, and export consent is
        often asked later.

        Raises:
            PatientError: unknown patient or purpose, ``given_by`` not ``patient`` or
                ``representative``, a representative without a name (or a name when the patient
                gave it), no policy version, or no capturing user.
        """
        event = _consent(
            patient_id=patient_id,
            purpose=purpose,
            granted=granted,
            given_by=given_by,
            representative=representative,
            captured_by=captured_by,
            policy_version=policy_version,
            at=at,
            note=note,
        )
        if event.patient_id not in self._patients:
            raise PatientError("unknown patient: consent can only be recorded for an admission")
        self._consents.append(event)
        return event

    # -- persistence -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """A JSON-able document of the whole table (identity included: encrypt it at rest)."""
        return {
            "version": FORMAT_VERSION,
            "patients": [_patient_to_dict(p) for p in self._patients.values()],
            "consents": [_consent_to_dict(e) for e in self._consents],
        }

    @classmethod
    def from_dict(cls, d: object) -> PatientTable:
        """The table a :meth:`to_dict` document describes, with every rule checked again.

        Raises:
            PatientError: not a version 1 document, or a record breaks a rule (a field's format,
                two active patients in a bed, an MRN or a device twice, stays out of order, a
                consent for an unknown patient).
        """
        doc = _mapping(d, "the patient table")
        if doc.get("version") != FORMAT_VERSION:
            raise PatientError(
                f"the patient table has version {doc.get('version')!r}; this station reads"
                f" version {FORMAT_VERSION}"
            )
        table = cls()
        for i, item in enumerate(_list(doc.get("patients"), "patients")):
            loaded = _patient_from_dict(item, f"patients[{i}]")
            if loaded.patient_id in table._patients:
                raise PatientError(f"patients[{i}]: patient id used twice")
            table._check_active_unique(loaded, f"patients[{i}]")
            table._patients[loaded.patient_id] = loaded
        for i, item in enumerate(_list(doc.get("consents"), "consents")):
            event = _consent_from_dict(item, f"consents[{i}]")
            if event.patient_id not in table._patients:
                raise PatientError(f"consents[{i}]: consent for an unknown patient")
            table._consents.append(event)
        return table

    # -- internals -------------------------------------------------------------------------------

    def _active(self) -> Iterator[Patient]:
        return (p for p in self._patients.values() if p.active)

    def _occupant_or_error(self, bed: str) -> Patient:
        bed = _bed(bed)
        found = self.occupant(bed)
        if found is None:
            raise PatientError(f"no patient is admitted to {bed}")
        return found

    def _check_mrn_free(self, mrn: str) -> None:
        for other in self._active():
            if other.mrn.upper() == mrn.upper():
                raise PatientError(f"a patient with this MRN is already admitted in {other.bed}")

    def _check_active_unique(self, loaded: Patient, where: str) -> None:
        if not loaded.active:
            return
        if self.occupant(loaded.bed or "") is not None:
            raise PatientError(f"{where}: {loaded.bed} holds two active patients")
        try:
            self._check_mrn_free(loaded.mrn)
        except PatientError as exc:
            raise PatientError(f"{where}: {exc}") from None
        for device in loaded.devices:
            other = self.bed_of_device(device)
            if other is not None:
                raise PatientError(f"{where}: device {device} is also associated with {other}")

    @staticmethod
    def _not_before_stay(current: Patient, at: float) -> float:
        at = _time(at)
        if at < current.stays[-1].since:
            raise PatientError(
                "the time given is before the patient's current stay began; check the clock"
            )
        return at


# -- field rules (shared by the methods and by from_dict) ------------------------------------------


def _time(value: object, what: str = "time") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PatientError(f"the {what} is not a valid time")
    return float(value)


def _local_date(at: float) -> date:
    """The station's local date at ``at``: a birth date is judged on the ward's calendar."""
    try:
        return date.fromtimestamp(at)
    except (OverflowError, OSError, ValueError):
        raise PatientError("the time is out of range") from None


def _text(value: object, what: str, limit: int) -> str:
    """Stripped text of 1…``limit`` characters without control or direction-override
    characters (which could hide or disguise what the screen shows)."""
    if not isinstance(value, str):
        raise PatientError(f"the {what} must be text")
    text = value.strip()
    if not text:
        raise PatientError(f"the {what} is empty")
    if len(text) > limit:
        raise PatientError(f"the {what} is longer than {limit} characters")
    if any(_hidden(c) for c in text):
        raise PatientError(f"the {what} contains control characters")
    return text


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Zl", "Zp"} or char in _BIDI


def _name(value: object) -> str:
    return _text(value, "name", NAME_MAX)


def _bed(value: object) -> str:
    return _text(value, "bed", NAME_MAX)


def _user(value: object, what: str) -> str:
    return _text(value, what, NAME_MAX)


def _mrn(value: object) -> str:
    if not isinstance(value, str):
        raise PatientError("the MRN must be text")
    text = value.strip()
    if not _MRN.fullmatch(text):
        raise PatientError("the MRN must be 1 to 32 letters, digits, '-', '/' or '.'")
    return text


def _device_id(value: object) -> str:
    text = _text(value, "device id", DEVICE_ID_MAX)
    if text != value:
        raise PatientError("the device id has blanks around it")
    return text


def _birth_date(value: object, today: date) -> date:
    """A real date between 1900 and ``today`` (the station's local date of the admission)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise PatientError("the date of birth must be a date")
    if value > today:
        raise PatientError("the date of birth is in the future")
    if value < EARLIEST_BIRTH:
        raise PatientError("the date of birth is before 1900")
    return value


def _patient_id(value: object) -> str:
    if not isinstance(value, str) or not _PATIENT_ID.fullmatch(value):
        raise PatientError("the patient id must be 32 lowercase hex digits (a uuid4 hex)")
    return value


def _purpose(value: object) -> Purpose:
    if isinstance(value, str) and value in {p.value for p in Purpose}:
        return Purpose(value)
    raise PatientError(
        f"unknown consent purpose {value!r}; one of {', '.join(p.value for p in Purpose)}"
    )


def _consent(
    *,
    patient_id: object,
    purpose: object,
    granted: object,
    given_by: object,
    representative: object,
    captured_by: object,
    policy_version: object,
    at: object,
    note: object,
) -> ConsentEvent:
    if not isinstance(granted, bool):
        raise PatientError("consent must be granted (true) or withdrawn (false)")
    if given_by not in GIVEN_BY:
        raise PatientError("consent is given by the patient or by a representative")
    if not isinstance(representative, str):
        raise PatientError("the representative's name must be text")
    if given_by == "representative":
        representative = _text(representative, "representative's name", NAME_MAX)
    elif representative.strip():
        raise PatientError("the patient gave this consent: leave the representative empty")
    else:
        representative = ""
    if not isinstance(note, str):
        raise PatientError("the note must be text")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise PatientError(f"the note is longer than {NOTE_MAX} characters")
    if any(_hidden(c) for c in note.replace("\n", "")):
        raise PatientError("the note contains control characters")
    return ConsentEvent(
        patient_id=_patient_id(patient_id),
        purpose=_purpose(purpose),
        granted=granted,
        given_by=str(given_by),
        representative=representative,
        captured_by=_user(captured_by, "capturing user"),
        policy_version=_text(policy_version, "policy version", NAME_MAX),
        at=_time(at),
        note=note,
    )


def _closed(stays: tuple[Stay, ...], at: float) -> tuple[Stay, ...]:
    return (*stays[:-1], replace(stays[-1], until=at))


# -- the document ----------------------------------------------------------------------------------


def _patient_to_dict(p: Patient) -> dict[str, object]:
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


def _consent_to_dict(e: ConsentEvent) -> dict[str, object]:
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


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise PatientError(f"{where} is not a JSON object")
    return value


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise PatientError(f"{where} is not a JSON list")
    return value


def _patient_from_dict(item: object, where: str) -> Patient:
    d = _mapping(item, where)
    try:
        patient_id = _patient_id(d.get("patient_id"))
        raw_birth = d.get("birth_date")
        try:
            birth = date.fromisoformat(raw_birth) if isinstance(raw_birth, str) else None
        except ValueError:
            birth = None
        if birth is None:
            raise PatientError("the date of birth is not an ISO date")
        admitted_at = _time(d.get("admitted_at"), "admission time")
        _birth_date(birth, _local_date(admitted_at))
        stays = tuple(_stay_from_dict(s) for s in _list(d.get("stays"), "stays"))
        discharged = d.get("discharged_at") is not None
        patient = Patient(
            patient_id=patient_id,
            name=_name(d.get("name")),
            mrn=_mrn(d.get("mrn")),
            birth_date=birth,
            admitted_at=admitted_at,
            admitted_by=_user(d.get("admitted_by"), "admitting user"),
            stays=stays,
            discharged_at=_time(d.get("discharged_at"), "discharge time") if discharged else None,
            discharged_by=_user(d.get("discharged_by"), "discharging user") if discharged else None,
            devices=tuple(_device_id(x) for x in _list(d.get("devices"), "devices")),
        )
        _check_history(patient, has_discharged_by=d.get("discharged_by") is not None)
    except PatientError as exc:
        raise PatientError(f"{where}: {exc}") from None
    return patient


def _stay_from_dict(item: object) -> Stay:
    d = _mapping(item, "a stay")
    until = d.get("until")
    return Stay(
        bed=_bed(d.get("bed")),
        since=_time(d.get("since"), "stay's start"),
        until=None if until is None else _time(until, "stay's end"),
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


def _consent_from_dict(item: object, where: str) -> ConsentEvent:
    d = _mapping(item, where)
    try:
        return _consent(
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
