"""The patient records: an admission with its stays and devices, a consent event, the stays a
missing consent keeps back, and the error.

Why a module of their own: every layer that shows or stores a patient needs these types (the
dialogs, the presenters, the store), and none of them needs the table's rules to do so.
Immutable, and identity stays out of every ``repr`` (see :mod:`station.domain.patients`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


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


@dataclass(frozen=True, slots=True)
class WithheldStay:
    """A stay whose data a missing consent keeps back: the bed, and from when until when (None:
    the patient is still there).

    Why bed and times: the station's records (the spool, the trend and alarm stores) are kept by
    bed and time, not by patient, so this is what finds a patient's data in them. ``patient`` is
    the pseudonym while the record exists, and "" for an export exclusion kept after the
    patient's identity was purged: bed and times identify nobody, yet keep that stay out of every
    export.
    """

    bed: str
    since: float
    until: float | None
    patient: str = ""
