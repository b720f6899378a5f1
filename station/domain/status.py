"""What the status bar shows of the ingest: the broker connection and the message counters.

Value types produced on worker threads (the MQTT session, the core thread) and read on the GUI
thread; frozen, so a copy crosses threads safely.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.domain.messages import Rejection
from station.domain.ward import Unassigned


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """Broker connection as the screen and the audit trail see it."""

    connected: bool
    detail: str
    at: float
    deliberate: bool = False


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Counters for the status bar and the admin's quarantine view."""

    accepted: int
    rejected: int
    late: int
    by_reason: tuple[tuple[str, int], ...]
    quarantine: tuple[Rejection, ...]
    unassigned: tuple[Unassigned, ...]
    unknown_keys: tuple[tuple[str, int], ...] = ()
    duplicates: int = 0
    missing: int = 0
    unspooled: int = 0
