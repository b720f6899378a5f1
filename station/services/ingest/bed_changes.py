"""Devices and patients changing beds, on the core thread: what their alarms and watches become.

A device leaves its bed when the registry moves or revokes it; a bed goes to standby at a
discharge and comes back at an admission; a patient moves to another bed. Each must leave no
alarm behind on the bed it left, watch afresh what arrives (its no-data, clock and battery alarms
raised again where it now is), while the limits keeper lets the patient's alarm limits follow them.
"""

from __future__ import annotations

from collections.abc import Mapping

from station.domain.ward import MONITORED, BedPolicy
from station.domain.watch import DeviceWatch
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.live_path import LivePath

Moves = Mapping[str, tuple[str | None, str | None]]
"""Device → (bed before, bed after), as :meth:`~station.domain.ward.Ward.set_book` reports."""


class BedChanges:
    """Applies the ward's changes to alarms, limits and watches.

    Owned by the core worker and run on the core thread (also on the GUI thread while the app
    starts, before the core thread runs).
    """

    def __init__(
        self, state: CoreState, alarms: AlarmChanges, live: LivePath, watch: DeviceWatch
    ) -> None:
        self._ward = state.ward
        self._policy = state.policy
        self._engine = state.engine
        self._alarms = alarms
        self._live = live
        self._watch = watch

    def devices_moved(self, moves: Moves) -> None:
        """End the alarms of devices that left their bed; watch each afresh where it went."""
        for device, (before, after) in moves.items():
            if before is not None:
                self._alarms.emit(self._engine.forget_device(device))
            if after is None:
                self._watch.forget(device)  # no bed: nobody to tell that it went quiet
            else:
                self._live.fresh(device)

    def policy_changed(self, old: Mapping[str, BedPolicy]) -> None:
        """The bed policy table changed from ``old``: a bed put in standby loses its alarms at
        once, a bed back from standby is watched afresh. (Its limits are the
        :class:`~station.services.ingest.bed_limits.BedLimitsKeeper`'s.)"""
        for bed in {*old, *self._policy}:
            before, now = old.get(bed, MONITORED), self._policy.get(bed, MONITORED)
            device = self._ward.device_of(bed)
            if now.standby and not before.standby and device is not None:
                self._alarms.emit(self._engine.forget_device(device))
            elif before.standby and not now.standby and device is not None:
                self._live.fresh(device)
