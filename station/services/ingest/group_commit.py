"""The record's group commit on the core thread: spool first, then acknowledgements, then trends.

Durability (issue 4): each message's point is collected with its :class:`Delivery`; a group commit
(``[spool] commit_interval_ms``, or at once past the batch the core chooses for the MQTT version)
writes the points to the spool in one transaction and only then acknowledges the messages to the
broker, in arrival order. A message's alarms are evaluated before its commit; a commit (one fsync,
a few ms) delays only the messages queued behind it, and never by a network wait. When the spool
refuses (budget, full disk) the policy of :mod:`station.services.storage.spool` applies:
acknowledge anyway, hand the points to the historian's memory queue, raise and audit a technical
alarm.

Where the spool holds a message's point, the trend store is the screen's history, not the durable
record: its samples are written apart from the commit, in larger batches (every watch period of
the core, 250 ms), and compacted once a minute. But a message whose sample is the only record
the station keeps of it (no historian, hence no spool; a patient without storage consent; a
spool refusing) would be acknowledged up to 250 ms before anything of it is on disk, and a crash
in between loses what the broker was told had arrived. Such a commit writes the trend samples
first, then acknowledges: the acknowledgement follows the durable write whichever store it is.
Only the PUBACK waits for it (the alarms and the screen never do: they are the live path's),
and without a spool the commit has no fsync to pay, so it stays cheaper than with one.

Consent (:meth:`GroupCommit.policy_changed`): when a patient's storage consent is withdrawn, or a
patient is admitted without it, the bed's points already spooled from their stays are held back
from the historian at once and purged, audited as ``spool.purge`` with the count; the historian
is told too, so a batch already taken from the spool or its memory queue sends none of them
(:mod:`station.services.ingest.historian_withheld`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping

from station.domain.alarms import Priority
from station.domain.patients.policies import BedPolicies
from station.domain.patients.records import WithheldStay
from station.domain.timefmt import iso_ms
from station.domain.ward import BedPolicy
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.historian import Historian
from station.services.ingest.pacing import OneShot, flush_soon
from station.services.ingest.record_inbox import Delivery
from station.services.storage.spool import Row, Spool, SpoolFull
from station.services.storage.trends import TrendSample, TrendStore

log = logging.getLogger(__name__)

COMPACT_EVERY_S = 60.0  # trend store: raw samples past their window become 1-min aggregates
TREND_BATCH = 256
"""Trend samples written at once when they come faster than the core's watch period."""


