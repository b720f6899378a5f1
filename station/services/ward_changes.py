"""The worker side of :class:`~station.presenters.ward_admin.WardAdmin`: the changes themselves.

Every method here blocks (the registry's ``flock``, the keyring for the patient table's key, an
fsynced write) and runs on the ward admin's worker thread (``ward-admin``), or on the GUI thread
only before the event loop runs (start-up). One change at a time, under one lock: each works on a
copy of the saved table, which replaces it only once it is on disk, so a change that is refused or
cannot be saved leaves nothing behind. Each returns an :class:`Outcome` (never raises a refusal)
for the GUI thread to put in force; audit records are written here, right after the save, so a
change saved just before the station stops is audited even if the GUI never sees its outcome.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Generic, TypeVar

from station.config.settings import Settings
from station.domain.adt.table_edits import corrected_identity, discharge_cancelled
from station.domain.broker_credentials import (
    CredentialRemoval,
    DeviceCredential,
    credential_removal,
    make_credential,
)
from station.domain.devices import DeviceBook, RegistryError
from station.domain.patients.records import ConsentEvent, Patient, PatientError, Purpose
from station.domain.patients.table import PatientTable
from station.domain.ports import AuditSink
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import load_trust
from station.domain.vouchers.model import TrustError, TrustStore, VoucherCheck
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.patient_store import PatientStore, PatientStoreError

log = logging.getLogger(__name__)

_T = TypeVar("_T")
# What a change may refuse with; anything else is a bug (the jobs helper logs it).
REFUSALS = (PatientError, PatientStoreError, RegistryError, TrustError, OSError, ValueError)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[_T]):
    """What a change did, for the GUI thread to put in force: its value or its refusal, the new
    saved table (None: unchanged) and which signals follow."""

    value: _T | None = None
    error: Exception | None = None
    table: PatientTable | None = None
    policy: bool = False  # the bed policy may have changed (and views refresh)
    devices: bool = False  # the registry file was written
    changed: bool = False  # views refresh


class WardChanges:
    """See the module docstring. Created on the GUI thread at start (it loads the table);
    thereafter used by one thread at a time, under its lock.

    Args:
        settings: the ward (beds, pinned devices, consent policy, retention).
        audit: where changes are recorded (thread-safe).
        clock: UTC epoch seconds.
        apply_credential: gives a new device credential to the demo's broker (thread-safe).
        store, registry, trust_dir: the patient table, the device registry, the voucher keys.
        beds: the ward's bed labels.
        remove_credential: refuses a revoked device's user at the demo's broker (thread-safe).
    """

    def __init__(
        self,
        settings: Settings,
        audit: AuditSink,
        clock: Callable[[], float],
        apply_credential: Callable[[DeviceCredential], None] | None,
        store: PatientStore,
        registry: DeviceRegistry,
        trust_dir: Path,
        beds: tuple[str, ...],
        *,
        remove_credential: Callable[[str], None] | None = None,
    ) -> None:
        self._settings, self._audit, self._clock = settings, audit, clock
        self._apply_credential, self._remove_credential = apply_credential, remove_credential
        self._store, self.registry, self.trust_dir, self._beds = store, registry, trust_dir, beds
        self._lock = threading.Lock()
        self.fault: str | None = None
        try:
            self.saved = self._store.load()
        except PatientStoreError as exc:
            # The ward still runs (anonymous beds); admissions wait until the key is back.
            self.fault = str(exc)
            self.saved = PatientTable()
            log.error("patient table unavailable: %s", exc)
            audit.record("patients.fault", outcome="failure", details={"error": str(exc)[:300]})
        else:
            self._purge_discharged()

    # -- reading -------------------------------------------------------------------------------

    def book(self) -> DeviceBook:
        """The registry as it is on disk.

        Raises:
            RegistryError, OSError: the file is damaged or unreadable.
        """
        return self.registry.load()

    def trust(self) -> TrustStore:
        """The voucher keys in the trust folder (read afresh: an admin may have added one).

        Raises:
            TrustError: a key file there is unreadable.
        """
        return load_trust(self.trust_dir)

    def check(self, voucher: str | bytes) -> VoucherCheck:
        """Verify a voucher against the trust folder and the registry (replay, revocation)."""
        book = self.book()
        return check_voucher(
            voucher, self.trust(), now=self._clock(), used=book.used_vouchers, revoked=book.revoked
        )

    # -- changes -------------------------------------------------------------------------------

    def admit(
        self, bed: str, name: str, mrn: str, birth_date: date, user: str, role: str
    ) -> Outcome[Patient]:
        """Admit a patient to a free bed; the bed's onboarded device goes with the patient."""
        now = self._clock()

        def change(table: PatientTable) -> Patient:
            patient = table.admit(bed, name=name, mrn=mrn, birth_date=birth_date, by=user, at=now)
            rec = self.book().on_bed(bed)
            if rec is not None and table.bed_of_device(rec.device_id) is None:
                patient = table.associate_device(bed, rec.device_id, at=now)
            return patient

        def record(p: Patient) -> None:
            self._record("patient.admit", user, role, bed, {"patient": p.patient_id})

        return self._patients(change, record)

    def discharge(
        self, bed: str, user: str, role: str, action: str = "patient.discharge"
    ) -> Outcome[Patient]:
        """Discharge the bed's patient: the bed goes to standby and its alarms end. ``action``
        names it in the trail (the ADT feed's cancelled admission is ``patient.admit_cancel``)."""

        def record(p: Patient) -> None:
            self._record(action, user, role, bed, {"patient": p.patient_id})

        return self._patients(lambda table: table.discharge(bed, by=user, at=self._clock()), record)

    def consent(
        self,
        patient: Patient,
        purpose: Purpose,
        granted: bool,
        given_by: str,
        representative: str,
        user: str,
        note: str,
        role: str,
    ) -> Outcome[ConsentEvent]:
        """Record a consent given or withdrawn; enforced from the next message or export."""

        def change(table: PatientTable) -> ConsentEvent:
            return table.record_consent(
                patient.patient_id,
                purpose,
                granted=granted,
                given_by=given_by,
                representative=representative,
                captured_by=user,
                policy_version=self._settings.patients.consent_policy,
                at=self._clock(),
                note=note,
            )

        def record(event: ConsentEvent) -> None:
            details: dict[str, object] = {
                "patient": patient.patient_id,
                "purpose": purpose.value,
                "given_by": given_by,  # the representative's name stays in the patient table
                "policy": event.policy_version,
            }
            action = "consent.give" if granted else "consent.withdraw"
            self._record(action, user, role, patient.bed or "", details)

        return self._patients(change, record)

    def transfer(
        self, from_bed: str, to_bed: str, user: str, role: str, action: str = "patient.transfer"
    ) -> Outcome[Patient]:
        """Move a patient and their onboarded devices to a free bed (the devices go back if
        the table cannot be saved); ``action`` as for :meth:`discharge`."""
        with self._lock:
            moved: list[str] = []
            try:
                self._available()
                patient = self.saved.occupant(from_bed)
                if patient is None:
                    raise PatientError(f"no patient in {from_bed}")
                if self.saved.occupant(to_bed) is not None:
                    raise PatientError(f"{to_bed} has a patient")
                self._bed_usable(to_bed)
                book = self.book()
                # Only what feeds the patient's bed now: a device moved elsewhere since stays.
                moved = [
                    d
                    for d in patient.devices
                    if (r := book.get(d)) is not None and r.active and r.bed == from_bed
                ]
                outcome = self._transfer_locked(from_bed, to_bed, user, moved)
            except REFUSALS as exc:
                return Outcome(error=exc)
            if outcome.error is None and outcome.value is not None:
                details: dict[str, object] = {
                    "patient": outcome.value.patient_id,
                    "from": from_bed,
                    "devices": moved,
                }
                self._record(action, user, role, to_bed, details)
            return outcome

    def _transfer_locked(
        self, from_bed: str, to_bed: str, user: str, moved: list[str]
    ) -> Outcome[Patient]:
        done: list[str] = []
        try:
            for device in moved:
                self.registry.reassign(device, to_bed, by=user, at=self._clock())
                done.append(device)
            table, patient = self._change(
                lambda t: t.transfer(from_bed, to_bed, by=user, at=self._clock())
            )
        except (PatientError, PatientStoreError, RegistryError, OSError) as exc:
            for device in done:
                self.registry.reassign(device, from_bed, by=user, at=self._clock())
            return Outcome(error=exc, devices=bool(moved))
        return Outcome(patient, table=table, policy=True, devices=bool(moved))

    def correct_identity(
        self, patient_id: str, name: str, birth_date: date | None, user: str, role: str
    ) -> Outcome[Patient]:
        """Correct an admitted patient's name and birth date (the ADT feed's A08; an empty
        name or None keeps the field); the MRN is the key. Audited with the fields changed,
        never their values."""
        fields: list[str] = []

        def rewrite(saved: PatientTable) -> tuple[PatientTable, Patient]:
            table, changed = corrected_identity(saved, patient_id, name=name, birth_date=birth_date)
            fields.extend(changed)
            return table, _found(table, patient_id)

        def record(p: Patient) -> None:
            if fields:  # the saved table was already right: nothing to record
                details: dict[str, object] = {"patient": p.patient_id, "fields": fields}
                self._record("patient.identity_update", user, role, p.bed or "", details)

        return self._rewritten(rewrite, record)

    def cancel_discharge(self, patient_id: str, user: str, role: str) -> Outcome[Patient]:
        """Take a discharge back (the ADT feed's A13): the stay goes on in its bed, and the
        bed's onboarded device goes with the patient again, as at an admission."""
        now = self._clock()

        def rewrite(saved: PatientTable) -> tuple[PatientTable, Patient]:
            table = discharge_cancelled(saved, patient_id)
            patient = _found(table, patient_id)
            rec = self.book().on_bed(patient.bed or "")
            if rec is not None and patient.bed and table.bed_of_device(rec.device_id) is None:
                patient = table.associate_device(patient.bed, rec.device_id, at=now)
            return table, patient

        def record(p: Patient) -> None:
            details: dict[str, object] = {"patient": p.patient_id}
            self._record("patient.discharge_cancel", user, role, p.bed or "", details)

        return self._rewritten(rewrite, record)

    def onboard(
        self, voucher: str | bytes, bed: str, signing: bool, user: str
    ) -> Outcome[DeviceCredential]:
        """Enrol the voucher's device on ``bed`` and make its broker credential."""
        with self._lock:
            try:
                self._bed_usable(bed)
                check = self.check(voucher)
                if check.claims is not None:
                    try:  # before anything is written: an id the broker cannot take is refused
                        make_credential(check.claims.device_id)
                    except ValueError as exc:
                        raise RegistryError(str(exc)) from None
                at = self._clock()
                rec = self.registry.onboard(check, bed=bed, signing=signing, by=user, at=at)
                credential = make_credential(rec.device_id)
                if self._apply_credential is not None:
                    self._apply_credential(credential)
            except REFUSALS as exc:
                return Outcome(error=exc)
            return Outcome(credential, devices=True, changed=True)

    def reassign(self, device_id: str, bed: str, user: str) -> Outcome[None]:
        """Move an onboarded device to ``bed`` ("" releases it); it leaves its patient."""
        with self._lock:
            try:
                self._bed_usable(bed)
                self.registry.reassign(device_id, bed, by=user, at=self._clock())
            except REFUSALS as exc:
                return Outcome(error=exc)
            return Outcome(table=self._release(device_id), devices=True, changed=True)

    def revoke(self, device_id: str, user: str) -> Outcome[CredentialRemoval | None]:
        """Decommission a device: its later messages are refused. The value says what to undo
        on the broker, where its credential is still valid (None: it never had one); in the
        demo the embedded broker refuses it at once, as onboarding applies one at once."""
        with self._lock:
            try:
                self.registry.revoke(device_id, by=user, at=self._clock())
            except REFUSALS as exc:
                return Outcome(error=exc)
            removal = self._credential_removed(device_id)
            return Outcome(removal, table=self._release(device_id), devices=True, changed=True)

    def _credential_removed(self, device_id: str) -> CredentialRemoval | None:
        try:
            removal = credential_removal(device_id)
        except ValueError:
            return None  # not a name the broker could have had (never given a credential)
        if self._remove_credential is None:
            return removal
        self._remove_credential(device_id)
        return credential_removal(device_id, applied=True)

    def _bed_usable(self, bed: str) -> None:
        if bed and bed not in self._beds:
            raise RegistryError(f"no bed {bed!r} on this ward")
        pinned = {self._beds[n - 1]: d for d, n in self._settings.ward.devices.items()}
        if bed in pinned:
            raise RegistryError(f"{bed} is fed by {pinned[bed]} ([ward] devices in the config)")

    def _release(self, device_id: str) -> PatientTable | None:
        """Take a moved or revoked device off its patient's record (best effort: the registry
        is what routes; a table that cannot be saved keeps a stale device list only). The new
        table, or None if unchanged. Under the lock."""
        bed = self.saved.bed_of_device(device_id)
        if bed is None or self.fault is not None:
            return None
        try:
            table, _ = self._change(lambda t: t.release_device(bed, device_id, at=self._clock()))
        except (PatientError, PatientStoreError) as exc:
            log.warning("device %s not released from its patient: %s", device_id, exc)
            return None
        return table

    def _patients(
        self, change: Callable[[PatientTable], _T], record: Callable[[_T], None]
    ) -> Outcome[_T]:
        """A change of the patient table alone: saved, audited, then policy and views follow."""
        with self._lock:
            try:
                self._available()
                table, value = self._change(change)
            except REFUSALS as exc:
                return Outcome(error=exc)
            record(value)
            return Outcome(value, table=table, policy=True)

    def _rewritten(
        self,
        rewrite: Callable[[PatientTable], tuple[PatientTable, _T]],
        record: Callable[[_T], None],
    ) -> Outcome[_T]:
        """A change that makes a new table from the saved one (the ADT feed's corrections,
        :mod:`station.domain.adt.table_edits`), saved and audited as :meth:`_patients` does."""
        with self._lock:
            try:
                self._available()
                table, value = rewrite(self.saved)
            except REFUSALS as exc:
                return Outcome(error=exc)
            try:
                if table is not self.saved:
                    self._store.save(table)
            except (PatientStoreError, OSError) as exc:
                return Outcome(error=self._not_saved(exc))
            self.saved = table
            record(value)
            return Outcome(value, table=table, policy=True)

    def _available(self) -> None:
        if self.fault is not None:
            raise PatientStoreError(self.fault)

    def _change(self, change: Callable[[PatientTable], _T]) -> tuple[PatientTable, _T]:
        """Apply a change to a copy of the saved table and save it; the copy becomes the saved
        table only once it is on disk. Under the lock.

        Raises:
            PatientError, RegistryError: a rule refused it; PatientStoreError: not saved.
        """
        table = PatientTable.from_dict(self.saved.to_dict())
        try:
            result = change(table)
            self._store.save(table)
        except (PatientStoreError, OSError) as exc:
            raise self._not_saved(exc) from exc
        self.saved = table
        return table, result

    def _not_saved(self, exc: Exception) -> PatientStoreError:
        log.error("patient table not saved: %s", exc)
        self._audit.record("patients.fault", outcome="failure", details={"error": str(exc)[:300]})
        return PatientStoreError(f"not saved, nothing changed: {exc}")

    def _record(
        self, action: str, user: str, role: str, bed: str, details: dict[str, object]
    ) -> None:
        # Here, right after the save (thread-safe: the writer queues): a change saved just
        # before the station stops is audited even if the GUI never sees its outcome.
        self._audit.record(action, actor=user, role=role, target=bed, details=details)

    def _purge_discharged(self) -> None:
        """Forget the identity of patients discharged longer ago than the retention setting
        (their vitals stay where the historian and trend store keep them, under the bed). Who
        had refused export leaves an exclusion (bed and times) that exports keep honouring."""
        keep_s = self._settings.patients.keep_discharged_days * 86400
        table = PatientTable.from_dict(self.saved.to_dict())
        kept = len(table.export_exclusions)
        gone = table.purge_discharged(self._clock() - keep_s)
        if not gone:
            return
        try:
            self._store.save(table)
        except (PatientStoreError, OSError) as exc:
            log.error("discharged patients not purged: %s", exc)
            return
        self.saved = table
        details: dict[str, object] = {
            "patients": list(gone),
            "export_exclusions_kept": len(table.export_exclusions) - kept,
        }
        self._audit.record("patient.purge", target="patients", details=details)


def _found(table: PatientTable, patient_id: str) -> Patient:
    patient = table.patient(patient_id)
    if patient is None:
        raise PatientError("unknown patient")
    return patient
