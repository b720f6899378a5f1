"""Who may do what at the station: roles, actions, and the one table that joins them.

Deny by default: an action is allowed only when the table names it for the role, and a role or
action the table does not know is denied. The check lives in the action layer
(:mod:`station.presenters.actions`), never in a button: a disabled button is convenience, not
protection. Without a login one may view the ward (the screen and the alarms stay visible and
audible while the station is locked), resume paused audio (it only makes the ward louder), and
acknowledge an alarm in an emergency, with a reason that is audited.
"""

from __future__ import annotations

from enum import Enum

EMERGENCY_USER = "emergency (no login)"
"""The actor of an emergency acknowledge (no login, a reason given)."""


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


def allowed(role: Role | None, action: Action) -> bool:
    """Whether ``role`` may do ``action`` (``None``: nobody logged in)."""
    if action in LOGIN_FREE:
        return True
    if role is None:
        return False
    return action in PERMISSIONS.get(role, frozenset())
