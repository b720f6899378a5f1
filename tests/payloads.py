"""Valid CONTRACT §1 payloads for tests, built the way a device would send them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, as devices send it."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def vitals(device: str, *, at: float | None = None, **values: Any) -> bytes:
    """A device payload; defaults are a stable adult, overridden by ``values``."""
    doc: dict[str, Any] = {
        "device_id": device,
        "timestamp": iso(time.time() if at is None else at),
        "heartrate": 72,
        "bloodpressure": {"systolic": 120, "diastolic": 80},
        "temperature": 36.8,
        "oxygen": 98,
        "alert": "none",
    }
    doc.update(values)
    return json.dumps(doc).encode()
