"""The screen's side of admissions, consent and devices: the tiles kept in step with who is in
which bed, and the ward's admin dialogs (patient, consent, devices, onboarding).

Kept out of :mod:`station.ui.main_window` so that file stays about the ward view. It knows the
window only through narrow collaborators: the bed tiles (to show the patient and take the tiles'
patient and consent links) and a :class:`DialogHost`, the admin-dialog controller
(:class:`station.ui.admin_dialogs.AdminDialogs`), which asks the action layer first (``patients``
for admit/transfer/discharge/consent, ``devices`` for the registry; it checks the role and
audits a denial) and closes these dialogs when the session locks or changes hands.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Protocol

from PySide6.QtWidgets import QDialog, QWidget

from station.domain.patients.records import Purpose
from station.domain.roles import Action
from station.domain.status import IngestStats
from station.domain.ward import Unassigned
from station.presenters.ward_admin import WardAdmin
from station.ui.consent_dialog import ConsentDialog
from station.ui.devices_dialog import DevicesDialog
from station.ui.onboarding_dialog import OnboardingDialog
from station.ui.patient_dialog import PatientDialog
from station.ui.tile import BedTile

TOOLTIP = (
    "The patient's name shows only with display consent; vitals and alarms are shown for care "
    "either way. 'Not stored': without storage consent nothing goes to the historian."
)


class DialogHost(Protocol):
    """What the ward's dialogs need of the one who opens admin dialogs."""

    def authorize(self, action: Action, target: str) -> str | None:
        """The session's user if its role may do ``action``; else None, the denial audited
        and a login asked for."""
        ...

    def record_read(self, view: str, target: str) -> None:
        """Audit that ``view`` of ``target`` (a bed) was opened: a read of patient data."""
        ...

    def keep_and_show(self, dialog: QDialog) -> QDialog:
        """Show ``dialog``, to be closed when the session locks or changes hands."""
        ...

    def notify(self, text: str) -> None:
        """A short notice in the status bar (nothing modal over the ward)."""
        ...

    @property
    def dialog_parent(self) -> QWidget:
        """The window the dialogs belong to."""
        ...


class WardControls:
    """See the module docstring. Owned by the admin-dialog controller; GUI thread."""

    def __init__(
        self, tiles: Mapping[str, BedTile], admin: WardAdmin, host: DialogHost, demo: bool
    ) -> None:
        self._tiles, self.admin, self._host, self._demo = tiles, admin, host, demo
        self._occupants: dict[str, str | None] = {}
        self._unassigned: tuple[Unassigned, ...] = ()
        self.devices_dialog: DevicesDialog | None = None
        self.last_dialog: QDialog | None = None
        for tile in tiles.values():
            tile.patient_wanted.connect(self.open_patient)
            tile.consent_wanted.connect(self.open_consent)
            tile.monitoring_wanted.connect(self.set_monitoring)
        admin.changed.connect(self.refresh)
        self.refresh()

    def unassigned(self) -> tuple[Unassigned, ...]:
        """The core's latest list of devices without a bed."""
        return self._unassigned

    def refresh(self) -> None:
        """Put each bed's patient on its tile; a bed whose occupant changed starts blank."""
        admin = self.admin
        policies = admin.policy()
        for bed, tile in self._tiles.items():
            data = tile.data
            patient = admin.occupant(bed)
            now = patient.patient_id if patient is not None else None
            if self._occupants.get(bed, now) != now:
                data.reset()
            self._occupants[bed] = now
            policy = policies.get(bed)
            data.standby = policy is not None and policy.standby
            data.suspended = policy.suspended if policy is not None else ""
            notes = []
            if patient is None:
                data.patient = data.patient_text = ""
            elif admin.allows(patient, Purpose.DISPLAY):
                name, born = patient.name, patient.birth_date.isoformat()
                data.patient = f"<b>{html.escape(name)}</b> · {born}"
                data.patient_text = f"{name} · {born}"
            else:
                data.patient = data.patient_text = "Name hidden (no consent)"
            if patient is not None and not admin.allows(patient, Purpose.STORAGE):
                notes.append("not stored")
            data.notes = " · ".join(notes)
            tile.show_patient()
            tile.patient.setToolTip(TOOLTIP if patient is not None else "")
        if self.devices_dialog is not None:
            self.devices_dialog.refresh()

    def _show(self, dialog: QDialog) -> QDialog:
        self.last_dialog = dialog
        return self._host.keep_and_show(dialog)

    def open_patient(self, bed: str) -> QDialog | None:
        """Admit, transfer or discharge the bed's patient (nurse or admin)."""
        user = self._host.authorize(Action.PATIENTS, bed)
        if user is None:
            return None
        self._host.record_read("patient record", bed)
        return self._show(PatientDialog(self.admin, bed, user, self._host.dialog_parent))

    def set_monitoring(self, bed: str, reason: str) -> None:
        """Suspend a bed's monitoring for ``reason`` (the tile's menu), or resume it (``reason``
        empty); a nurse's or an admin's, like admitting."""
        user = self._host.authorize(Action.PATIENTS, bed)
        if user is not None:
            self.admin.set_monitoring(bed, reason, user)

    def open_consent(self, bed: str) -> QDialog | None:
        """Record or withdraw the consent of the bed's patient."""
        patient = self.admin.occupant(bed)
        if patient is None:
            self._host.notify(f"{bed}: no patient admitted")
            return None
        user = self._host.authorize(Action.PATIENTS, bed)
        if user is None:
            return None
        return self._show(ConsentDialog(self.admin, patient, user, self._host.dialog_parent))

    def open_devices(self) -> QDialog | None:
        """The registry and the unassigned devices (admin)."""
        user = self._host.authorize(Action.DEVICES, "devices")
        if user is None:
            return None
        dialog = DevicesDialog(
            self.admin,
            user,
            self.unassigned,
            lambda: self.open_onboarding(user),
            self._host.dialog_parent,
        )
        self.devices_dialog = dialog
        dialog.finished.connect(self._devices_closed)
        return self._show(dialog)

    def _devices_closed(self, _result: int) -> None:
        self.devices_dialog = None

    def open_onboarding(self, user: str) -> QDialog:
        """Onboard a device from its voucher (from the devices dialog: already authorised)."""
        return self._show(OnboardingDialog(self.admin, user, self._demo, self._host.dialog_parent))

    def on_stats(self, stats: IngestStats) -> None:
        """Keep the unassigned devices, and an open devices dialog's panel, current."""
        self._unassigned = stats.unassigned
        if self.devices_dialog is not None:
            self.devices_dialog.show_unassigned(self._unassigned)
