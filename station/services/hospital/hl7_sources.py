"""Reading the alarm store and the trend store for the HL7 interface, on connections of its own.

Why read the stores rather than listen to the core: both are on disk (the alarm store gets every
alarm change within about a second, the trend store every accepted sample within 250 ms), so the
interface's thread reads them at its own pace by cursors it keeps in its outbox, and neither the
core thread nor the screen ever waits for the hospital. A station killed and restarted finds
there everything it had not yet queued. WAL lets these read-only connections see the last commit
while the core writes; they are this thread's own, never the station's writers.

A store that is missing or unreadable (the station could not open it, a disk fault) raises
:class:`sqlite3.Error`; the caller retries later and says so once.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from station.domain.alarm_history import AlarmEpisode
from station.domain.hl7.observations import Sample
from station.services.storage.alarm_store import episode_of
from station.services.storage.trends import TREND_PARAMS

_T = TypeVar("_T")
_EPISODE_COLUMNS = (
    "rowid, alarm_id, bed, device_id, kind, parameter, priority, message, raised_at,"
    " acknowledged_at, acknowledged_by, escalated_at, cleared_at"
)
_SAMPLE_COLUMNS = "bed, device, time_ms, " + ", ".join(TREND_PARAMS)


def _read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA query_only = ON")
    return conn


class SourceError(sqlite3.Error):
    """A store cannot be read (missing, locked out, damaged); the connection is dropped, so the
    next read opens it afresh."""


def _reading(method: Callable[..., _T]) -> Callable[..., _T]:
    """Turn a read's :class:`sqlite3.Error` into :class:`SourceError`, dropping the
    connections (a store created or repaired since is then opened afresh)."""

    @functools.wraps(method)
    def read(self: Sources, *args: Any) -> _T:
        try:
            return method(self, *args)
        except sqlite3.Error as exc:
            self.close()
            raise SourceError(str(exc)) from exc

    return read


class Sources:
    """Read-only views of the two stores; one thread (``hl7-out``) uses them."""

    def __init__(self, alarms: Path, trends: Path) -> None:
        self.alarms_path = alarms
        self.trends_path = trends
        self._alarms: sqlite3.Connection | None = None
        self._trends: sqlite3.Connection | None = None

    def close(self) -> None:
        """Close both connections. Idempotent."""
        for conn in (self._alarms, self._trends):
            if conn is not None:
                conn.close()
        self._alarms = self._trends = None

    def _alarm_db(self) -> sqlite3.Connection:
        if self._alarms is None:
            self._alarms = _read_only(self.alarms_path)
        return self._alarms

    def _trend_db(self) -> sqlite3.Connection:
        if self._trends is None:
            self._trends = _read_only(self.trends_path)
        return self._trends

    # -- alarms ------------------------------------------------------------------------------

    @_reading
    def last_alarm_row(self) -> int:
        """The newest episode's row: where a first start begins (history stays unsent)."""
        (row,) = self._alarm_db().execute("SELECT COALESCE(MAX(rowid), 0) FROM episodes").fetchone()
        return int(row)

    @_reading
    def alarms_after(self, row: int, limit: int) -> list[tuple[int, AlarmEpisode]]:
        """Episodes first written after ``row`` (upserts keep an episode's row: a change of an
        older episode is found by :meth:`alarms_by_id`), oldest first."""
        rows = self._alarm_db().execute(
            f"SELECT {_EPISODE_COLUMNS} FROM episodes WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (row, limit),
        )
        return [(int(r[0]), episode_of(r[1:])) for r in rows]

    @_reading
    def alarms_by_id(self, alarm_ids: Iterable[str]) -> list[AlarmEpisode]:
        """The episodes of these alarms as they stand now."""
        ids = list(alarm_ids)
        out: list[AlarmEpisode] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._alarm_db().execute(
                f"SELECT {_EPISODE_COLUMNS} FROM episodes WHERE alarm_id IN ({marks})", chunk
            )
            out.extend(episode_of(r[1:]) for r in rows)
        return out

    # -- trends ------------------------------------------------------------------------------

    @_reading
    def samples(self, start_ms: int, end_ms: int) -> list[Sample]:
        """Raw samples with device time in ``[start_ms, end_ms)``, every bed."""
        rows = self._trend_db().execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM raw WHERE time_ms >= ? AND time_ms < ?"
            " ORDER BY time_ms, bed, device",
            (start_ms, end_ms),
        )
        return [_sample(r) for r in rows]

    @_reading
    def bed_counts(self, start_ms: int, end_ms: int) -> dict[str, int]:
        """How many raw samples each bed has with device time in ``[start_ms, end_ms)``."""
        rows = self._trend_db().execute(
            "SELECT bed, COUNT(*) FROM raw WHERE time_ms >= ? AND time_ms < ? GROUP BY bed",
            (start_ms, end_ms),
        )
        return {str(bed): int(n) for bed, n in rows}

    @_reading
    def samples_after(self, after: tuple[int, str, str], until_ms: int, limit: int) -> list[Sample]:
        """Raw samples after ``after`` (time, bed, device: exact, so a batch may end anywhere)
        and at or before ``until_ms``, in that order."""
        rows = self._trend_db().execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM raw WHERE time_ms >= ? AND time_ms <= ?"
            " AND (time_ms, bed, device) > (?, ?, ?) ORDER BY time_ms, bed, device LIMIT ?",
            (after[0], until_ms, *after, limit),
        )
        return [_sample(r) for r in rows]


def _sample(row: tuple[object, ...]) -> Sample:
    bed, device, time_ms, *values = row
    found = {p: float(v) for p, v in zip(TREND_PARAMS, values, strict=True) if v is not None}  # type: ignore[arg-type]
    return Sample(str(bed), str(device), int(time_ms), found)  # type: ignore[call-overload]
