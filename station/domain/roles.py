"""Who may do what at the station: roles, actions, and the one table that joins them.

Deny by default: an action is allowed only when the table names it for the role, and a role or
action the table does not know is denied. The check lives in the action layer
(:mod:`station.presenters.actions`), never in a button: a disabled button is convenience, not
protection. Without a login one may view the ward (the screen and the alarms stay visible and
audible while the station is locked), resume paused audio (it only makes the ward louder), and
acknowledge an alarm of a patient in an emergency, with a reason that is audited
(:class:`EmergencyAcks` says when).
"""

from __future__ import annotations

import re
from collections import deque
from enum import Enum

from station.domain.alarms import AlarmKind

EMERGENCY_USER = "emergency (no login)"
"""The actor of an emergency acknowledge (no login, a reason given)."""
INTERFACE_ROLE = "interface"
"""The role recorded for a change one of the hospital's interfaces made (the ADT feed's
admissions). Not a :class:`Role`: nobody logs in as an interface and :data:`PERMISSIONS` gives
it nothing; its changes take the dialogs' own path, under an actor that names the interface
(:func:`interface_actor`), so the trail tells a feed's admission from a nurse's."""
INTERFACE_NAME_MAX = 40
EMERGENCY_LIMIT = 3
EMERGENCY_WINDOW_S = 600.0
"""At most :data:`EMERGENCY_LIMIT` emergency acknowledges per :data:`EMERGENCY_WINDOW_S` at one
station: more than a few in ten minutes is no longer one emergency but a way round the login."""


class Role(Enum):
    """The station's users, as the issue names them."""

    WARD_STAFF = "ward_staff"
    NURSE = "nurse"
    ADMIN = "admin"
    AUDITOR = "auditor"


class Action(Enum):
    """Everything a user can ask the station to do."""

    VIEW = "view"
    ACKNOWLEDGE = "acknowledge"
    PAUSE_AUDIO = "pause_audio"
    CHANGE_LIMITS = "change_limits"
    SETTINGS = "settings"
    USERS = "users"
    DEVICES = "devices"
    AUDIT_EXPORT = "audit_export"
    EXPORT_DATA = "export_data"
    """Patient data out of the station as a file (trend CSV, alarm history CSV): not in the
    issue's list, added because such an export must have a named, authorised actor."""
    PATIENTS = "patients"
    """Admit, discharge, transfer and record consent (issue 6): the ward's nurses do it at the
    bedside, admins when they set a ward up; a role that changes nothing clinical does not."""


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.WARD_STAFF: frozenset({Action.VIEW}),
    Role.NURSE: frozenset(
        {
            Action.VIEW,
            Action.ACKNOWLEDGE,
            Action.PAUSE_AUDIO,
            Action.CHANGE_LIMITS,
            Action.EXPORT_DATA,
            Action.PATIENTS,
        }
    ),
    # Admins run the station; they are not the clinicians answering alarms.
    Role.ADMIN: frozenset(
        {Action.VIEW, Action.SETTINGS, Action.USERS, Action.DEVICES, Action.PATIENTS}
    ),
    # Auditors read and export the record, and change nothing.
    Role.AUDITOR: frozenset({Action.VIEW, Action.AUDIT_EXPORT, Action.EXPORT_DATA}),
}

LOGIN_FREE = frozenset({Action.VIEW})
"""Actions allowed without a login, also while the station is locked."""

PIN_ROLES = frozenset({Role.WARD_STAFF, Role.NURSE})
"""Roles that may switch in with a short PIN; an admin or auditor always types the password."""

LABELS = {
    Role.WARD_STAFF: "ward staff",
    Role.NURSE: "nurse",
    Role.ADMIN: "admin",
    Role.AUDITOR: "auditor",
}


def interface_actor(kind: str, name: str) -> str:
    """``adt:HOSP``: the actor of an interface's change. ``name`` comes from the network (a
    sending facility) or the configuration; only letters, digits and ``. _ -`` of it are kept,
    so no sender can make its actor read as a user's or hide a control character in the
    trail."""
    kept = re.sub(r"[^A-Za-z0-9._-]", "", name)[:INTERFACE_NAME_MAX]
    return f"{kind}:{kept or 'unnamed'}"


def allowed(role: Role | None, action: Action) -> bool:
    """Whether ``role`` may do ``action`` (``None``: nobody logged in)."""
    if action in LOGIN_FREE:
        return True
    if role is None:
        return False
    return action in PERMISSIONS.get(role, frozenset())


class EmergencyAcks:
    """When an alarm may be acknowledged without a login, in an emergency.

    Only a physiological alarm: the emergency is the patient's, at the bedside, with no time to
    log in. A technical alarm (no data, the broker, a store, a locked account) or a device's own
    alert is no such emergency, and silencing one without a name would hide a fault from whoever
    logs in next. And at most ``limit`` per ``window_s`` at the station; beyond that a login is
    needed. Pure: the caller passes the time, on a monotonic clock (a wall-clock step must not
    open or close the window).

    Args:
        limit: emergency acknowledges allowed per window.
        window_s: the sliding window, seconds.
    """

    def __init__(self, limit: int = EMERGENCY_LIMIT, window_s: float = EMERGENCY_WINDOW_S) -> None:
        self.limit, self.window_s = limit, window_s
        self._taken: deque[float] = deque()

    def refusal(self, kind: AlarmKind | None, now: float) -> str:
        """Why an emergency acknowledge of an alarm of ``kind`` is refused at ``now``; "" when
        it is allowed. ``kind`` None: the kind is not known here (only the limit applies)."""
        if kind is not None and kind is not AlarmKind.PHYSIOLOGICAL:
            return "only an alarm of a patient's values may be acknowledged without a login"
        self._forget(now)
        if len(self._taken) >= self.limit:
            return (
                f"{self.limit} emergency acknowledges in the last {self.window_s / 60:.0f} min:"
                " log in to acknowledge more"
            )
        return ""

    def taken(self, now: float) -> None:
        """An emergency acknowledge was made at ``now``."""
        self._taken.append(now)

    def _forget(self, now: float) -> None:
        while self._taken and now - self._taken[0] >= self.window_s:
            self._taken.popleft()
