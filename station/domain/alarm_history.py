"""The alarm history: every alarm folded into one episode, for review and alarm-fatigue figures.

IEC 60601-1-8 asks for an alarm log, and a ward that wants fewer nuisance alarms needs numbers to
act on: how many alarms each bed raises per hour, and how long nurses take to acknowledge them.
The engine emits one immutable :class:`~station.domain.alarms.Alarm` snapshot per state change;
:class:`AlarmHistory` folds those snapshots, by ``alarm_id``, into one :class:`AlarmEpisode` per
alarm (raised → acknowledged → escalated → cleared), so each question is one pass over episodes.

Pure Python (no Qt). States are compared by their string value, so the history keeps working
while the alarm state machine grows new states (``escalated``, ``latched``) and fields.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TypedDict

from station.domain.alarms import Alarm, AlarmKind, Priority
from station.domain.timefmt import iso_ms

CSV_COLUMNS = (
    "alarm_id",
    "bed",
    "device_id",
    "kind",
    "parameter",
    "priority",
    "message",
    "raised_at",
    "acknowledged_at",
    "acknowledged_by",
    "time_to_ack_s",
    "escalated_at",
    "cleared_at",
    "duration_s",
    "comments",
)

# A spreadsheet evaluates a cell that starts with one of these as a formula (CSV injection).
# Device ids, bed names and messages come from the network, so none of them may reach Excel as
# a formula. Tab and carriage return are on OWASP's list too.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


COMMENT_MARKS = (
    "artefact",
    "suction",
    "repositioning",
    "patient care",
    "lead or probe change",
    "clinically relevant",
    "other",
)
"""The fixed choices a nurse marks an alarm with (free text may follow): a review meeting counts
artefacts and care-caused alarms by these, so they are words from one list, not typing."""
MAX_COMMENT = 300


@dataclass(frozen=True, slots=True)
class AlarmComment:
    """A nurse's mark on an alarm: one of :data:`COMMENT_MARKS` and optional free text."""

    at: float
    by: str
    mark: str
    text: str = ""

    def line(self) -> str:
        """The comment as one line: ``artefact: probe loose (ann)``."""
        body = f"{self.mark}: {self.text}" if self.text else self.mark
        return f"{body} ({self.by})"


def comment_of(at: float, by: str, mark: str, text: str) -> AlarmComment:
    """A comment checked for what a nurse can type: a known mark, text on one line and short.

    Raises:
        ValueError: an unknown mark.
    """
    if mark not in COMMENT_MARKS:
        raise ValueError(f"unknown mark {mark!r}: one of {', '.join(COMMENT_MARKS)}")
    flat = " ".join("".join(ch if ch >= " " else " " for ch in text).split())
    return AlarmComment(at, by, mark, flat[:MAX_COMMENT])


@dataclass(frozen=True, slots=True)
class AlarmEpisode:
    """One alarm from raise to clear. Immutable: folding a snapshot makes a new episode.

    ``priority`` is the most urgent priority the alarm reached (an escalation counts), and
    ``message`` is the one it was raised with, which is what the nurse first saw.
    """

    alarm_id: str
    bed: str
    device_id: str
    kind: AlarmKind
    parameter: str
    priority: Priority
    message: str
    raised_at: float
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    escalated_at: float | None = None
    cleared_at: float | None = None
    comments: tuple[AlarmComment, ...] = ()

    @property
    def comment_text(self) -> str:
        """The comments, oldest first, on one line."""
        return "; ".join(c.line() for c in self.comments)

    @property
    def time_to_ack_s(self) -> float | None:
        """Seconds from raise to acknowledgement; None if nobody acknowledged it."""
        return None if self.acknowledged_at is None else self.acknowledged_at - self.raised_at

    @property
    def duration_s(self) -> float | None:
        """Seconds from raise to clear; None while the alarm is still open."""
        return None if self.cleared_at is None else self.cleared_at - self.raised_at


