"""The demo ward's fictional patients, admitted at start so ``station --demo`` shows patients,
consent and its effects: one patient without display consent (name hidden on the tile) and one
without storage consent (nothing sent to the historian).

Kept out of the composition root, which only decides *when* they are admitted (before the core
thread runs). The ward admin is reached through :class:`Admissions`, the two blocking calls this
needs, so the demo does not depend on the GUI-thread presenters above it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Protocol

from station.domain.patients.records import Patient, PatientError, Purpose
from station.services.storage.patient_store import PatientStoreError

log = logging.getLogger(__name__)

DEMO_NURSE = "demo-nurse"
"""Who admits the demo's patients and records their consent (the demo session's default user)."""

_FULL_CONSENT = {Purpose.DISPLAY: True, Purpose.STORAGE: True, Purpose.EXPORT: True}
DEMO_PATIENTS: tuple[tuple[int, str, str, date, dict[Purpose, bool]], ...] = (
    (1, "Ada Demo", "DEMO-001", date(1948, 3, 14), _FULL_CONSENT),
    (2, "Ben Sample", "DEMO-002", date(1971, 11, 2), _FULL_CONSENT),
    (4, "Cleo Test", "DEMO-004", date(1939, 7, 30), {Purpose.DISPLAY: False}),
    (5, "Dev Example", "DEMO-005", date(1985, 1, 9), {Purpose.DISPLAY: True}),
)
"""(bed number, name, MRN, birth date, consent given or refused per purpose)."""


class Admissions(Protocol):
    """What admitting the demo patients needs of the ward admin."""

    @property
    def beds(self) -> Sequence[str]:
        """The ward's bed labels, in bed-number order."""
        ...

    def admit_now(self, bed: str, name: str, mrn: str, birth_date: date, user: str) -> Patient:
        """Admit a patient to a free bed (blocking)."""
        ...

    def record_consent_now(
        self,
        patient: Patient,
        purpose: Purpose,
        *,
        granted: bool,
        given_by: str,
        representative: str,
        user: str,
    ) -> object:
        """Record a consent given or refused (blocking)."""
        ...


def admit_demo_patients(ward: Admissions) -> None:
    """Admit :data:`DEMO_PATIENTS` to the beds the ward has; a refusal (a restart finds them
    admitted already) is logged and ends the admissions, never the demo."""
    try:
        for number, name, mrn, born, purposes in DEMO_PATIENTS:
            if number > len(ward.beds):
                continue
            bed = ward.beds[number - 1]
            patient = ward.admit_now(bed, name, mrn, born, DEMO_NURSE)
            for purpose, granted in purposes.items():
                ward.record_consent_now(
                    patient,
                    purpose,
                    granted=granted,
                    given_by="patient",
                    representative="",
                    user=DEMO_NURSE,
                )
    except (PatientError, PatientStoreError) as exc:
        log.warning("demo patients not admitted: %s", exc)