class GroupCommit:
    """What is staged for the next commit, the commit itself, and the faults of the local stores.

    Owned by the core worker and run on the core thread. ``timer`` is the worker's single-shot
    commit timer, set once the thread runs (None before: every stage commits at once) and cleared
    at shutdown; ``ack`` hands committed deliveries back to the MQTT worker (thread-safe there).
    """

    def __init__(
        self,
        state: CoreState,
        alarms: AlarmChanges,
        spool: Spool | None,
        trends: TrendStore | None,
        historian: Historian | None,
        acknowledge: Callable[[list[Delivery]], None] | None,
        batch: int,
    ) -> None:
        self._audit = state.audit
        self._alarms = alarms
        self._spool = spool
        self._trends = trends
        self._historian = historian
        self.ack = acknowledge
        self._batch = batch
        self.timer: OneShot | None = None
        self._rows: list[Row] = []
        self._deliveries: list[Delivery] = []
        self._samples: list[TrendSample] = []
        self.spool_fault: str | None = None
        self.unspooled = 0
        """Points the spool refused, held in the historian's memory queue instead."""
        self._trend_fault: str | None = None
        self._compacted_at = state.time.wall()
        self._samples_first = False  # a staged delivery has no record but its trend sample
        self._withheld: frozenset[WithheldStay] = frozenset()  # consent missing: held back

    @property
    def keeps_trends(self) -> bool:
        """Whether there is a trend store to stage samples for."""
        return self._trends is not None

    def stage(self, row: Row | None, sample: TrendSample | None, delivery: Delivery | None) -> None:
        """Collect a point and its acknowledgement for the next group commit."""
        if row is not None:
            self._rows.append(row)
        if sample is not None:
            self._samples.append(sample)
        if delivery is not None:
            self._deliveries.append(delivery)
            if sample is not None and (row is None or self._spool is None):
                self._samples_first = True  # its sample is all the station keeps of it
        # No event loop yet (tests), or a burst: commit now.
        flush_soon(self.timer, self.commit, full=len(self._deliveries) >= self._batch)

    def commit(self) -> None:
        """Group commit: the staged points to the spool (durable), the trend samples too when
        one of the messages has no other record, then the acknowledgements. Never raises: a
        refusal is the budget policy, not a crash."""
        rows, self._rows = self._rows, []
        deliveries, self._deliveries = self._deliveries, []
        spooled = self._store(rows) if rows else True
        samples_first, self._samples_first = self._samples_first or not spooled, False
        if deliveries and samples_first:
            self.flush_trends()  # on disk before the broker hears the message arrived
        if deliveries and self.ack is not None:
            self.ack(deliveries)
        # Without the timers (no event loop yet, or shut down) nothing else flushes the trends.
        if self.timer is None or len(self._samples) >= TREND_BATCH:
            self.flush_trends()

    def flush_trends(self) -> None:
        """Write the collected trend samples. The trend store is the screen's history, not the
        durable record (the spool is): it is written every watch period of the core or per
        :data:`TREND_BATCH` samples rather than at every commit, a quarter of the cost a sample
        (measured: 12–19 µs at 16 a batch, 4.5 µs at 256)."""
        samples, self._samples = self._samples, []
        if samples and self._trends is not None:
            try:
                self._trends.add(samples)
            except sqlite3.Error as exc:
                self._trend_failed(f"{exc}")
            else:
                self._trend_failed(None)

    def compact(self, now: float) -> None:
        """Once a minute, or while the store says it is behind: aggregate old trend samples."""
        trends = self._trends
        if trends is not None and (now - self._compacted_at >= COMPACT_EVERY_S or trends.behind):
            self._compacted_at = now
            try:
                trends.compact()  # bounded per call; ``behind`` brings it back next second
            except sqlite3.Error as exc:
                self._trend_failed(f"compaction: {exc}")

    def policy_changed(self, policy: Mapping[str, BedPolicy]) -> None:
        """The bed policy table changed (already in force): the stays whose storage consent is
        newly withheld have their spooled points held back from the historian, then purged.

        What was staged under the former policy is committed first, so that it is purged with
        the rest; from now on the record path stages nothing of those beds (their policy says
        so). Only the stays new since the last table are asked for (a consent given again and
        withdrawn again is a new request); the first table after a start asks for them all, so
        a withdrawal saved just before a crash is still honoured.
        """
        withheld = frozenset(policy.withheld if isinstance(policy, BedPolicies) else ())
        new, self._withheld = withheld - self._withheld, withheld
        if self._historian is not None:  # past the spool: in flight, or in memory
            self._historian.withheld.replace((s.bed, s.since, s.until) for s in withheld)
        if not new or self._spool is None:
            return
        self.commit()
        for stay in sorted(new, key=lambda s: (s.since, s.bed)):
            try:
                self._spool.withhold(stay.bed, stay.since, stay.until, tag=stay)
            except sqlite3.Error as exc:
                self._withheld -= {stay}  # asked again with the next table
                log.error("spool: points of %s not held back: %s", stay.bed, exc)
        self.purge_withheld()

    def purge_withheld(self) -> None:
        """Delete held-back points a window at a time (the core's tick, and at once when asked):
        a long backlog is purged over several ticks, never in one stall of the core thread.
        Each stay purged to its end is audited with the count, when there was any."""
        if self._spool is None or not self._spool.withholding:
            return
        try:
            done = self._spool.purge_step()
        except sqlite3.Error as exc:
            log.error("spool: held-back points not purged yet (they stay held back): %s", exc)
            return
        for tag, purged in done:
            if purged and isinstance(tag, WithheldStay):
                log.info("spool: %d unsent points of %s purged (no consent)", purged, tag.bed)
                self._audit.record(
                    "spool.purge",
                    target=tag.bed,
                    details={
                        "purged_unsent": purged,
                        "patient": tag.patient,
                        "since": iso_ms(tag.since),
                        "until": None if tag.until is None else iso_ms(tag.until),
                        "reason": "storage consent not given",
                    },
                )

    def _store(self, rows: list[Row]) -> bool:
        """Whether the rows are on disk (the spool took them)."""
        if self._spool is None:
            self._to_memory(rows)
            return False
        try:
            added = self._spool.append(rows)
        except (SpoolFull, sqlite3.Error) as exc:
            self.unspooled += len(rows)
            self._to_memory(rows)
            if self.spool_fault is None:
                self.spool_fault = str(exc)
                log.error("spool refused points; keeping them in memory: %s", exc)
                self._audit.record(
                    "spool.full",
                    target=str(self._spool.path),
                    outcome="failure",
                    details={"error": str(exc)[:300], "points": len(rows)},
                )
                self._alarms.station(
                    "spool",
                    True,
                    Priority.HIGH,
                    "Local record full: new data not saved to disk (display and alarms go on)",
                )
            return False
        if self._historian is not None:
            self._historian.notify(added)
        if self.spool_fault is not None:
            log.info("spool takes points again after %d held in memory", self.unspooled)
            self._audit.record(
                "spool.recovered",
                target=str(self._spool.path),
                details={"points_in_memory": self.unspooled, "error": self.spool_fault[:300]},
            )
            self.spool_fault = None
            self._alarms.station("spool", False, Priority.HIGH, "")
        return True

    def _to_memory(self, rows: list[Row]) -> None:
        """Points the spool cannot take (none, or refusing) go straight to the historian."""
        if self._historian is not None:
            for _, _, text in rows:
                self._historian.submit(text)

    def _trend_failed(self, error: str | None) -> None:
        if (error is None) == (self._trend_fault is None):
            return
        self._trend_fault = error
        if error is not None:
            log.error("trend store: %s", error)
            self._audit.record("trends.fault", outcome="failure", details={"error": error[:300]})
        self._alarms.station(
            "trends", error is not None, Priority.LOW, f"Trend store failing: {error}"
        )
