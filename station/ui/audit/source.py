"""What the auditor's view reads: the source of the trail's snapshots
(:class:`~station.services.audit.snapshot.AuditSnapshot`) and exports, and what the view derives
from a snapshot before showing it.

Apart from the dialog so that whoever provides a source (the composition root, a test) needs
neither the table nor the widgets; no Qt here. :func:`prepare` runs on the load thread: its few
passes over 100 000 records never hold up the GUI thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from station.domain.audit.query import action_groups, beds, record_time, users
from station.services.audit.snapshot import AuditSnapshot

Record = Mapping[str, Any]
"""One record of the trail as the view shows it (parsed JSON, untrusted)."""


class AuditSource(Protocol):
    """Where the dialog reads the trail and sends an export. Both are called off the GUI thread."""

    def load(self) -> AuditSnapshot:
        """Read and verify the whole trail."""
        ...

    def export(self, folder: Path, since: float | None, until: float | None) -> str:
        """Write a bundle of the records in ``[since, until)`` into ``folder``.

        Returns:
            A one-line verdict for the auditor.

        Raises:
            OSError: the folder cannot be written.
            ValueError: the request cannot be met (e.g. an empty or reversed span).
        """
        ...


@dataclass(frozen=True)
class Loaded:
    """A snapshot with what the dialog derives from it, computed on the load thread."""

    snapshot: AuditSnapshot
    users: list[str]
    beds: list[str]
    actions: list[str]
    first: float | None
    last: float | None
    untimed: int


def prepare(snapshot: AuditSnapshot) -> Loaded:
    """The filter choices and time span of a snapshot (a few passes over 100k records)."""
    records = snapshot.records
    times = [record_time(r) for r in records]
    known = [t for t in times if t is not None]
    return Loaded(
        snapshot,
        users(records),
        beds(records),
        action_groups(records),
        min(known, default=None),
        max(known, default=None),
        len(times) - len(known),
    )