class AckStats(TypedDict):
    """Time-to-acknowledge summary in seconds; the figures are None when ``count`` is 0."""

    count: int
    median: float | None
    p90: float | None
    max: float | None


class AlarmHistory:
    """A bounded, in-memory log of alarm episodes, newest kept when full.

    ``add`` may be called from the thread that receives alarm snapshots while the GUI thread
    reads: a lock guards the table, and readers get immutable episodes, never the live table.

    Args:
        max_episodes: how many episodes to keep; the oldest raised are forgotten first, so a
            station that runs for months holds a bounded amount of memory.
    """

    def __init__(self, max_episodes: int = 100_000) -> None:
        if max_episodes < 1:
            raise ValueError(f"max_episodes must be at least 1, not {max_episodes}")
        self._max = max_episodes
        self._lock = threading.Lock()
        # Insertion order is raise order (the engine emits a raise before any other change).
        self._episodes: dict[str, AlarmEpisode] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._episodes)

    def add(self, alarm: Alarm) -> AlarmEpisode:
        """Fold one snapshot into its episode and return the episode as it now stands.

        The first time wins for every transition, so a repeated snapshot (a redelivery, a replay
        of the audit trail) changes nothing. An acknowledgement is taken from an ``acknowledged``
        snapshot, or from a ``cleared`` one that carries a user (an alarm cleared by the
        acknowledgement itself, e.g. a latched alarm), so both times are kept.
        """
        state = str(alarm.state)
        with self._lock:
            episode = self._episodes.get(alarm.alarm_id)
            if episode is None:
                episode = AlarmEpisode(
                    alarm_id=alarm.alarm_id,
                    bed=alarm.bed,
                    device_id=alarm.device_id,
                    kind=alarm.kind,
                    parameter=alarm.parameter,
                    priority=alarm.priority,
                    message=alarm.message,
                    raised_at=alarm.raised_at,
                )
            folded = _fold(episode, alarm, state)
            self._episodes[alarm.alarm_id] = folded
            while len(self._episodes) > self._max:
                del self._episodes[next(iter(self._episodes))]
            return folded

    def comment(self, alarm_id: str, comment: AlarmComment) -> AlarmEpisode | None:
        """Attach a comment to an episode; None when the history does not hold it."""
        with self._lock:
            episode = self._episodes.get(alarm_id)
            if episode is None:
                return None
            if comment in episode.comments:
                return episode  # the same comment told twice (a reload, a replay)
            episode = replace(episode, comments=(*episode.comments, comment))
            self._episodes[alarm_id] = episode
            return episode

    def merge(self, episodes: Iterable[AlarmEpisode]) -> int:
        """Take episodes read back from the store (after a restart); an episode already here
        (live since the start) keeps what it has, plus the stored comments it lacks. Returns
        how many were new. Kept in raise order, the oldest dropped first when full."""
        new = 0
        with self._lock:
            merged = dict(self._episodes)
            for stored in episodes:
                live = merged.get(stored.alarm_id)
                if live is None:
                    merged[stored.alarm_id] = stored
                    new += 1
                    continue
                extra = tuple(c for c in stored.comments if c not in live.comments)
                if extra:
                    merged[live.alarm_id] = replace(live, comments=(*extra, *live.comments))
            ordered = sorted(merged.values(), key=lambda e: e.raised_at)[-self._max :]
            self._episodes = {e.alarm_id: e for e in ordered}
        return new

    def episodes(
        self, bed: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[AlarmEpisode]:
        """Episodes newest raised first, optionally of one bed and raised in ``[since, until)``."""
        with self._lock:
            found = [
                e
                for e in self._episodes.values()
                if (bed is None or e.bed == bed)
                and (since is None or e.raised_at >= since)
                and (until is None or e.raised_at < until)
            ]
        found.sort(key=lambda e: e.raised_at, reverse=True)
        return found

    def beds(self) -> list[str]:
        """Every bed that has an episode, sorted (technical station alarms have bed "")."""
        with self._lock:
            return sorted({e.bed for e in self._episodes.values()})

    def per_bed_per_hour(self, now: float, window_s: float = 86_400) -> dict[str, float]:
        """Alarms raised per hour for each bed over the ``window_s`` seconds up to ``now``.

        A bed that raised nothing in the window is absent: the history does not know the ward's
        beds, only the ones that alarmed.
        """
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, not {window_s}")
        counts: dict[str, int] = {}
        for episode in self.episodes(since=now - window_s):
            if episode.raised_at <= now:
                counts[episode.bed] = counts.get(episode.bed, 0) + 1
        hours = window_s / 3600
        return {bed: counts[bed] / hours for bed in sorted(counts)}

    def time_to_ack_stats(self, bed: str | None = None) -> AckStats:
        """Median, 90th percentile and maximum time to acknowledge, over acknowledged episodes.

        The 90th percentile is the nearest-rank one: always a delay that really happened, which
        is the figure a review meeting can look up.
        """
        delays = sorted(d for e in self.episodes(bed=bed) if (d := e.time_to_ack_s) is not None)
        if not delays:
            return AckStats(count=0, median=None, p90=None, max=None)
        n = len(delays)
        middle = n // 2
        median = delays[middle] if n % 2 else (delays[middle - 1] + delays[middle]) / 2
        p90 = delays[max(math.ceil(0.9 * n) - 1, 0)]
        return AckStats(count=n, median=median, p90=p90, max=delays[-1])

    def to_csv(self, episodes: Iterable[AlarmEpisode]) -> str:
        """The episodes as CSV text; see :func:`episodes_csv`."""
        return episodes_csv(episodes)


def _fold(episode: AlarmEpisode, alarm: Alarm, state: str) -> AlarmEpisode:
    """The episode after one snapshot; the first time of each transition wins."""
    acked_at: float | None = getattr(alarm, "acked_at", None)
    acked = (
        state == "acknowledged"
        or acked_at is not None
        or (state == "cleared" and alarm.by is not None)
    )
    acknowledged_at, acknowledged_by = episode.acknowledged_at, episode.acknowledged_by
    if acked and acknowledged_at is None:
        acknowledged_at = acked_at if acked_at is not None else alarm.at
        acknowledged_by = alarm.by
    escalated_at = episode.escalated_at
    if state == "escalated" and escalated_at is None:
        escalated_at = alarm.at
    cleared_at = episode.cleared_at
    if state == "cleared" and cleared_at is None:
        cleared_at = alarm.at
    # An escalation may raise the priority; the episode reports the most urgent one reached.
    priority = min(episode.priority, alarm.priority, key=lambda p: p.rank)
    folded = replace(
        episode,
        priority=priority,
        acknowledged_at=acknowledged_at,
        acknowledged_by=acknowledged_by,
        escalated_at=escalated_at,
        cleared_at=cleared_at,
    )
    return episode if folded == episode else folded


def rfc3339(ts: float | None) -> str:
    """UTC RFC 3339 with milliseconds and ``Z``; empty for None (a spreadsheet's empty cell)."""
    return "" if ts is None else iso_ms(ts)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _safe(cell: str) -> str:
    """Neutralise a would-be formula with a leading quote, which spreadsheets show as text."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def episodes_csv(episodes: Iterable[AlarmEpisode]) -> str:
    """CSV with a header row (``CSV_COLUMNS``), one row per episode, safe to open in Excel.

    Times are UTC RFC 3339 so a file read in another time zone means the same instants; every
    cell is checked for a formula start, since bed, device id and message are untrusted text.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in episodes:
        row = (
            e.alarm_id,
            e.bed,
            e.device_id,
            str(e.kind),
            e.parameter,
            str(e.priority),
            e.message,
            rfc3339(e.raised_at),
            rfc3339(e.acknowledged_at),
            e.acknowledged_by or "",
            _seconds(e.time_to_ack_s),
            rfc3339(e.escalated_at),
            rfc3339(e.cleared_at),
            _seconds(e.duration_s),
            e.comment_text,
        )
        writer.writerow([_safe(cell) for cell in row])
    return out.getvalue()
