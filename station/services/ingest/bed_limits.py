"""Per-bed alarm limits on the core thread: set by a nurse, kept across restarts, following the
patient.

Why here and not in the alarm engine: the engine only applies limits; deciding *whose* they are
(the admitted patient's, else the bed's), restoring them after a restart, dropping them at a
discharge and writing them down belongs with the bed policy the core already holds. Every change
is audited old → new, saved to :class:`~station.services.storage.bed_limits_file.BedLimitsFile`
and handed to the GUI as a :class:`~station.domain.bed_limits.BedLimits` for the tile.

A save that fails (full disk) keeps the limits in force and raises a technical alarm: the nurse's
choice applies now, and the ward learns it would not survive a restart.

Two stations, one ward (issue 15.10): a nurse's change is handed to ``share`` (the ward events,
:mod:`station.services.ingest.peer_events`), which tells the ward's other stations; a change one
of them made arrives at :meth:`BedLimitsKeeper.peer_change` and takes the same path here
(applied, audited with who and from which station, saved, shown), but is never told on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from station.domain.alarms import AlarmLimits, Priority
from station.domain.bed_limits import BedLimits, SavedLimits, owner_of
from station.domain.profiles import describe_change
from station.domain.ward import MONITORED, BedPolicy
from station.domain.ward_events import LimitsChange
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.storage.bed_limits_file import BedLimitsError, BedLimitsFile

log = logging.getLogger(__name__)

FAULT = "bed_limits"
"""The parameter of the station's technical alarm for saved limits it cannot read or write."""


