"""From the stores to the outbox: alarm changes and observation reports, each queued once.

Why by cursors in the outbox: a cursor moves in the same transaction as the reports it produced,
so a crash at any point leaves either both or neither on disk. Alarms are found two ways, since
the alarm store updates an episode in place: new episodes by row (the cursor), and the changes of
the alarms whose clear is not yet queued by id (``open_alarms``). Observations are read by period
(``summary``: device time, a period at a time, :data:`SETTLE_S` after its end so late samples
still count) or sample by sample (``each``). A sample that reaches the trend store after its
period was summarised (a device whose clock runs more than :data:`SETTLE_S` slow, a replay after
an outage) is not sent; the last :data:`LATE_PERIODS` periods are counted again once a period,
and what came late is audited (``hl7.observations_late``, per bed, at most once a period).

A pass stops between periods when the owner stops (``stopping``): catching up after a restart
never holds up a stop.

The budget: past ``budget`` queued reports, observations wait in the trend store (their cursor
does not move); alarms keep queuing up to a reserve beyond it (patient safety), then wait in the
alarm store. Nothing is dropped: what waits is read when the queue drains. Only a wait longer than
the trend store keeps raw samples loses periods, and that is audited (``hl7.observations_skipped``).

Runs on the interface's ``hl7-out`` thread; raises :class:`sqlite3.Error` when a store cannot be
read or the outbox written (the caller says so and tries again).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from station.domain.hl7 import alarm_events
from station.domain.hl7.codes import AlarmEvent
from station.domain.hl7.content import Report
from station.domain.hl7.observations import singles, summaries
from station.domain.hl7.subjects import Subjects
from station.domain.ports import AuditSink
from station.domain.timefmt import iso_ms
from station.services.hospital.hl7_outbox import Outbox
from station.services.hospital.hl7_sources import Sources

log = logging.getLogger(__name__)

ALARM_BATCH = 500
SAMPLE_BATCH = 500
SETTLE_S = 10.0
"""A period is summarised this long after its end: the trend store writes every 250 ms, and a
sample that arrives later than this (replayed after an outage) goes to the historian only."""
MAX_PERIODS = 30
"""Periods summarised per pass at most (catching up after a restart, a pass stays short)."""
LATE_PERIODS = 10
"""Summarised periods counted again for late samples (in memory: a restart starts afresh)."""
RAW_HORIZON_S = 3.5 * 3600
"""Older periods are no longer in the trend store's raw samples (4 h): skipped, and audited."""
ALARMS, SUMMARY, EACH = "alarms", "observations", "samples"


@dataclass(frozen=True, slots=True)
class Collected:
    """One pass: reports queued, and whether the budget held some back."""

    alarms: int
    observations: int
    full: bool


