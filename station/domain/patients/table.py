"""The station's patients and their consent history: the rules across records, and every change.

Why a module of its own: this is where a wrong tie of signals to a person is refused (two active
patients in one bed, one MRN admitted twice, a monitor feeding two patients); see
:mod:`station.domain.patients`. Every method checks all its rules before it changes anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date

from station.domain.file_format import format_problem
from station.domain.patients.document import (
    FORMAT_VERSION,
    as_list,
    as_mapping,
    consent_from_dict,
    consent_to_dict,
    exclusion_from_dict,
    exclusion_to_dict,
    patient_from_dict,
    patient_to_dict,
)
from station.domain.patients.records import (
    ConsentEvent,
    Patient,
    PatientError,
    Purpose,
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


class PatientTable:
    """The station's patients, by pseudonym, and their consent history. In memory, not thread
    safe: one owner (the core thread) mutates it."""

    def __init__(self) -> None:
        self._patients: dict[str, Patient] = {}
        self._consents: list[ConsentEvent] = []
        self._exclusions: list[WithheldStay] = []  # export refused, identity purged since

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatientTable):
            return NotImplemented
        return (
            self._patients == other._patients
            and self._consents == other._consents
            and self._exclusions == other._exclusions
        )

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
        consent history; returns their ids for the audit trail.

        A patient who had not consented to export leaves an export exclusion per stay (bed and
        times, no identity): the history that said "no" goes, but the trend and alarm stores
        still hold that stay's data under the bed, and an export must keep leaving it out.
        """
        gone = tuple(
            pid
            for pid, p in self._patients.items()
            if p.discharged_at is not None and p.discharged_at < before
        )
        for pid in gone:
            if not self.allows(pid, Purpose.EXPORT):
                self._exclusions.extend(
                    WithheldStay(s.bed, s.since, s.until) for s in self._patients[pid].stays
                )
        for pid in gone:
            del self._patients[pid]
        self._consents = [e for e in self._consents if e.patient_id not in gone]
        return gone

    def withheld(self, purpose: Purpose) -> tuple[WithheldStay, ...]:
        """The stays whose data ``purpose`` may not take: every stay of each patient on record
        whose latest consent for it is not given (open stays with ``until`` None), and for
        :attr:`Purpose.EXPORT` the exclusions kept from purged patients too."""
        out = [
            WithheldStay(stay.bed, stay.since, stay.until, pid)
            for pid, p in self._patients.items()
            if not self.allows(pid, purpose)
            for stay in p.stays
        ]
        if purpose is Purpose.EXPORT:
            out.extend(self._exclusions)
        return tuple(out)

    @property
    def export_exclusions(self) -> tuple[WithheldStay, ...]:
        """The export exclusions kept from purged patients (no identity), oldest first."""
        return tuple(self._exclusions)

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
        bed = check_bed(bed)
        by = check_user(by, "admitting user")
        at = check_time(at)
        clean_name = check_name(name)
        clean_mrn = check_mrn(mrn)
        check_birth_date(birth_date, local_date(at))
        if patient_id is None:
            patient_id = uuid.uuid4().hex
        else:
            check_patient_id(patient_id)
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
        by = check_user(by, "discharging user")
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
        to_bed = check_bed(to_bed)
        if check_bed(from_bed) == to_bed:
            raise PatientError(f"the patient is already in {to_bed}; choose another bed")
        current = self._occupant_or_error(from_bed)
        check_user(by, "transferring user")
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
        device_id = check_device_id(device_id)
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
        event = check_consent(
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
        doc: dict[str, object] = {
            "version": FORMAT_VERSION,
            "patients": [patient_to_dict(p) for p in self._patients.values()],
            "consents": [consent_to_dict(e) for e in self._consents],
        }
        if self._exclusions:
            doc["exclusions"] = [exclusion_to_dict(e) for e in self._exclusions]
        return doc

    @classmethod
    def from_dict(cls, d: object) -> PatientTable:
        """The table a :meth:`to_dict` document describes, with every rule checked again.

        Raises:
            PatientError: not a version 1 document, or a record breaks a rule (a field's format,
                two active patients in a bed, an MRN or a device twice, stays out of order, a
                consent for an unknown patient).
        """
        doc = as_mapping(d, "the patient table")
        problem = format_problem("the patient table", doc.get("version"), FORMAT_VERSION)
        if problem:
            raise PatientError(problem)
        table = cls()
        for i, item in enumerate(as_list(doc.get("patients"), "patients")):
            loaded = patient_from_dict(item, f"patients[{i}]")
            if loaded.patient_id in table._patients:
                raise PatientError(f"patients[{i}]: patient id used twice")
            table._check_active_unique(loaded, f"patients[{i}]")
            table._patients[loaded.patient_id] = loaded
        for i, item in enumerate(as_list(doc.get("consents"), "consents")):
            event = consent_from_dict(item, f"consents[{i}]")
            if event.patient_id not in table._patients:
                raise PatientError(f"consents[{i}]: consent for an unknown patient")
            table._consents.append(event)
        for i, item in enumerate(as_list(doc.get("exclusions", []), "exclusions")):
            table._exclusions.append(exclusion_from_dict(item, f"exclusions[{i}]"))
        return table

    # -- internals -------------------------------------------------------------------------------

    def _active(self) -> Iterator[Patient]:
        return (p for p in self._patients.values() if p.active)

    def _occupant_or_error(self, bed: str) -> Patient:
        bed = check_bed(bed)
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
        at = check_time(at)
        if at < current.stays[-1].since:
            raise PatientError(
                "the time given is before the patient's current stay began; check the clock"
            )
        return at


def _closed(stays: tuple[Stay, ...], at: float) -> tuple[Stay, ...]:
    return (*stays[:-1], replace(stays[-1], until=at))
