"""The one way this station writes a time: UTC RFC 3339 with milliseconds and ``Z``.

Alarm events, audit records, CSV exports and simulated payloads all use it, so a time copied
from one into a search of another matches to the millisecond.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(epoch_s: float) -> str:
    """UTC epoch seconds as ``2025-02-01T12:00:00.123Z``."""
    return (
        datetime.fromtimestamp(epoch_s, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def local_text(epoch_s: float, seconds: bool = False) -> str:
    """Station-local time for people reading a dialog: ``2025-02-01 13:00`` (``:05`` more)."""
    return datetime.fromtimestamp(epoch_s).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))