class Collector:
    """See the module docstring. ``subjects`` is replaced by the sender when the ward changes."""

    def __init__(
        self,
        outbox: Outbox,
        sources: Sources,
        *,
        station_id: str,
        mode: str,
        period_s: float,
        budget: int,
        wall: Callable[[], float],
        audit: AuditSink,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.outbox = outbox
        self.sources = sources
        self.subjects = Subjects()
        self._station = station_id
        self._mode = mode
        self._period = float(period_s)
        self.budget = budget
        self.reserve = max(100, budget // 10)
        self._wall = wall
        self._audit = audit
        self._stopping = stopping
        self._counted: dict[float, Counter[str]] = {}  # period start → samples per bed, summarised

    def collect(self) -> Collected:
        """Queue what the stores hold beyond the cursors (alarms first)."""
        now = self._wall()
        alarms, alarms_full = self._alarms(now)
        observations, full = 0, False
        if self._mode == "summary":
            observations, full = self._summaries(now)
        elif self._mode == "each":
            observations, full = self._singles(now)
        return Collected(alarms, observations, full or alarms_full)

    # -- alarms ------------------------------------------------------------------------------

    def _alarms(self, now: float) -> tuple[int, bool]:
        if self.outbox.queued >= self.budget + self.reserve:
            return 0, True
        last = self.sources.last_alarm_row()
        stored = self.outbox.cursor(ALARMS)
        if stored is None or int(stored) > last:
            if stored is not None:  # the store was replaced (a restore): its history stays unsent
                log.warning("alarm store rows went back from %s to %d: reading on from there",
                            stored, last)  # fmt: skip
            self.outbox.add((), {ALARMS: str(last)})
            return 0, False
        row = int(stored)
        watched = self.outbox.open_alarms()
        current = {e.alarm_id: e for e in self.sources.alarms_by_id(watched)} if watched else {}
        for found, episode in self.sources.alarms_after(int(stored), ALARM_BATCH):
            row = found
            current.setdefault(episode.alarm_id, episode)
        reports: list[Report] = []
        changes: dict[str, tuple[float, frozenset[AlarmEvent]] | None] = {}
        for alarm_id, episode in current.items():
            if not alarm_events.sendable(episode):
                continue
            sent = watched.get(alarm_id, (episode.raised_at, frozenset()))[1]
            made = alarm_events.reports(episode, sent, self.subjects, self._station, now)
            if not made:
                continue
            reports.extend(made)
            events = sent | {r.event for r in made}
            cleared = AlarmEvent.CLEAR in events
            changes[alarm_id] = None if cleared else (episode.raised_at, frozenset(events))
        if reports or row != int(stored):
            self.outbox.add(reports, {ALARMS: str(row)}, changes)
        return len(reports), False

    # -- observations ------------------------------------------------------------------------

    def _summaries(self, now: float) -> tuple[int, bool]:
        period = self._period
        stored = self.outbox.cursor(SUMMARY)
        if stored is None:
            self.outbox.add((), {SUMMARY: repr(math.floor(now / period) * period)})
            return 0, False
        start = float(stored)
        added = 0
        summarised = False
        for _ in range(MAX_PERIODS):
            if self._stopping():
                break
            end = start + period
            if end + SETTLE_S > now:
                break
            if self.outbox.queued >= self.budget:
                return added, True
            if start < now - RAW_HORIZON_S:
                start = self._skip(start, math.floor((now - SETTLE_S) / period - 1) * period)
                continue
            samples = self.sources.samples(round(start * 1000), round(end * 1000))
            batch = summaries(samples, start, end, self.subjects, self._station, now)
            added += self.outbox.add(batch.reports, {SUMMARY: repr(end)})
            self._counted[start] = Counter(sample.bed for sample in samples)
            summarised = True
            start = end
        if summarised:
            self._count_late(start)
        return added, False

    def _count_late(self, until: float) -> None:
        """Count again the samples of the periods summarised lately (up to ``until``): those
        that came after their summary are audited per bed, once, and not sent (the historian
        has them)."""
        for old in [s for s in self._counted if s < until - LATE_PERIODS * self._period]:
            del self._counted[old]
        late: dict[str, tuple[int, float, float]] = {}  # bed → count, first and last period
        for start, counted in sorted(self._counted.items()):
            end = start + self._period
            for bed, now in self.sources.bed_counts(round(start * 1000), round(end * 1000)).items():
                extra, counted[bed] = now - counted[bed], now
                subject = self.subjects.at(bed, start)
                if extra <= 0 or subject is None or not subject.storage:
                    continue  # only what would have been sent is missed
                n, first, _last = late.get(bed, (0, start, end))
                late[bed] = (n + extra, first, end)
        for bed, (n, first, last) in sorted(late.items()):
            log.warning("HL7: %d samples of %s came after their period was summarised: not sent",
                        n, bed)  # fmt: skip
            self._audit.record(
                "hl7.observations_late",
                target=bed,
                outcome="failure",
                details={
                    "bed": bed,
                    "late": n,
                    "from": iso_ms(first),
                    "until": iso_ms(last),
                    "reason": "arrived after their period was summarised",
                },
            )

    def _singles(self, now: float) -> tuple[int, bool]:
        stored = self.outbox.cursor(EACH)
        until_ms = math.floor((now - SETTLE_S) * 1000)
        if stored is None:
            self.outbox.add((), {EACH: _each_cursor((until_ms, "", ""))})
            return 0, False
        time_ms, bed, device = stored.split("\x1f")
        after = (int(time_ms), bed, device)
        if after[0] < (now - RAW_HORIZON_S) * 1000:
            self._skip(after[0] / 1000, until_ms / 1000)
            return 0, False
        if self.outbox.queued >= self.budget:
            return 0, True
        samples = self.sources.samples_after(after, until_ms, SAMPLE_BATCH)
        if not samples:
            return 0, False
        batch = singles(samples, self.subjects, self._station, now)
        last = samples[-1]
        return self.outbox.add(
            batch.reports, {EACH: _each_cursor((last.time_ms, last.bed, last.device))}
        ), False

    def _skip(self, since: float, until: float) -> float:
        """Observations of ``[since, until)`` are gone from the raw samples: move on, and say
        so (the historian has them)."""
        name = EACH if self._mode == "each" else SUMMARY
        value = _each_cursor((round(until * 1000), "", "")) if name == EACH else repr(until)
        self.outbox.add((), {name: value})
        log.warning("HL7 observations from %s to %s skipped: older than the raw trend samples",
                    iso_ms(since), iso_ms(until))  # fmt: skip
        self._audit.record(
            "hl7.observations_skipped",
            outcome="failure",
            details={
                "from": iso_ms(since),
                "until": iso_ms(until),
                "reason": "older than raw samples",
            },
        )
        return until


def _each_cursor(after: tuple[int, str, str]) -> str:
    return "\x1f".join((str(after[0]), after[1], after[2]))
