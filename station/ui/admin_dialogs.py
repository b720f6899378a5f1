"""The one way an admin dialog opens: users, devices, the quarantine, settings, the audit trail,
and the ward's patient and consent dialogs.

Every admin dialog holds the authority of the session that opened it. So each opens the same
way: the action layer checks the session's role first (a denial is audited and a login asked
for), the dialog is parented to the window and not modal (the ward stays in view and usable
behind it), and it is closed as soon as the station locks or changes hands — the auditor's view
of the trail too: left open, it let anyone export a signed bundle in the auditor's name. With
them close the file choosers and print dialogs open anywhere over the window (an export of the
shift report, a trend, the alarm history): each was opened in the name of the user then logged
in, and a path chosen after the lock would export in that name. The windows that only show the
ward (trends, history, shift report) stay open; their exports ask the action layer again.

Built once by the composition root (:mod:`station.app`) with everything the dialogs need, after
the window it parents them to; the window asks for a dialog only through its ``admin_wanted``
signal (a Manage ▾ entry, or the request a login was asked for), which the root connects to
:meth:`AdminDialogs.open`. The ward's own dialogs are in :class:`WardControls`, which this
controller builds and serves as its :class:`~station.ui.ward_controls.DialogHost`. GUI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtPrintSupport import QAbstractPrintDialog
from PySide6.QtWidgets import QDialog, QFileDialog, QMainWindow, QWidget
from shiboken6 import Shiboken

from station.config.settings import Settings
from station.domain.roles import Action
from station.domain.session import SessionView
from station.domain.status import IngestStats
from station.presenters.actions import ActionLayer
from station.presenters.data_reads import record_read
from station.presenters.ward_admin import WardAdmin
from station.services.jobs import Jobs
from station.services.storage.quarantine_store import QuarantineStore
from station.ui.adt_view import AdtMessagesDialog, patient_shown
from station.ui.alarm_strip import AlarmStrips
from station.ui.audit.source import AuditSource
from station.ui.audit.view import AuditView
from station.ui.quarantine_dialog import THREAD_NAME as QUARANTINE_THREAD
from station.ui.quarantine_dialog import QuarantineDialog
from station.ui.settings.dialog import SettingsDialog
from station.ui.tile import BedTile
from station.ui.users_dialog import UsersDialog
from station.ui.ward_controls import WardControls

NOTICE_MS = 5000
"""How long a notice stays in the status bar."""
QUARANTINE = "quarantine"
"""The request, with :attr:`Action.DEVICES`, that asks for the quarantine view (Manage ▾
Quarantine…). Reading what ingest refused is device administration: the admin who onboards
and revokes devices is who must find the misconfigured or forged one, so the view takes the
devices role (admin) rather than a new action."""
ADT_MESSAGES = "adt"
"""The request, with :attr:`Action.SETTINGS`, that asks for the ADT messages view (Manage ▾ ADT
messages…): the feed is an interface the admin configures, so it takes the settings role."""


class AdminDialogs(QObject):
    """See the module docstring.

    Args:
        window: the dialogs' parent; its status bar takes a short notice instead of a modal box.
        actions: the role check, and the accounts and the audit trail the dialogs change.
        settings: what the settings dialog edits.
        tiles: the bed tiles, for the ward's patient and consent links (with ``admin``).
        admin: the ward admin (patients, consent, devices); None: no ward dialogs.
        config_path: the configuration file the settings dialog writes; None: nothing to edit.
        audit_source: the auditor's source of the trail, for the user opening the view; None:
            the audit trail cannot be viewed.
        demo: the demo ward (onboarding also gives the embedded broker the credential).
        strips: puts the ward's alarm strip into each dialog; None: no strips.
        quarantine: the kept rejections the quarantine view reads; None: not kept (the store
            could not be opened), and the view says so in the status bar.
    """

    def __init__(
        self,
        window: QMainWindow,
        actions: ActionLayer,
        settings: Settings,
        *,
        tiles: Mapping[str, BedTile] | None = None,
        admin: WardAdmin | None = None,
        config_path: Path | None = None,
        audit_source: Callable[[str], AuditSource] | None = None,
        demo: bool = False,
        strips: AlarmStrips | None = None,
        quarantine: QuarantineStore | None = None,
    ) -> None:
        super().__init__(window)
        self._strips = strips
        self._window, self._actions, self._settings = window, actions, settings
        self._config_path = config_path
        self._audit_source = audit_source
        self._kept: list[QDialog] = []
        self._session_user = actions.session.view().user
        self.settings_dialog: SettingsDialog | None = None
        self.audit_view: AuditView | None = None
        self._quarantine = quarantine
        self._quarantine_jobs = Jobs(QUARANTINE_THREAD, self)
        self.quarantine_dialog: QuarantineDialog | None = None
        self.adt_dialog: AdtMessagesDialog | None = None
        self._rejected = -1  # the core's count when the quarantine view last refreshed
        self.ward: WardControls | None = None
        if admin is not None and tiles is not None:
            self.ward = WardControls(tiles, admin, self, demo)
        actions.session_changed.connect(self.on_session)

    # -- DialogHost ------------------------------------------------------------------------

    @property
    def dialog_parent(self) -> QWidget:
        """The window every admin dialog belongs to."""
        return self._window

    def authorize(self, action: Action, target: str) -> str | None:
        """The action layer's check (a denial is audited and asks for a login)."""
        return self._actions.request(action, target, target)

    def record_read(self, view: str, target: str) -> None:
        """Audit that ``view`` of ``target`` was opened (:mod:`station.presenters.data_reads`)."""
        record_read(self._actions, view, target)

    def keep_and_show(self, dialog: QDialog) -> QDialog:
        """Show ``dialog``; it closes when the session locks or changes hands."""
        self._kept.append(dialog)
        self._strip(dialog)
        dialog.show()
        return dialog

    def _strip(self, dialog: QDialog) -> None:
        """The ward's alarms stay in reach while ``dialog`` is open."""
        if self._strips is not None:
            self._strips.attach(dialog)

    def notify(self, text: str) -> None:
        """Say ``text`` in the window's status bar for a few seconds."""
        self._window.statusBar().showMessage(text, NOTICE_MS)

    # -- opening ---------------------------------------------------------------------------

    @Slot(str, object)
    def open(self, action: str, request: object = None) -> QDialog | None:
        """The dialog for ``action`` (a value of :class:`Action`), after the role check; None if
        refused or already open. A ``patients`` request names the bed."""
        wanted = Action(action)
        if wanted is Action.DEVICES and request == QUARANTINE:
            return self.open_quarantine()
        if wanted is Action.USERS:
            return self.open_users()
        if wanted is Action.DEVICES:
            return self.open_devices()
        if wanted is Action.SETTINGS and request == ADT_MESSAGES:
            return self.open_adt()
        if wanted is Action.SETTINGS:
            return self.open_settings()
        if wanted is Action.AUDIT_EXPORT:
            return self.open_audit()
        ward = self.ward
        if wanted is Action.PATIENTS and ward is not None and request in ward.admin.beds:
            return ward.open_patient(str(request))  # the nurse then acts in the dialog
        return None

    def open_users(self) -> QDialog | None:
        """User accounts (admin); on the first run, creating the first admin needs no login."""
        actions = self._actions
        if not actions.accounts.has_users():
            # Not modal: until an admin exists the ward must stay usable (emergency acknowledge).
            first = UsersDialog(actions.accounts, actions.audit, None, self._window, actions.jobs)
            self._strip(first)
            first.show()
            return first
        user = actions.request(Action.USERS, "users", "users")
        if user is None:
            return None
        return self.keep_and_show(
            UsersDialog(actions.accounts, actions.audit, user, self._window, actions.jobs)
        )

    def open_devices(self) -> QDialog | None:
        """The device registry and the unassigned devices (admin)."""
        return self.ward.open_devices() if self.ward is not None else None

    def open_quarantine(self) -> QDialog | None:
        """The rejected messages kept, by reason and device (the devices role: admin); one
        at a time. Read-only, it still closes with the session like every admin dialog."""
        user = self._actions.request(Action.DEVICES, QUARANTINE, QUARANTINE)
        if user is None:
            return None
        if self._quarantine is None:  # said in the status bar: nothing modal over the ward
            self.notify("Rejected messages are not kept: the quarantine store could not open.")
            return None
        old = self.quarantine_dialog
        if old is not None and old.isVisible():
            old.raise_()
            old.activateWindow()
            return None
        if old is not None:  # closed earlier: a fresh one reads the store again
            if old in self._kept:
                self._kept.remove(old)
            old.deleteLater()
        dialog = QuarantineDialog(self._quarantine, self._quarantine_jobs, self._window)
        self.quarantine_dialog = dialog
        return self.keep_and_show(dialog)

    def open_adt(self) -> QDialog | None:
        """The ADT messages received (admin); one at a time. It names patients as the tiles
        do, so opening it is audited as a read."""
        user = self._actions.request(Action.SETTINGS, ADT_MESSAGES, ADT_MESSAGES)
        if user is None:
            return None
        ward = self.ward
        feed = ward.admin.adt_feed if ward is not None else None
        if ward is None or feed is None:
            self.notify("The ADT feed is off ([adt] enabled = false).")
            return None
        old = self.adt_dialog
        if old is not None and Shiboken.isValid(old) and old.isVisible():
            old.raise_()
            return None
        record_read(self._actions, "adt messages", ADT_MESSAGES)
        dialog = AdtMessagesDialog(feed, patient_shown(ward.admin), time.time, self._window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.adt_dialog = dialog
        return self.keep_and_show(dialog)

    def open_settings(self) -> QDialog | None:
        """The settings dialog (admin); one at a time."""
        user = self._actions.request(Action.SETTINGS, "settings", "settings")
        if user is None:
            return None
        if self._config_path is None:  # said in the status bar: nothing modal over the ward
            self.notify("No configuration file to edit.")
            return None
        if self.settings_dialog is not None and self.settings_dialog.isVisible():
            self.settings_dialog.raise_()
            return None
        audit = self._actions.audit
        dialog = SettingsDialog(self._settings, self._config_path, user, audit, self._window)
        self.settings_dialog = dialog
        return self.keep_and_show(dialog)

    def open_audit(self) -> QDialog | None:
        """The auditor's view of the trail: filter, see the chain's health, export a signed
        bundle in the auditor's name. Deleted when closed, and closed with the session; each
        export asks the action layer again, and only its owner may."""
        if self._audit_source is None:
            return None
        request = partial(self._actions.request, Action.AUDIT_EXPORT, "audit", "audit_export")
        user = request()
        if user is None:
            return None
        record_read(self._actions, "audit trail", "audit")  # it names beds and patients' ids
        dialog = AuditView(self._audit_source(user), self._window)
        dialog.gate, dialog.owner = request, user
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.audit_view = dialog
        return self.keep_and_show(dialog)

    # -- the session and the core ----------------------------------------------------------

    @property
    def kept(self) -> tuple[QDialog, ...]:
        """The admin dialogs open under the current session."""
        return tuple(self._kept)

    @Slot(object)
    def on_session(self, view: SessionView) -> None:
        """Close the admin dialogs, and the export choosers, of a session that ended or changed
        hands."""
        if view.user != self._session_user:
            choosers = [
                *self._window.findChildren(QFileDialog),
                *self._window.findChildren(QAbstractPrintDialog),
            ]
            for dialog in [*self._kept, *choosers]:
                if Shiboken.isValid(dialog):  # the audit view is deleted once closed
                    dialog.close()
            self._kept.clear()
            self._session_user = view.user

    @Slot(object)
    def on_stats(self, stats: IngestStats) -> None:
        """The core's counters: an open devices dialog lists the devices without a bed; an
        open quarantine view reads the store again when more messages were rejected (the core
        writes them to the store before it counts them here)."""
        if self.ward is not None:
            self.ward.on_stats(stats)
        view = self.quarantine_dialog
        if view is not None and view.isVisible() and stats.rejected != self._rejected:
            self._rejected = stats.rejected
            view.refresh()  # a refresh already on the worker makes this one wait for it

    def shutdown(self, timeout: float) -> bool:
        """Wait for a settings save or connection test, or a quarantine query, still running
        (the station stops); True if nothing is left running."""
        ok = self._quarantine_jobs.stop(timeout)
        if self.settings_dialog is None:
            return ok
        return self.settings_dialog.shutdown(timeout) and ok