class BedLimitsKeeper:
    """Applies, restores and saves each bed's limits. Core thread only (and the GUI thread while
    the app starts, before the core thread runs). ``share`` tells the ward's other stations of a
    nurse's change and returns the ward event's id (None: not shared); set by the core worker."""

    def __init__(
        self,
        state: CoreState,
        alarms: AlarmChanges,
        store: BedLimitsFile | None,
        changed: Callable[[str, BedLimits], None],
    ) -> None:
        self._engine = state.engine
        self._policy = state.policy
        self._audit = state.audit
        self._clock = state.time.wall
        self._labels = state.ward.labels
        self._alarms = alarms
        self._store = store
        self._changed = changed
        self._profiles: dict[str, str | None] = {}
        self._saved: dict[str, SavedLimits] = {}
        self.share: Callable[[SavedLimits], str | None] | None = None
        self.fault: str | None = None
        """Why the saved limits could not be read (the app raises it at start), or None."""
        if store is not None:
            try:
                self._saved = store.load()
            except (BedLimitsError, OSError) as exc:
                log.error("saved alarm limits unreadable: %s", exc)
                self.fault = f"Saved alarm limits unreadable, ward defaults in force: {exc}"
                self._store = None  # never overwrite a file an admin must look at
        for bed in self._labels:
            self._restore(bed)

    def in_force(self) -> dict[str, BedLimits]:
        """Every bed's limits now (read by the app for the first paint, before the thread
        runs)."""
        return {bed: self._current(bed) for bed in self._labels}

    def change(
        self, bed: str, limits: Mapping[str, AlarmLimits], profile: str | None, user: str
    ) -> None:
        """A nurse's new limits for a bed: applied from the next value, told to the ward's other
        stations, audited old → new (with the ward event's id when shared), saved for its
        owner."""
        old = self._engine.limits_for(bed)
        self._engine.set_bed_limits(bed, limits)
        self._profiles[bed] = profile
        entry = SavedLimits(bed, self._engine.limits_for(bed), profile, user, self._clock())
        shared = self.share(entry) if self.share is not None else None
        self._audit.record(
            "alarm.limits_change",
            actor=user,
            role="nurse",
            target=bed,
            details={
                "profile": profile,
                "changes": describe_change(old, entry.limits),
                **({"event_id": shared} if shared is not None else {}),
            },
        )
        self._keep(entry)

    def peer_change(self, change: LimitsChange, station: str) -> bool:
        """A nurse's change made at ``station``, another station of the ward, applied here by
        bed label (the ward's stations need not share one patient table): audited in her name
        with ``via`` = that station, saved with her name and time, shown. Never told on, so no
        change goes round the ward twice. Returns False, changing nothing, when this bed's
        limits were set later than the change (two nurses at once: the later change wins on
        every station)."""
        bed = change.bed
        owner = owner_of(bed, self._policy.get(bed, MONITORED).patient)
        mine = self._saved.get(owner)
        if mine is not None and self._engine.has_bed_limits(bed) and mine.at > change.at_s:
            return False
        old = self._engine.limits_for(bed)
        self._engine.set_bed_limits(bed, change.limits_in_force())
        self._profiles[bed] = change.profile
        entry = SavedLimits(
            bed, self._engine.limits_for(bed), change.profile, change.by, change.at_s
        )
        self._audit.record(
            "alarm.limits_change",
            actor=change.by,
            role="nurse",
            target=bed,
            details={
                "profile": change.profile,
                "changes": describe_change(old, entry.limits),
                "via": station,
                "event_id": change.event_id,
                "set_at": change.at_s,
            },
        )
        self._keep(entry)
        return True

    def _keep(self, entry: SavedLimits) -> None:
        """Save a bed's new limits for its owner and show them."""
        bed = entry.bed
        self._saved[owner_of(bed, self._policy.get(bed, MONITORED).patient)] = entry
        self._save()
        self._changed(bed, self._current(bed))

    def has_bed(self, bed: str) -> bool:
        """Whether ``bed`` is a bed of this ward (a peer's change names one by its label)."""
        return bed in self._labels

    def policy_changed(self, old: Mapping[str, BedPolicy]) -> None:
        """The bed policy table changed from ``old``: a bed whose patient changed gets the
        limits that patient had on their previous bed, else those saved for them, else the
        ward's; a patient no longer on any bed (discharged) loses their saved limits."""
        moved = {
            p.patient: (self._engine.limits_for(bed), self._profiles.get(bed))
            for bed, p in old.items()
            if p.patient and self._engine.has_bed_limits(bed)
        }
        dirty = False
        for bed in {*old, *self._policy}:
            before, now = old.get(bed, MONITORED), self._policy.get(bed, MONITORED)
            if before.patient != now.patient:
                dirty |= self._patient_changed(bed, now.patient, moved.get(now.patient))
        present = {p.patient for p in self._policy.values() if p.patient}
        for patient in {p.patient for p in old.values() if p.patient} - present:
            dirty |= self._saved.pop(owner_of("", patient), None) is not None
        if dirty:
            self._save()

    def _patient_changed(
        self, bed: str, patient: str, moved: tuple[dict[str, AlarmLimits], str | None] | None
    ) -> bool:
        """Give ``bed`` its new patient's limits; True when the saved table changed."""
        dirty = self._saved.pop(owner_of(bed, ""), None) is not None  # the bed's own end
        had = self._engine.has_bed_limits(bed)
        self._engine.reset_bed_limits(bed)
        self._profiles.pop(bed, None)
        reason = "default"
        if moved is not None:
            limits, profile = moved
            self._engine.set_bed_limits(bed, limits)
            self._profiles[bed] = profile
            saved = self._saved.get(owner_of(bed, patient))
            if saved is not None:
                self._saved[owner_of(bed, patient)] = SavedLimits(
                    bed, saved.limits, saved.profile, saved.by, saved.at
                )
                dirty = True
            reason = "moved"
        elif self._restore(bed, patient):
            self._changed(bed, self._current(bed))
            return dirty
        if reason == "default" and not had:
            return dirty
        self._audit.record(
            "alarm.limits_change",
            target=bed,
            details={"reason": "patient changed", "profile": reason},
        )
        self._changed(bed, self._current(bed))
        return dirty

    def _restore(self, bed: str, patient: str = "") -> bool:
        """Apply the limits saved for the bed's owner (after a restart, the patient's or the
        bed's), audited with who set them and when; True when there were some."""
        saved = self._saved.get(owner_of(bed, patient))
        if saved is None:
            return False
        self._engine.set_bed_limits(bed, saved.limits)
        self._profiles[bed] = saved.profile
        self._audit.record(
            "alarm.limits_change",
            target=bed,
            details={"reason": "restored", "profile": saved.profile,
                     "set_by": saved.by, "set_at": saved.at},
        )  # fmt: skip
        return True

    def _current(self, bed: str) -> BedLimits:
        own = self._engine.has_bed_limits(bed)
        profile = self._profiles.get(bed) if own else None
        return BedLimits(self._engine.limits_for(bed), own, profile)

    def _save(self) -> None:
        if self._store is None:
            return
        try:
            self._store.save(self._saved)
        except OSError as exc:
            log.error("alarm limits not saved: %s", exc)
            message = f"Alarm limits not saved, they would not survive a restart: {exc}"
            self._alarms.station(FAULT, True, Priority.MEDIUM, message)
            return
        self._alarms.station(FAULT, False, Priority.MEDIUM, "")
