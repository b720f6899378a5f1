"""What the GUI keeps per bed: ring buffers per parameter, the latest message and its arrival.

Arrival only appends and marks dirty; the render timer redraws (STYLE rule 5). Owned by the GUI
thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from station.domain.alarms import Alarm
from station.domain.bed_limits import BedLimits
from station.domain.messages import Accepted
from station.domain.ringbuffer import RingBuffer

PARAMETERS = ("heartrate", "oxygen", "systolic", "diastolic", "temperature")


@dataclass
class BedData:
    """Live state of one bed on the screen."""

    label: str
    capacity: int
    device_id: str | None = None
    latest: Accepted | None = None
    dirty: bool = False
    urgent: bool = False
    """An alarm of the bed changed since its tile was last painted: painted in the next frame
    whatever that frame's budget."""
    alarms: dict[str, Alarm] = field(default_factory=dict)
    missing: int = 0
    """Messages of this bed's device that never arrived (``seq`` gaps), since the start."""
    gap_at: float | None = None
    """Station time of the last gap, for the tile's notice."""
    patient: str = ""
    """Who is in the bed, as the tile may show it (name only with display consent), as rich
    text with the name escaped."""
    patient_text: str = ""
    """The same as plain text, for a report."""
    notes: str = ""
    """What the bed's patient does not allow (e.g. not stored in the historian)."""
    standby: bool = False
    """Not monitored: discharged until the next admission, or ``suspended``."""
    suspended: str = ""
    """Why a nurse suspended the bed's monitoring (the patient is off the monitor), or ""."""
    audio_paused_s: int | None = None
    """Whole seconds left of the bed's own audio pause (None: not paused), as the tile shows."""
    limits: BedLimits = field(default_factory=BedLimits)
    """The alarm limits in force on the bed, as the core last reported them."""
    resets: int = 0
    """Times the bed was blanked for a new occupant: its next value is shown at once."""
    buffers: dict[str, RingBuffer] = field(init=False)

    def __post_init__(self) -> None:
        self.buffers = {p: RingBuffer(self.capacity) for p in PARAMETERS}

    def add(self, msg: Accepted) -> None:
        """Append a message's values at the station's arrival time."""
        self.device_id = msg.device_id
        self.latest = msg
        values = msg.payload.numeric_fields()
        for name, buf in self.buffers.items():
            value = values.get(name)
            if value is not None:
                buf.append(msg.received_at, value)
        self.dirty = True

    def reset(self) -> None:
        """Forget the curves and values: a new patient (admit) or a patient gone (discharge,
        transfer) must never show the previous occupant's data."""
        self.__post_init__()
        self.resets += 1
        self.latest = None
        self.device_id = None
        self.missing = 0
        self.gap_at = None
        self.dirty = True

    def mark_gap(self, missing: int, at: float) -> None:
        """Messages were lost before ``at``: break every curve there (a NaN sample, which the
        plots draw as a gap rather than a straight line over the missing data) and count."""
        self.missing += missing
        self.gap_at = at
        for buf in self.buffers.values():
            last = buf.last()
            if last is not None and last[0] < at:
                buf.append(last[0] + (at - last[0]) / 2, math.nan)
        self.dirty = True

    def age(self, now: float) -> float | None:
        """Seconds since the last message arrived, or None before the first."""
        return None if self.latest is None else max(0.0, now - self.latest.received_at)

    def update_alarm(self, alarm: Alarm) -> None:
        """Keep the bed's open alarms in step with the engine's snapshots."""
        if alarm.state.value == "cleared":
            self.alarms.pop(alarm.alarm_id, None)
        else:
            self.alarms[alarm.alarm_id] = alarm
        self.urgent = True
