"""What the parts of the core thread share: settings, clocks, ward, bed policy, alarm engine, audit.

Why one object: every part the core worker runs (record path, live path, group commit, device
gate, station watch, alarm changes) reads the same ward, the same bed policy table and the same
alarm engine, and they must be the very same objects, or a device moved to another bed in one
part would still sit on the old bed in another. The worker builds this once and hands it to each
part; nothing here is copied.

Plain data (no Qt); the objects it holds are used on the core thread only (and once on the GUI
thread, while the worker is built, before the core thread runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from station.config.settings import Settings
from station.domain.alarms import AlarmEngine
from station.domain.clock import StationClock
from station.domain.ports import AuditSink
from station.domain.ward import BedPolicy, Ward


@dataclass(frozen=True, slots=True)
class CoreState:
    """The shared objects of the core thread (the references are fixed, the objects change)."""

    settings: Settings
    time: StationClock
    ward: Ward
    policy: Mapping[str, BedPolicy]
    """The worker's bed policy table: updated in place, read by every part at each message."""
    engine: AlarmEngine
    audit: AuditSink

    @classmethod
    def build(
        cls,
        settings: Settings,
        time: StationClock,
        policy: Mapping[str, BedPolicy],
        audit: AuditSink,
    ) -> CoreState:
        """The ward and the alarm engine as ``settings`` describe them, on ``time``'s clocks."""
        engine = AlarmEngine(
            settings.alarms.limits(),
            time.wall,
            escalate_after_s=settings.alarms.escalate_after_s,
            monotonic=time.monotonic,
        )
        ward = Ward(
            settings.ward.beds,
            settings.ward.devices,
            settings.ward.bed_prefix,
            admission=settings.devices.admission,
        )
        return cls(settings, time, ward, policy, engine, audit)
