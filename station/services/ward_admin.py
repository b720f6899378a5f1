"""Admissions, consent and onboarding at the station: the one place that changes them.

Lives on the GUI thread, behind the dialogs (the action layer has checked the role before any
method here runs). Each change is validated by the pure models (:mod:`station.domain.patients`,
:mod:`station.domain.devices`, :mod:`station.domain.vouchers`), written to its file, audited, and
only then put in force:

- the patient table is saved encrypted (:class:`PatientStore`); a save that fails (no keyring, full
  disk) undoes the change in memory and raises, so the screen never shows an admission the station
  would forget;
- the core gets the new bed policy (standby, storage consent) over a queued signal;
- a registry change is written to ``devices.json``; the core reloads it, audits it and re-routes
  the device (the same path as a change made with ``station devices`` in a shell).

Patient identity (name, MRN, birth date) stays here and in the encrypted file: audit records and
logs name the patient by its pseudonymous id only, and nothing of it goes to MQTT (CONTRACT §2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QObject, Signal

from station.domain.broker_credentials import DeviceCredential, make_credential
from station.domain.devices import DeviceBook, RegistryError
from station.domain.patients import ConsentEvent, Patient, PatientError, PatientTable, Purpose
from station.domain.vouchers import TrustStore, VoucherCheck, check_voucher, load_trust
from station.domain.ward import bed_labels
from station.services.core import AuditSink, BedPolicy
from station.services.device_registry import REGISTRY_FILE, DeviceRegistry
from station.services.patient_store import PatientStore, PatientStoreError
from station.settings import Settings

log = logging.getLogger(__name__)

PATIENT_FILE = "patients.enc"
_T = TypeVar("_T")


class WardAdmin(QObject):
    """See the module docstring.

    Signals:
        changed(): patients or devices changed; views refresh.
        policy_changed(dict): bed → :class:`BedPolicy`, for the core (queued).
        devices_written(): the registry file changed; the core reloads it (queued).
    """

    changed = Signal()
    policy_changed = Signal(object)
    devices_written = Signal()

    def __init__(
        self,
        settings: Settings,
        audit: AuditSink,
        *,
        clock: Callable[[], float] = time.time,
        apply_credential: Callable[[DeviceCredential], None] | None = None,
        role: Callable[[], str] = lambda: "user",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._role = role
        self._settings = settings
        self._audit = audit
        self._clock = clock
        self._apply_credential = apply_credential
        data = settings.station.data_path
        self.registry = DeviceRegistry(data / REGISTRY_FILE)
        self.trust_dir = Path(settings.devices.trust_dir or data / "trust").expanduser()
        self.beds = bed_labels(settings.ward.beds, settings.ward.bed_prefix)
        self._store = PatientStore(data / PATIENT_FILE, settings.station.id)
        self.fault: str | None = None
        try:
            self.table = self._store.load()
        except PatientStoreError as exc:
            # The ward still runs (anonymous beds); admissions wait until the key is back.
            self.fault = str(exc)
            self.table = PatientTable()
            log.error("patient table unavailable: %s", exc)
            audit.record("patients.fault", outcome="failure", details={"error": str(exc)[:300]})
        else:
            self._purge_discharged()

    # -- queries ---------------------------------------------------------------------------

    def occupant(self, bed: str) -> Patient | None:
        """The patient admitted to ``bed``."""
        return self.table.occupant(bed)

    def allows(self, patient: Patient, purpose: Purpose) -> bool:
        """Whether the patient's latest consent for ``purpose`` is given."""
        return self.table.allows(patient.patient_id, purpose)

    def consents(self, patient: Patient) -> tuple[ConsentEvent, ...]:
        """The patient's consent history, oldest first."""
        return self.table.consent_events(patient.patient_id)

    def policy(self) -> dict[str, BedPolicy]:
        """Bed → what it may do. A bed with no patient and no discharge is anonymous: shown,
        alarmed and stored as before admissions existed."""
        out: dict[str, BedPolicy] = {}
        if self.fault is not None:
            # Whose consent is missing cannot be known: nothing goes to the historian.
            return {bed: BedPolicy(standby=False, store=False) for bed in self.beds}
        discharged = {
            p.stays[-1].bed for p in self.table.all_patients() if not p.active and p.stays
        }
        for bed in self.beds:
            patient = self.table.occupant(bed)
            if patient is not None:
                store = self.allows(patient, Purpose.STORAGE)
                out[bed] = BedPolicy(False, store, patient.patient_id)
            elif bed in discharged:
                out[bed] = BedPolicy(standby=True, store=True)
        return out

    def exportable(self, bed: str) -> bool:
        """Whether data of ``bed``'s current patient may leave the station in an export: an
        admitted patient needs export consent; an anonymous bed has no one to ask."""
        patient = self.table.occupant(bed)
        return patient is None or self.allows(patient, Purpose.EXPORT)

    def export_excluded(self, bed: str) -> list[tuple[float, float]]:
        """The times ``bed`` held a patient who has not consented to export (each stay, open
        stays up to now): an export leaves out whatever falls in them."""
        spans = []
        for patient in self.table.all_patients():
            if self.allows(patient, Purpose.EXPORT):
                continue
            for stay in patient.stays:
                if stay.bed == bed:
                    until = stay.until if stay.until is not None else float("inf")
                    spans.append((stay.since, until))
        return spans

    def admission_text(self) -> str:
        """How devices reach a bed on this ward, in words for the window and the dialog."""
        if self._settings.devices.admission == "open":
            return "OPEN admission: any valid device takes a free bed (demo/trial ward)"
        return "only onboarded devices reach a bed"

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
            voucher,
            self.trust(),
            now=self._clock(),
            used=book.used_vouchers,
            revoked=book.revoked,
        )

    # -- devices ---------------------------------------------------------------------------

    def onboard(self, voucher: str | bytes, bed: str, signing: bool, user: str) -> DeviceCredential:
        """Enrol the voucher's device on ``bed`` and make its broker credential (shown once;
        in the demo also given to the embedded broker).

        Raises:
            RegistryError: the voucher does not verify, or the device or bed is taken.
        """
        self._bed_usable(bed)
        check = self.check(voucher)
        if check.claims is not None:
            try:  # before anything is written: an id the broker cannot take is refused here
                make_credential(check.claims.device_id)
            except ValueError as exc:
                raise RegistryError(str(exc)) from None
        rec = self.registry.onboard(check, bed=bed, signing=signing, by=user, at=self._clock())
        credential = make_credential(rec.device_id)
        if self._apply_credential is not None:
            self._apply_credential(credential)
        self._devices_changed()
        return credential

    def reassign(self, device_id: str, bed: str, user: str) -> None:
        """Move an onboarded device to ``bed`` ("" releases it from any bed); it leaves the
        patient it was associated with."""
        self._bed_usable(bed)
        self.registry.reassign(device_id, bed, by=user, at=self._clock())
        self._release(device_id)
        self._devices_changed()

    def revoke(self, device_id: str, user: str) -> None:
        """Decommission a device: its later messages are refused."""
        self.registry.revoke(device_id, by=user, at=self._clock())
        self._release(device_id)
        self._devices_changed()

    def _bed_usable(self, bed: str) -> None:
        if bed and bed not in self.beds:
            raise RegistryError(f"no bed {bed!r} on this ward")
        pinned = {self.beds[n - 1]: d for d, n in self._settings.ward.devices.items()}
        if bed in pinned:
            raise RegistryError(f"{bed} is fed by {pinned[bed]} ([ward] devices in the config)")

    def _release(self, device_id: str) -> None:
        """Take a moved or revoked device off its patient's record (best effort: the registry
        is what routes; a table that cannot be saved keeps a stale device list only)."""
        bed = self.table.bed_of_device(device_id)
        if bed is None or self.fault is not None:
            return
        try:
            self._change(lambda: self.table.release_device(bed, device_id, at=self._clock()))
        except (PatientError, PatientStoreError) as exc:
            log.warning("device %s not released from its patient: %s", device_id, exc)

    def _devices_changed(self) -> None:
        self.devices_written.emit()
        self.changed.emit()

    # -- patients --------------------------------------------------------------------------

    def admit(self, bed: str, name: str, mrn: str, birth_date: date, user: str) -> Patient:
        """Admit a patient to a free bed; the bed's onboarded device goes with the patient.

        Raises:
            PatientError: a rule refused it; PatientStoreError: it could not be kept.
        """
        self._available()
        now = self._clock()

        def change() -> Patient:
            patient = self.table.admit(
                bed, name=name, mrn=mrn, birth_date=birth_date, by=user, at=now
            )
            rec = self.book().on_bed(bed)
            if rec is not None and self.table.bed_of_device(rec.device_id) is None:
                patient = self.table.associate_device(bed, rec.device_id, at=now)
            return patient

        patient = self._change(change)
        self._record("patient.admit", user, bed, {"patient": patient.patient_id})
        return patient

    def discharge(self, bed: str, user: str) -> Patient:
        """Discharge the bed's patient: the bed goes to standby and its alarms end."""
        self._available()
        patient = self._change(lambda: self.table.discharge(bed, by=user, at=self._clock()))
        self._record("patient.discharge", user, bed, {"patient": patient.patient_id})
        return patient

    def transfer(self, from_bed: str, to_bed: str, user: str) -> Patient:
        """Move a patient and their onboarded devices to a free bed; history follows them.

        Raises:
            PatientError, RegistryError: a rule refused it (nothing changed);
            PatientStoreError: it could not be kept (the devices are moved back).
        """
        self._available()
        patient = self.table.occupant(from_bed)
        if patient is None:
            raise PatientError(f"no patient in {from_bed}")
        if self.table.occupant(to_bed) is not None:
            raise PatientError(f"{to_bed} has a patient")
        self._bed_usable(to_bed)
        book = self.book()
        # Only what feeds the patient's bed now: a device moved elsewhere since stays there.
        moved = [
            d
            for d in patient.devices
            if (r := book.get(d)) is not None and r.active and r.bed == from_bed
        ]
        done: list[str] = []
        try:
            for device in moved:
                self.registry.reassign(device, to_bed, by=user, at=self._clock())
                done.append(device)
            patient = self._change(
                lambda: self.table.transfer(from_bed, to_bed, by=user, at=self._clock())
            )
        except (PatientError, PatientStoreError, RegistryError, OSError):
            for device in done:
                self.registry.reassign(device, from_bed, by=user, at=self._clock())
            raise
        finally:
            if moved:
                self.devices_written.emit()
        self._record(
            "patient.transfer",
            user,
            to_bed,
            {"patient": patient.patient_id, "from": from_bed, "devices": moved},
        )
        return patient

    def record_consent(
        self,
        patient: Patient,
        purpose: Purpose,
        *,
        granted: bool,
        given_by: str,
        representative: str,
        user: str,
        note: str = "",
    ) -> ConsentEvent:
        """Record a consent given or withdrawn; enforced from the next message or export."""
        self._available()
        event = self._change(
            lambda: self.table.record_consent(
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
        )
        self._record(
            "consent.give" if granted else "consent.withdraw",
            user,
            patient.bed or "",
            {
                "patient": patient.patient_id,
                "purpose": purpose.value,
                "given_by": given_by,  # the representative's name stays in the patient table
                "policy": event.policy_version,
            },
        )
        return event

    # -- internals -------------------------------------------------------------------------

    def _available(self) -> None:
        if self.fault is not None:
            raise PatientStoreError(self.fault)

    def _change(self, change: Callable[[], _T]) -> _T:
        """Apply a change to the table and save it; on any failure the table is as before."""
        before = self.table.to_dict()
        try:
            result = change()
            self._store.save(self.table)
        except (PatientError, RegistryError):
            self.table = PatientTable.from_dict(before)
            raise
        except (PatientStoreError, OSError) as exc:
            self.table = PatientTable.from_dict(before)
            log.error("patient table not saved: %s", exc)
            self._audit.record(
                "patients.fault", outcome="failure", details={"error": str(exc)[:300]}
            )
            raise PatientStoreError(f"not saved, nothing changed: {exc}") from exc
        except BaseException:
            self.table = PatientTable.from_dict(before)
            raise
        return result

    def _record(self, action: str, user: str, bed: str, details: dict[str, object]) -> None:
        self._audit.record(action, actor=user, role=self._role(), target=bed, details=details)
        self.policy_changed.emit(self.policy())
        self.changed.emit()

    def _purge_discharged(self) -> None:
        """Forget the identity of patients discharged longer ago than the retention setting
        (their vitals stay where the historian and trend store keep them, under the bed)."""
        keep_s = self._settings.patients.keep_discharged_days * 86400
        before = self.table.to_dict()
        gone = self.table.purge_discharged(self._clock() - keep_s)
        if not gone:
            return
        try:
            self._store.save(self.table)
        except (PatientStoreError, OSError) as exc:
            self.table = PatientTable.from_dict(before)
            log.error("discharged patients not purged: %s", exc)
            return
        self._audit.record("patient.purge", target="patients", details={"patients": list(gone)})
