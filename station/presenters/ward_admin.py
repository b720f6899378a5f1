"""Admissions, consent and onboarding at the station: the one place that changes them.

Two threads share the work (the GUI thread never waits on the keyring, a file or a lock):

- **GUI thread**: the queries (:meth:`WardAdmin.occupant`, :meth:`~WardAdmin.policy`, ...) read
  :attr:`WardAdmin.table`, a snapshot of the saved table that is replaced, never changed in place;
  the changes the dialogs call (:meth:`~WardAdmin.admit`, :meth:`~WardAdmin.onboard`, ...) return
  at once, and their ``done`` or ``failed`` callback runs later on this thread. The signals are
  emitted here too, once the change is saved.
- **worker** (:class:`~station.services.jobs.Jobs`, thread ``ward-admin``): each change is
  validated by the pure models (:mod:`station.domain.patients`, :mod:`station.domain.devices`,
  :mod:`station.domain.vouchers`), written to its file (registry under its ``flock``; the patient
  table encrypted with its key from the keyring, fsynced) and audited, one change at a time in the
  order asked. The ``*_now`` methods do the same on the calling thread, for the start-up before
  the event loop runs (the demo's admissions) and for scripts.

A patient table that cannot be saved (no keyring, full disk) changes nothing: the snapshot stays
as it was and the caller gets :class:`PatientStoreError`, so the screen never shows an admission
the station would forget. The core gets the new bed policy (standby, storage consent) over
``policy_changed``; a registry change is written to ``devices.json`` and ``devices_written`` makes
the core reload it, audit it and re-route the device (the path of ``station devices`` in a shell).

Patient identity (name, MRN, birth date) stays here and in the encrypted file: audit records and
logs name the patient by its pseudonymous id only, and nothing of it goes to MQTT (CONTRACT §2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from station.config.settings import Settings
from station.domain.adt.feed import AdtFeed
from station.domain.broker_credentials import CredentialRemoval, DeviceCredential
from station.domain.devices import DeviceBook
from station.domain.patients.policies import BedPolicies
from station.domain.patients.records import ConsentEvent, Patient, Purpose
from station.domain.patients.table import PatientTable
from station.domain.ports import AuditSink
from station.domain.vouchers.model import TrustStore, VoucherCheck
from station.domain.ward import BedPolicy, bed_labels
from station.services.jobs import Failed, Jobs, alive
from station.services.storage.device_registry import REGISTRY_FILE, DeviceRegistry
from station.services.storage.patient_store import PatientStore
from station.services.ward_changes import Outcome, WardChanges

log = logging.getLogger(__name__)

PATIENT_FILE = "patients.enc"
JOBS_THREAD = "ward-admin"
_T = TypeVar("_T")


class WardAdmin(QObject):
    """See the module docstring. Lives on the GUI thread; its writes run on ``jobs``.

    Signals (emitted on the GUI thread, after the change is saved):
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
        jobs: Jobs | None = None,
        remove_credential: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self._role = role
        self._settings = settings
        self._audit, self._clock = audit, clock
        # Beds whose monitoring a nurse suspended: bed → (reason, since). Kept in memory: a
        # restart resumes monitoring, which fails safe (a "No data" alarm, never a silent bed).
        self._suspended: dict[str, tuple[str, float]] = {}
        self.jobs = jobs if jobs is not None else Jobs(JOBS_THREAD, self)
        data = settings.station.data_path
        self.registry = DeviceRegistry(data / REGISTRY_FILE)
        self.trust_dir = Path(settings.devices.trust_dir or data / "trust").expanduser()
        self.beds = bed_labels(settings.ward.beds, settings.ward.bed_prefix)
        store = PatientStore(data / PATIENT_FILE, settings.station.id)
        self._changes = WardChanges(
            settings, audit, clock, apply_credential, store, self.registry, self.trust_dir,
            self.beds, remove_credential=remove_credential,
        )  # fmt: skip
        self.fault = self._changes.fault
        # The GUI thread's snapshot of the saved table: replaced after each change, never
        # changed in place (the worker changes a copy).
        self.table: PatientTable = self._changes.saved
        # What the hospital's ADT feed sent, when [adt] is on (station.links.adt_in sets it):
        # the census the admit dialog looks patients up in, and the admin's message journal.
        self.adt_feed: AdtFeed | None = None

    def stop(self, timeout: float) -> bool:
        """Finish the changes asked for (at most ``timeout`` s) and take no more: the station is
        stopping. True if none is left running."""
        return self.jobs.stop(timeout)

    # -- queries (GUI thread, from the snapshot) --------------------------------------------

    def occupant(self, bed: str) -> Patient | None:
        """The patient admitted to ``bed``."""
        return self.table.occupant(bed)

    def allows(self, patient: Patient, purpose: Purpose) -> bool:
        """Whether the patient's latest consent for ``purpose`` is given."""
        return self.table.allows(patient.patient_id, purpose)

    def consents(self, patient: Patient) -> tuple[ConsentEvent, ...]:
        """The patient's consent history, oldest first."""
        return self.table.consent_events(patient.patient_id)

    def policy(self) -> BedPolicies:
        """Bed → what it may do. A bed with no patient and no discharge is anonymous: shown,
        alarmed and stored as before admissions existed. With the stays whose storage consent
        is not given, for the core to hold back what it spooled of them already."""
        out: dict[str, BedPolicy] = {}
        if self.fault is not None:
            # Whose consent is missing cannot be known: nothing goes to the historian.
            return BedPolicies({bed: BedPolicy(standby=False, store=False) for bed in self.beds})
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
            suspended = self._suspended.get(bed)
            if suspended is not None and not (bed in out and out[bed].standby):
                kept = out.get(bed, BedPolicy())
                out[bed] = BedPolicy(True, kept.store, kept.patient, suspended[0])
        return BedPolicies(out, self.table.withheld(Purpose.STORAGE))

    def suspended(self, bed: str) -> tuple[str, float] | None:
        """Why and since when (wall time) the bed's monitoring is suspended, if it is."""
        return self._suspended.get(bed)

    def set_monitoring(self, bed: str, reason: str, user: str) -> None:
        """Suspend the bed's monitoring for ``reason`` (a patient off the monitor), or resume
        it (``reason`` empty). Audited with ``user``; the core hears it at once (no file is
        written: nothing waits for the worker)."""
        if bed not in self.beds or (not reason and bed not in self._suspended):
            return
        details: dict[str, object]
        if reason:
            self._suspended[bed] = (reason, self._clock())
            action, details = "bed.monitoring_suspend", {"reason": reason}
        else:
            was, _since = self._suspended.pop(bed)
            action, details = "bed.monitoring_resume", {"was": was}
        self._audit.record(
            action, actor=user, role=self._role(), target=bed, outcome="success", details=details
        )
        self.policy_changed.emit(self.policy())
        self.changed.emit()

    def exportable(self, bed: str) -> bool:
        """Whether data of ``bed``'s current patient may leave the station in an export: an
        admitted patient needs export consent; an anonymous bed has no one to ask."""
        patient = self.table.occupant(bed)
        return patient is None or self.allows(patient, Purpose.EXPORT)

    def export_excluded(self, bed: str) -> list[tuple[float, float]]:
        """The times ``bed`` held a patient who has not consented to export (each stay, open
        stays up to now, and those of purged patients who had refused): an export leaves out
        whatever falls in them."""
        return [
            (s.since, s.until if s.until is not None else float("inf"))
            for s in self.table.withheld(Purpose.EXPORT)
            if s.bed == bed
        ]

    def admission_text(self) -> str:
        """How devices reach a bed on this ward, in words for the window and the dialog."""
        if self._settings.devices.admission == "open":
            return "OPEN admission: any valid device takes a free bed (demo/trial ward)"
        return "only onboarded devices reach a bed"

    # -- reading files (blocking: the worker, or through the async forms below) -------------

    def book(self) -> DeviceBook:
        """The registry as it is on disk. Blocking: the GUI thread uses :meth:`load_book`.

        Raises:
            RegistryError, OSError: the file is damaged or unreadable.
        """
        return self._changes.book()

    def trust(self) -> TrustStore:
        """The voucher keys in the trust folder. Blocking (reads the folder).

        Raises:
            TrustError: a key file there is unreadable.
        """
        return self._changes.trust()

    def check(self, voucher: str | bytes) -> VoucherCheck:
        """Verify a voucher against the trust folder and the registry (replay, revocation).
        Blocking: the GUI thread uses :meth:`check_voucher`."""
        return self._changes.check(voucher)

    def load_book(
        self, done: Callable[[DeviceBook], None], failed: Failed, context: QObject | None = None
    ) -> None:
        """:meth:`book` on the worker; ``done`` or ``failed`` on the GUI thread."""
        self.jobs.submit(self._changes.book, done, failed, context=context)

    def check_voucher(
        self,
        voucher: str | bytes,
        done: Callable[[VoucherCheck], None],
        failed: Failed,
        context: QObject | None = None,
    ) -> None:
        """:meth:`check` on the worker; ``done`` or ``failed`` on the GUI thread."""
        self.jobs.submit(lambda: self._changes.check(voucher), done, failed, context=context)

    # -- changes: the dialogs' (GUI thread, asynchronous) ------------------------------------

    def admit(
        self,
        bed: str,
        name: str,
        mrn: str,
        birth_date: date,
        user: str,
        *,
        done: Callable[[Patient], None] | None = None,
        failed: Failed | None = None,
        context: QObject | None = None,
    ) -> None:
        """:meth:`admit_now` on the worker; ``done(patient)`` or ``failed(error)`` follows on the
        GUI thread (not at all once ``context`` is deleted). The same for every change below."""
        role = self._role()
        work = lambda: self._changes.admit(bed, name, mrn, birth_date, user, role)  # noqa: E731
        self._submit(work, done, failed, context)

    def discharge(
        self,
        bed: str,
        user: str,
        *,
        done: Callable[[Patient], None] | None = None,
        failed: Failed | None = None,
        context: QObject | None = None,
    ) -> None:
        """:meth:`discharge_now` on the worker."""
        role = self._role()
        self._submit(lambda: self._changes.discharge(bed, user, role), done, failed, context)

    def transfer(
        self,
        from_bed: str,
        to_bed: str,
        user: str,
        *,
        done: Callable[[Patient], None] | None = None,
        failed: Failed | None = None,
        context: QObject | None = None,
    ) -> None:
        """:meth:`transfer_now` on the worker."""
        role = self._role()
        work = lambda: self._changes.transfer(from_bed, to_bed, user, role)  # noqa: E731
        self._submit(work, done, failed, context)

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
        done: Callable[[ConsentEvent], None] | None = None,
        failed: Failed | None = None,
        context: QObject | None = None,
    ) -> None:
        """:meth:`record_consent_now` on the worker."""
        role = self._role()
        consent = (patient, purpose, granted, given_by, representative, user, note)
        self._submit(lambda: self._changes.consent(*consent, role), done, failed, context)

    def onboard(
        self,
        voucher: str | bytes,
        bed: str,
        signing: bool,
        user: str,
        *,
        done: Callable[[DeviceCredential], None] | None = None,
        failed: Failed | None = None,
        context: QObject | None = None,
    ) -> None:
        """:meth:`onboard_now` on the worker."""
        work = lambda: self._changes.onboard(voucher, bed, signing, user)  # noqa: E731
        self._submit(work, done, failed, context)

    def reassign(
        self,
        device_id: str,
        bed: str,
        user: str,
        *,
        done: Callable[[None], None] | None = None,
        failed: Failed | None = None,
        context: QObject | None = None,
    ) -> None:
        """:meth:`reassign_now` on the worker."""
        self._submit(lambda: self._changes.reassign(device_id, bed, user), done, failed, context)

    def revoke(
        self,
        device_id: str,
        user: str,
        *,
        done: Callable[[CredentialRemoval | None], None] | None = None,
        failed: Failed | None = None,
        context: QObject | None = None,
    ) -> None:
        """:meth:`revoke_now` on the worker."""
        self._submit(lambda: self._changes.revoke(device_id, user), done, failed, context)

    def apply(
        self,
        change: Callable[[WardChanges], Outcome[_T]],
        *,
        done: Callable[[_T], None] | None = None,
        failed: Failed | None = None,
        context: QObject | None = None,
    ) -> None:
        """Run ``change`` on the worker, given the worker's own operations, and put its outcome
        in force as the dialogs' changes are. For an interface (the ADT feed) that decides
        against the saved table, which a change still on its way may have made differ from
        this thread's snapshot, and names its own actor and role."""
        self._submit(lambda: change(self._changes), done, failed, context)

    # -- changes: blocking (start-up before the event loop, scripts) -------------------------

    def admit_now(self, bed: str, name: str, mrn: str, birth_date: date, user: str) -> Patient:
        """Admit a patient to a free bed; the bed's onboarded device goes with the patient.

        Raises:
            PatientError: a rule refused it; PatientStoreError: it could not be kept.
        """
        return self._now(self._changes.admit(bed, name, mrn, birth_date, user, self._role()))

    def discharge_now(self, bed: str, user: str) -> Patient:
        """Discharge the bed's patient: the bed goes to standby and its alarms end."""
        return self._now(self._changes.discharge(bed, user, self._role()))

    def transfer_now(self, from_bed: str, to_bed: str, user: str) -> Patient:
        """Move a patient and their onboarded devices to a free bed; history follows them.

        Raises:
            PatientError, RegistryError: a rule refused it (nothing changed);
            PatientStoreError: it could not be kept (the devices are moved back).
        """
        return self._now(self._changes.transfer(from_bed, to_bed, user, self._role()))

    def record_consent_now(
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
        consent = (patient, purpose, granted, given_by, representative, user, note)
        return self._now(self._changes.consent(*consent, self._role()))

    def onboard_now(
        self, voucher: str | bytes, bed: str, signing: bool, user: str
    ) -> DeviceCredential:
        """Enrol the voucher's device on ``bed`` and make its broker credential (shown once;
        in the demo also given to the embedded broker).

        Raises:
            RegistryError: the voucher does not verify, or the device or bed is taken.
        """
        return self._now(self._changes.onboard(voucher, bed, signing, user))

    def reassign_now(self, device_id: str, bed: str, user: str) -> None:
        """Move an onboarded device to ``bed`` ("" releases it from any bed); it leaves the
        patient it was associated with."""
        self._now(self._changes.reassign(device_id, bed, user))

    def revoke_now(self, device_id: str, user: str) -> CredentialRemoval | None:
        """Decommission a device: its later messages are refused. Returns what to undo on the
        broker, where its credential stays valid until then (applied at once in the demo)."""
        return self._now(self._changes.revoke(device_id, user))

    # -- putting a change in force (the calling thread: GUI) --------------------------------

    def _submit(
        self,
        work: Callable[[], Outcome[_T]],
        done: Callable[[_T], None] | None,
        failed: Failed | None,
        context: QObject | None,
    ) -> None:
        def finish(outcome: Outcome[_T]) -> None:
            self._put_in_force(outcome)  # whoever asked may be gone; the ward is not
            if not alive(context):
                return
            if outcome.error is not None:
                if failed is not None:
                    failed(outcome.error)
            elif done is not None:
                done(outcome.value)  # type: ignore[arg-type]  # set whenever error is None

        def broken(exc: Exception) -> None:  # a bug, not a refusal: nothing was changed
            log.error("ward change failed: %s", exc, exc_info=exc)
            if failed is not None and alive(context):
                failed(exc)

        self.jobs.submit(work, finish, broken)

    def _now(self, outcome: Outcome[_T]) -> _T:
        self._put_in_force(outcome)
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[return-value]  # set whenever error is None

    def _put_in_force(self, outcome: Outcome[Any]) -> None:
        if outcome.table is not None:
            self.table = outcome.table
        if outcome.devices:
            self.devices_written.emit()
        if outcome.policy:
            self.policy_changed.emit(self.policy())
        if outcome.policy or outcome.changed:
            self.changed.emit()
