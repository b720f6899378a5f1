"""The window's side of admissions, consent and devices: menus to dialogs, and the tiles kept in
step with who is in which bed.

Kept out of :mod:`station.ui.main_window` so that file stays about the ward view. Every entry asks
the action layer first (``patients`` for admit/transfer/discharge/consent, ``devices`` for the
registry), which checks the role and audits a denial; the dialogs are admin dialogs of the window,
closed when the session locks or changes hands.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog

from station.domain.patients import Purpose
from station.domain.roles import Action
from station.domain.ward import Unassigned
from station.presenters.ward_admin import WardAdmin
from station.ui.consent_dialog import ConsentDialog
from station.ui.devices_dialog import DevicesDialog
from station.ui.onboarding_dialog import OnboardingDialog
from station.ui.patient_dialog import PatientDialog

if TYPE_CHECKING:
    from station.ui.main_window import MainWindow


TOOLTIP = (
    "The patient's name shows only with display consent; vitals and alarms are shown for care "
    "either way. 'Not stored': without storage consent nothing goes to the historian."
)


class WardControls:
    """See the module docstring. Owned by the window; lives on the GUI thread."""

    def __init__(self, window: MainWindow, admin: WardAdmin, demo: bool) -> None:
        self._window, self.admin, self._demo = window, admin, demo
        self._occupants: dict[str, str | None] = {}
        self.devices_dialog: DevicesDialog | None = None
        self.last_dialog: QDialog | None = None
        for tile in window.tiles.values():
            tile.patient_wanted.connect(self.open_patient)
            tile.consent_wanted.connect(self.open_consent)
        admin.changed.connect(self.refresh)
        self.refresh()

    def unassigned(self) -> tuple[Unassigned, ...]:
        """The core's latest list of devices without a bed."""
        stats = self._window.stats
        return stats.unassigned if stats is not None else ()

    def refresh(self) -> None:
        """Put each bed's patient on its tile; a bed whose occupant changed starts blank."""
        admin = self.admin
        policies = admin.policy()
        for bed, data in self._window.beds.items():
            patient = admin.occupant(bed)
            now = patient.patient_id if patient is not None else None
            if self._occupants.get(bed, now) != now:
                data.reset()
            self._occupants[bed] = now
            policy = policies.get(bed)
            data.standby = policy is not None and policy.standby
            notes = []
            if patient is None:
                data.patient = ""
            elif admin.allows(patient, Purpose.DISPLAY):
                name = html.escape(patient.name)
                data.patient = f"<b>{name}</b> · {patient.birth_date.isoformat()}"
            else:
                data.patient = "Name hidden (no consent)"
            if patient is not None and not admin.allows(patient, Purpose.STORAGE):
                notes.append("not stored")
            data.notes = " · ".join(notes)
            self._window.tiles[bed].show_patient()
            self._window.tiles[bed].patient.setToolTip(TOOLTIP if patient is not None else "")
        if self.devices_dialog is not None:
            self.devices_dialog.refresh()

    def _show(self, dialog: QDialog) -> QDialog:
        self._window.keep_admin_dialog(dialog)
        self.last_dialog = dialog
        dialog.show()
        return dialog

    def open_patient(self, bed: str) -> QDialog | None:
        """Admit, transfer or discharge the bed's patient (nurse or admin)."""
        user = self._request(Action.PATIENTS, bed)
        if user is None:
            return None
        return self._show(PatientDialog(self.admin, bed, user, self._window))

    def open_consent(self, bed: str) -> QDialog | None:
        """Record or withdraw the consent of the bed's patient."""
        patient = self.admin.occupant(bed)
        if patient is None:
            self._window.statusBar().showMessage(f"{bed}: no patient admitted", 5000)
            return None
        user = self._request(Action.PATIENTS, bed)
        if user is None:
            return None
        return self._show(ConsentDialog(self.admin, patient, user, self._window))

    def open_devices(self) -> QDialog | None:
        """The registry and the unassigned devices (admin)."""
        user = self._request(Action.DEVICES, "devices")
        if user is None:
            return None
        dialog = DevicesDialog(
            self.admin, user, self.unassigned, lambda: self.open_onboarding(user), self._window
        )
        self.devices_dialog = dialog
        dialog.finished.connect(self._devices_closed)
        return self._show(dialog)

    def _devices_closed(self, _result: int) -> None:
        self.devices_dialog = None

    def open_onboarding(self, user: str) -> QDialog:
        """Onboard a device from its voucher (from the devices dialog: already authorised)."""
        return self._show(OnboardingDialog(self.admin, user, self._demo, self._window))

    def on_stats(self) -> None:
        """Keep an open devices dialog's unassigned panel current."""
        if self.devices_dialog is not None:
            self.devices_dialog.show_unassigned(self.unassigned())

    def _request(self, action: Action, target: str) -> str | None:
        layer = self._window.action_layer
        if layer is None:
            return None
        return layer.request(action, target, target)
