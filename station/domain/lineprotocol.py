"""InfluxDB line protocol for the historian schema of CONTRACT §5.

Built as plain strings: influxdb-client's ``Point`` costs ~14 µs per point here, and writing lists
of line-protocol strings is ~3x faster than its batching API (PLATFORM-NOTES). Escaping follows
the line protocol reference: tag keys/values and field keys escape comma, equals and space;
measurements escape comma and space.

Every accepted message passes :func:`vitals_line` on the ``core`` thread, so it is written for
that: the tag order of ``vitals`` is fixed (``bed``, ``device``, ``station`` is the sorted order),
escaped tag texts are remembered (a ward has a few hundred beds, devices and stations, each seen
thousands of times), and field keys are known constants. The output is exactly what the generic
:func:`line` makes of the same point (``tests/unit/test_lineprotocol.py`` checks both).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from station.domain.alarms import Alarm
from station.domain.messages import Accepted

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\", "\n": r"\n"})
_ESCAPE_CACHE_MAX = 4096
_escaped: dict[str, str] = {}


def escape_tag(text: str) -> str:
    """Escape a tag key or value (also used for field keys).

    Remembered, bounded: cleared when :data:`_ESCAPE_CACHE_MAX` texts are held, so hostile
    input costs memory only up to that. Dict operations are atomic under the GIL, so threads
    may share it.
    """
    try:
        return _escaped[text]
    except KeyError:
        pass
    escaped = text.translate(_TAG_ESCAPES)
    if len(_escaped) >= _ESCAPE_CACHE_MAX:
        _escaped.clear()
    _escaped[text] = escaped
    return escaped


def _fields(fields: Mapping[str, float]) -> str:
    return ",".join(
        [f"{escape_tag(k)}={float(v)!r}" for k, v in fields.items() if math.isfinite(v)]
    )


def line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, float], time_ms: int
) -> str:
    """One point. Empty tag values are left out (InfluxDB refuses them); fields are floats."""
    tag_text = "".join(
        [f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v != ""]
    )
    return f"{measurement}{tag_text} {_fields(fields)} {time_ms}"


def vitals_line(station: str, bed: str, msg: Accepted) -> str | None:
    """The ``vitals`` point of an accepted message at its device time (ms); None if no numbers.

    Equal to ``line("vitals", {"station": station, "device": msg.device_id, "bed": bed},
    msg.payload.numeric_fields(), round(msg.device_time * 1000))``, built without the sort.
    """
    fields = msg.payload.numeric_fields()
    if not fields:
        return None
    device = msg.device_id
    tags = f",bed={escape_tag(bed)}" if bed != "" else ""
    if device != "":  # always, for a validated payload (1-64 characters); kept like line()
        tags = f"{tags},device={escape_tag(device)}"
    if station != "":
        tags = f"{tags},station={escape_tag(station)}"
    return f"vitals{tags} {_fields(fields)} {round(msg.device_time * 1000)}"


def alarm_line(station: str, alarm: Alarm) -> str:
    """The ``alarms`` point of one alarm state change at the event time (ms)."""
    tags = {
        "station": station,
        "device": alarm.device_id,
        "bed": alarm.bed,
        "parameter": alarm.parameter,
        "priority": alarm.priority.value,
        "state": alarm.state.value,
    }
    fields: dict[str, float] = {}
    if alarm.value is not None:
        fields["value"] = alarm.value
    if alarm.limit is not None:
        fields["limit"] = alarm.limit
    if not fields:
        # A point needs a field; technical alarms have no value, so record the state as 1.
        fields["value"] = 1.0
    return line("alarms", tags, fields, round(alarm.at * 1000))
