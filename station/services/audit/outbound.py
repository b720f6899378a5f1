"""Audit records of the station's data leaving it other than to the screen: a patient's trends or
the alarm history exported as a CSV file, and a point the historian refused.

Kept out of the composition root, which only connects the window's export signals and the
historian's refusals here. An export names who exported and that user's role as the accounts
have it now; the historian's refusals come from its own thread (the audit writer is
thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable

from station.domain.ports import AuditSink
from station.domain.roles import Role


class OutboundAudit:
    """See the module docstring.

    Args:
        audit: the station's audit trail.
        role_of: a user's role (None: no such user).
        historian_url: the historian the station writes to (the target of its refusals).
    """

    def __init__(
        self, audit: AuditSink, role_of: Callable[[str], Role | None], historian_url: str
    ) -> None:
        self._audit, self._role_of, self._historian = audit, role_of, historian_url

    def _role_name(self, user: str) -> str:
        role = self._role_of(user)
        return "none" if role is None else role.value

    def trends_exported(self, bed: str, path: str, rows: int, user: str) -> None:
        """A patient's trends left the station as a file: who, which bed, where, how much."""
        self._audit.record(
            "trends.export",
            actor=user,
            role=self._role_name(user),
            target=bed,
            details={"path": path, "rows": rows},
        )

    def history_exported(self, path: str, rows: int, user: str) -> None:
        """The alarm history left the station as a file."""
        self._audit.record(
            "alarms.export",
            actor=user,
            role=self._role_name(user),
            target=path,
            details={"rows": rows},
        )

    def report_made(self, how: str, where: str, beds: object, user: str) -> None:
        """A report left the station: ``how`` is ``<report>:<output>`` (a shift report, an alarm
        report or a trend print; saved as a PDF or sent to a printer)."""
        kind, _, how = how.partition(":")
        self._audit.record(
            f"report.{kind}",
            actor=user,
            role=self._role_name(user),
            target=where,
            details={"output": how, "beds": list(beds) if isinstance(beds, tuple) else beds},
        )

    def historian_rejected(self, line: str, status: int, message: str) -> None:
        """The historian refused a point's content (4xx): it is quarantined, never retried
        for ever, and the audit trail says which and why. Called on the historian thread."""
        self._audit.record(
            "historian.reject",
            target=self._historian,
            outcome="failure",
            details={"status": status, "message": message[:300], "point": line[:300]},
        )
