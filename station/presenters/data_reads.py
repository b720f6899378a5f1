"""Reads of patient data, audited: who opened which bed's detail, trends, record or reports.

Why: the trail must answer "who looked at this patient?", not only "who changed something".
The ward screen itself is on view to everyone at the desk and is not a read by anyone; what is
recorded is a view a person opens on purpose, with more than the tile shows (the detail view,
the stored trends, the patient record, the alarm history, the shift report, the audit trail).
Recorded as ``patient.read`` (target the bed, or ``ward``; ``details.view``), named with the
logged-in user and role, or ``(station locked)`` and role ``none`` when nobody is logged in:
the views that need no login are still read by someone standing at the desk.

GUI thread: the record is queued to the audit writer, never written here.
"""

from __future__ import annotations

from station.presenters.actions import ActionLayer

LOCKED = "(station locked)"
"""The actor of a read made while nobody is logged in."""


def record_read(actions: ActionLayer | None, view: str, target: str) -> None:
    """Audit that ``view`` of ``target`` (a bed, or ``ward``) was opened; nothing without an
    action layer (a window built without one, in tests of the window alone)."""
    if actions is None:
        return
    session = actions.session
    role = session.role
    actions.audit.record(
        "patient.read",
        actor=session.user or LOCKED,
        role=role.value if role is not None else "none",
        target=target,
        details={"view": view},
    )
