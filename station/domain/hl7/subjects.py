"""Who lay in which bed when, and what each patient's consent lets the HL7 interface send: an
immutable snapshot of the patient table, handed from the GUI thread to the interface's thread.

Why a snapshot of its own: the interface must never read the patient file, nor share the GUI
thread's table (replaced on every change, not thread-safe). It also decides by the time of the
event, not by who is in the bed now: an alarm raised a second before a discharge belongs to the
patient who was there, and samples taken before an admission belong to nobody.

The rule (docs/hl7-outbound.md):

- identity (name, MRN, birth date) goes out only for a patient whose latest export consent is
  given; it is copied into the snapshot only then;
- observations (ORU^R01) go out only for an admitted patient whose storage consent is given:
  never for an empty bed, nor for a patient who refused storage;
- alarms (ORU^R40) always go out (patient safety), named by identity, pseudonym or bed as above.

A table that could not be read (``known`` False) knows nobody: alarms go out by bed, no
observation goes out, since whose consent is missing cannot be told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from station.domain.patients.records import Purpose, Stay
from station.domain.patients.table import PatientTable


@dataclass(frozen=True, slots=True, repr=False)
class Identity:
    """A patient's identity as PID carries it. Never in a ``repr``: callers log."""

    name: str
    mrn: str
    birth_date: date

    def __repr__(self) -> str:
        return "Identity(...)"


@dataclass(frozen=True, slots=True)
class Subject:
    """One patient on record: pseudonym, stays, consents, identity (export consent only)."""

    patient_id: str
    stays: tuple[Stay, ...]
    storage: bool
    export: bool
    identity: Identity | None = field(default=None, repr=False)


class Subjects:
    """The snapshot: every patient on record. Empty and ``known`` by default (no admissions: every
    bed anonymous, as before admissions existed). Never changed once made; indexed by bed and
    pseudonym, since a period's summary asks who lay in a bed once per sample."""

    __slots__ = ("_by_bed", "_by_id", "known", "subjects")

    def __init__(self, subjects: tuple[Subject, ...] = (), known: bool = True) -> None:
        self.subjects = subjects
        self.known = known
        self._by_id = {s.patient_id: s for s in subjects}
        by_bed: dict[str, list[tuple[Stay, Subject]]] = {}
        for subject in subjects:
            for stay in subject.stays:
                by_bed.setdefault(stay.bed, []).append((stay, subject))
        self._by_bed = {bed: tuple(stays) for bed, stays in by_bed.items()}

    def __repr__(self) -> str:
        return f"Subjects({len(self.subjects)} patients, known={self.known})"

    def at(self, bed: str, at: float) -> Subject | None:
        """The patient who lay in ``bed`` at ``at``; None for an empty bed or an unknown table."""
        if not self.known:
            return None
        for stay, subject in self._by_bed.get(bed, ()):
            if stay.since <= at and (stay.until is None or at < stay.until):
                return subject
        return None

    def get(self, patient_id: str) -> Subject | None:
        """The patient of that pseudonym, if still on record."""
        return self._by_id.get(patient_id)

    def storage_refused(self) -> frozenset[str]:
        """Pseudonyms whose storage consent is not given: their queued observations must go."""
        return frozenset(s.patient_id for s in self.subjects if not s.storage)


def subjects_of(table: PatientTable, known: bool = True) -> Subjects:
    """The snapshot of ``table``; ``known`` False when the table could not be read."""
    if not known:
        return Subjects((), known=False)
    out = []
    for patient in table.all_patients():
        pid = patient.patient_id
        export = table.allows(pid, Purpose.EXPORT)
        identity = Identity(patient.name, patient.mrn, patient.birth_date) if export else None
        out.append(
            Subject(pid, patient.stays, table.allows(pid, Purpose.STORAGE), export, identity)
        )
    return Subjects(tuple(out))
