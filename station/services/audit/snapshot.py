"""What the auditor's view shows of the trail: the records as read at one moment, with the
verdict on their chain.

A value of its own so that :mod:`station.services.audit.trail_source`, which produces it, and
the auditor's view in the UI, which shows it, both depend on this small module and not on each
other (the services never import the UI).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AuditSnapshot:
    """The trail as read at one moment, with the verdict on its chain.

    Attributes:
        records: the parseable records, in trail order.
        intact: the chain verified (no edit, deletion, insertion, reordering, torn tail).
        health: one line for a person, e.g. ``OK 1234 records, chain intact, signed to seq
            1200`` or ``FAIL line 12 (seq 12): edited: ...``.
        key_id: the station key's fingerprint, or "" when not known.
        bad_seq: the ``seq`` of the first bad record when the source knows it; the table marks
            that row and the banner offers to show it, so nobody scrolls 100 000 rows for it.
    """

    records: list[dict[str, Any]]
    intact: bool
    health: str
    key_id: str = ""
    bad_seq: int | None = None
