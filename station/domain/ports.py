"""What the core and the presenters need of the outside world, as protocols.

The audit writer and the outbound publisher live in the services; the code that uses them (the
core thread, the presenters, the dialogs) needs only these two methods each, so it depends on the
protocol here and the composition root (``station.app``) hands in the real object.
"""

from __future__ import annotations

from typing import Protocol


class AuditSink(Protocol):
    """What the core needs of the audit writer."""

    def record(
        self,
        action: str,
        *,
        actor: str = ...,
        role: str = ...,
        target: str = ...,
        outcome: str = ...,
        details: dict[str, object] | None = ...,
    ) -> None:
        """Queue one audit record; thread-safe, non-blocking."""

    @property
    def fault(self) -> str | None:
        """The last write error, or None."""


class AlarmSink(Protocol):
    """What the core needs of the outbound publisher."""

    def publish_alarm(self, event: dict[str, object]) -> None:
        """Send one alarm event."""
