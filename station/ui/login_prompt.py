"""The login asked for on demand: the action layer refused for want of a login (or of the role),
so the login dialog says why; after the login, what was asked is done if the new user may.

Kept apart from :mod:`station.ui.main_window` because it is the session's flow, not the ward's
view: it knows the window only through narrow collaborators (the dialog's parent, a look-up of
the alarm list's alarms, and the three things a login can be asked for again: acknowledge an
alarm, pause the audio, ask for an admin dialog).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QWidget

from station.domain.alarms import Alarm
from station.domain.roles import Action, allowed
from station.presenters.actions import ActionLayer
from station.ui.login_dialog import LoginDialog

ADMIN_ACTIONS = frozenset(
    {Action.USERS, Action.DEVICES, Action.SETTINGS, Action.AUDIT_EXPORT, Action.PATIENTS}
)
"""Actions done in an admin dialog: after the login, their dialog is asked for again."""


class LoginPrompt:
    """Shows one login dialog at a time for the action layer's ``login_required``. GUI thread.

    Args:
        actions: the action layer that refused, and that checks the login.
        parent: the window the dialog belongs to (not modal: the ward and its alarm list stay
            usable behind it).
        find_alarm: the alarm an acknowledgement was refused for, by id, as the list shows it.
        acknowledge: acknowledge an alarm, by id (through the action layer).
        pause_audio: pause the ward's audio (through the action layer).
        ask_admin: ask for an admin action's dialog, with the request (a bed for ``patients``).
    """

    def __init__(
        self,
        actions: ActionLayer,
        parent: QWidget,
        find_alarm: Callable[[str], Alarm | None],
        acknowledge: Callable[[str], None],
        pause_audio: Callable[[], None],
        ask_admin: Callable[[Action, object], None],
    ) -> None:
        self._actions, self._parent, self._find_alarm = actions, parent, find_alarm
        self._acknowledge, self._pause_audio, self._ask_admin = acknowledge, pause_audio, ask_admin
        self.dialog: LoginDialog | None = None

    def ask(self, action: str, request: object) -> None:
        """Log in, then do what was asked if the new user may; for an alarm, an emergency
        acknowledge is offered too."""
        actions = self._actions
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            return
        alarm = request if action == Action.ACKNOWLEDGE.value and isinstance(request, str) else None
        why = {
            "login": "Log in or switch user.",
            Action.CHANGE_LIMITS.value: "Changing a bed's limits needs a nurse's login. After"
            " logging in, open Alarm limits… again and make the change yourself.",
        }.get(action, f"This needs a login with the right role ({action.replace('_', ' ')}).")
        if alarm is not None:
            shown = self._find_alarm(alarm)
            what = f"{shown.bed or 'station'}: {shown.message}" if shown else "this alarm"
            why = f"Acknowledge {what}? This needs a nurse's login."
        elif action == Action.ACKNOWLEDGE.value and isinstance(request, tuple):
            found = [a for a in map(self._find_alarm, request) if a is not None]
            bed = found[0].bed if found else "the bed"
            why = f"Acknowledge all {len(request)} alarms of {bed}? This needs a nurse's login."
        dialog = LoginDialog(actions, why, alarm, self._parent)
        self.dialog = dialog

        def finished(result: int) -> None:
            if result != LoginDialog.DialogCode.Accepted or dialog.emergency_done:
                return
            try:
                wanted = Action(action)
            except ValueError:
                return  # a plain login
            if allowed(actions.current_role(), wanted):
                self._replay(wanted, request)

        dialog.finished.connect(finished)
        dialog.show()  # not modal: the ward and its alarm list stay usable behind it

    def _replay(self, action: Action, request: object) -> None:
        """Do again what the login was asked for, now that the user may."""
        if action is Action.ACKNOWLEDGE and isinstance(request, str):
            self._acknowledge(request)
        elif action is Action.ACKNOWLEDGE and isinstance(request, tuple):
            for alarm_id in request:  # all of a bed; one already cleared is ignored by the core
                self._acknowledge(str(alarm_id))
        # A limits change is not replayed: its values were typed before the login, perhaps by
        # someone else; the nurse who logged in makes the change herself.
        elif action is Action.PAUSE_AUDIO:
            self._pause_audio()
        elif action in ADMIN_ACTIONS:
            self._ask_admin(action, request)  # a patients request names the bed
