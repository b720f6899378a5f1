"""Valid CONTRACT §1 payloads for tests, built the way a device would send them."""

from __future__ import annotations

import json
import time
from typing import Any

from station.domain import ingest
from station.domain.messages import Accepted
from station.domain.timefmt import iso_ms as iso


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


FILTERS = ("healthcare/sensor_data", "healthcare/devices/+/vitals")


def accepted(device: str, now: float, topic: str | None = None, **values: Any) -> Accepted:
    """A valid message from ``device`` at ``now``, parsed exactly as ingest parses it, on the
    device's own topic unless ``topic`` says otherwise (a device pinned in ``[ward]`` is taken
    on a shared topic only under open admission)."""
    raw = vitals(device, at=now, **values)
    result = ingest.parse(topic or f"healthcare/devices/{device}/vitals", raw, now, FILTERS)
    assert isinstance(result, Accepted), result
    return result
