"""The local 72 h trend store: every bed's vital signs in SQLite, so a trend never needs InfluxDB.

A nurse reviewing a patient's trend must not depend on the historian being up, reachable or
caught up. The station therefore keeps 72 h per bed itself, in one SQLite file (WAL).

Two resolutions, decided by what the views need:

- ``raw``: every sample of the most recent 4 h, at full resolution, for the 1 h view and a
  shift-handover look-back (64 beds × 1 Hz × 4 h ≈ 0.9 M rows).
- ``minute``: beyond 4 h, per-minute aggregates (count, sum, min, max per parameter), kept for
  72 h plus :data:`KEEP_MARGIN_S`. An 8/24/72 h plot is 480–4320 points wide anyway, and min/max
  keep the extremes a clinician looks for; the mean is ``sum / count``.

Duplicates never count twice. Raw rows are unique on (bed, device, time_ms) and inserted with
``INSERT OR IGNORE``, so a QoS 1 redelivery is stored once. Aggregates are made from raw rows
only when those age out (:meth:`TrendStore.compact`, whole minutes at a time), in the same
transaction that deletes them, and merged into an existing minute row by an upsert (counts and
sums added, min/max combined): late data older than 4 h joins its minute without losing what was
there. Each minute row also holds a bitmap of the device's seconds it covers, so a redelivery of
a sample that was already folded into a minute is recognised and ignored instead of being counted
again. The price: for a minute already compacted, a second late sample in a second already
covered is taken for a duplicate (only possible above 1 Hz, for data more than 4 h late).

Queries for wide ranges combine the minute table with raw rows aggregated by minute on the fly
(``GROUP BY time_ms / 60000``), so a 72 h view is seamless across the 4 h boundary and shows late
data before the next compaction.

Durability: WAL with ``synchronous=NORMAL``. Unlike the spool (``FULL``), this store is not the
durable record: the spool and the historian are. WAL with ``NORMAL`` survives a process crash
(committed frames are in the OS page cache); a power cut may lose the last seconds of trend,
which is not worth an fsync per batch on the ``core`` thread.

Threads: :meth:`TrendStore.add` and :meth:`TrendStore.compact` run on the station's ``core``
thread (one writer connection, behind a lock). :meth:`TrendStore.query` may be called from any
thread: it opens its own read-only connection, and WAL lets that reader see the last commit while
the core is inside a write transaction, so the GUI never waits behind a write.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from station.services.storage.sqlite_wal import open_wal, transaction

log = logging.getLogger(__name__)

TREND_PARAMS = ("heartrate", "oxygen", "systolic", "diastolic", "temperature")
RAW = "raw"
MINUTE = "1 min"
RAW_SPAN_MAX_S = 3600.0 + 300.0
"""Longest span answered with raw samples: the 1 h view plus a little (clock drift, padding)."""
KEEP_MARGIN_S = 600.0
CAPTURE_KEEP_S = 30 * 86_400.0
"""Event captures (full resolution around high alarms) are kept 30 days: 64 beds' worth of
±5 min at 1 Hz for a busy month is tens of MB, and the alarm review that needs them happens
within days."""
MAX_FOLD_MINUTES = 10
"""Minutes folded per :meth:`TrendStore.compact` call at most (64 beds: ~40k rows, ~0.1 s)."""
"""Kept beyond ``keep_s``, so a 72 h view opened just after a compaction is still full."""
SCHEMA_VERSION = "1"
_MINUTE_MS = 60_000
_CANCEL_CHECK_OPS = 10_000  # SQLite VM steps between two looks at a query's cancel event

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_Array = TypeVar("_Array", FloatArray, IntArray)

_P = TREND_PARAMS


def _each(template: str) -> str:
    """``template`` once per parameter (``{p}`` is the parameter), comma-separated."""
    return ", ".join(template.format(p=p) for p in _P)


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS raw (
    bed TEXT NOT NULL, device TEXT NOT NULL, time_ms INTEGER NOT NULL, {_each("{p} REAL")},
    PRIMARY KEY (bed, time_ms, device)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS raw_time ON raw(time_ms);
CREATE TABLE IF NOT EXISTS minute (
    bed TEXT NOT NULL, minute INTEGER NOT NULL, device TEXT NOT NULL, seconds INTEGER NOT NULL,
    {_each("{p}_n INTEGER NOT NULL, {p}_sum REAL NOT NULL, {p}_min REAL, {p}_max REAL")},
    PRIMARY KEY (bed, minute, device)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS minute_time ON minute(minute);
CREATE TABLE IF NOT EXISTS capture (
    bed TEXT NOT NULL, device TEXT NOT NULL, time_ms INTEGER NOT NULL, {_each("{p} REAL")},
    PRIMARY KEY (bed, time_ms, device)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS capture_time ON capture(time_ms);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_VALUE_PLACEHOLDERS = ", ".join(f"?{i + 4}" for i in range(len(_P)))
# ?1 bed, ?2 device, ?3 time_ms, then one value per parameter. Skipped when the sample's second
# is already folded into its minute (a redelivery after compaction).
_INSERT = f"""
INSERT OR IGNORE INTO raw (bed, device, time_ms, {_each("{p}")})
SELECT ?1, ?2, ?3, {_VALUE_PLACEHOLDERS}
WHERE NOT EXISTS (
    SELECT 1 FROM minute WHERE bed = ?1 AND minute = ?3 / 60000 AND device = ?2
    AND (seconds >> ((?3 / 1000) % 60)) & 1
)
"""
_AGGREGATE_RAW = _each("COUNT({p}), TOTAL({p}), MIN({p}), MAX({p})")
_AGGREGATE_COLUMNS = _each("{p}_n, {p}_sum, {p}_min, {p}_max")
# SUM(DISTINCT 1 << s) over distinct seconds is their bitwise OR. SQLite's two-argument min()
# and max() are NULL when either side is, hence the coalesce on both sides.
_MERGE = _each(
    "{p}_n = {p}_n + excluded.{p}_n, {p}_sum = {p}_sum + excluded.{p}_sum,"
    " {p}_min = min(coalesce({p}_min, excluded.{p}_min), coalesce(excluded.{p}_min, {p}_min)),"
    " {p}_max = max(coalesce({p}_max, excluded.{p}_max), coalesce(excluded.{p}_max, {p}_max))"
)
_FOLD = f"""
INSERT INTO minute (bed, minute, device, seconds, {_AGGREGATE_COLUMNS})
SELECT bed, time_ms / 60000, device, SUM(DISTINCT 1 << ((time_ms / 1000) % 60)), {_AGGREGATE_RAW}
FROM raw WHERE time_ms < ?
GROUP BY bed, time_ms / 60000, device
ON CONFLICT (bed, minute, device) DO UPDATE SET seconds = seconds | excluded.seconds, {_MERGE}
"""
_QUERY_RAW = f"""
SELECT time_ms, {_each("{p}")} FROM raw
WHERE bed = ? AND time_ms >= ? AND time_ms <= ? ORDER BY time_ms, device
"""
_QUERY_CAPTURE = _QUERY_RAW.replace("FROM raw", "FROM capture")
_CAPTURE = f"""
INSERT OR IGNORE INTO capture (bed, device, time_ms, {_each("{p}")})
SELECT bed, device, time_ms, {_each("{p}")} FROM raw WHERE bed = ? AND time_ms BETWEEN ? AND ?
"""
# ?1 bed, ?2 first minute, ?3 last minute, ?4 end in ms: stored minutes plus raw rows grouped
# by minute on the fly, combined per minute.
_QUERY_MINUTES = f"""
SELECT minute, {_each("SUM({p}_n), SUM({p}_sum), MIN({p}_min), MAX({p}_max)")}
FROM (
    SELECT minute, {_AGGREGATE_COLUMNS}
    FROM minute WHERE bed = ?1 AND minute >= ?2 AND minute <= ?3
    UNION ALL
    SELECT time_ms / 60000, {_AGGREGATE_RAW}
    FROM raw WHERE bed = ?1 AND time_ms >= ?2 * 60000 AND time_ms <= ?4
    GROUP BY time_ms / 60000
) AS m
GROUP BY minute ORDER BY minute
"""
_RAW_WIDTH = 1 + len(_P)
_MINUTE_WIDTH = 1 + 4 * len(_P)


class QueryCancelled(Exception):  # noqa: N818 - an outcome, like concurrent.futures.CancelledError
    """:meth:`TrendStore.query` stopped because its ``cancel`` event was set."""


@dataclass(frozen=True, slots=True)
class TrendSample:
    """One message's vital signs for the store. Only :data:`TREND_PARAMS` keys with finite values
    are stored; other keys are ignored. ``time_ms`` is the device time, UTC epoch milliseconds."""

    bed: str
    device: str
    time_ms: int
    values: Mapping[str, float]


@dataclass(frozen=True, slots=True, eq=False)
class TrendData:
    """The answer of a query: immutable, so it may cross threads.

    Every parameter shares one time axis ``t`` (UTC epoch seconds; the start of the minute for
    aggregates). ``mean``, ``min``, ``max`` and ``count`` hold one read-only array per parameter,
    NaN (count 0) where the parameter is missing in that sample or minute. For ``raw`` data
    ``min`` and ``max`` are ``mean`` and ``count`` is 1 or 0.
    """

    bed: str
    start_s: float
    end_s: float
    resolution: str
    t: FloatArray
    mean: Mapping[str, FloatArray]
    min: Mapping[str, FloatArray]
    max: Mapping[str, FloatArray]
    count: Mapping[str, IntArray]

    @property
    def rows(self) -> int:
        """Samples (raw) or minutes (aggregates) in the answer."""
        return int(self.t.size)

    @property
    def is_empty(self) -> bool:
        """True when the store holds nothing for this bed and period."""
        return self.rows == 0

    def series(self, param: str) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``(t, mean, min, max)`` of one parameter."""
        return self.t, self.mean[param], self.min[param], self.max[param]


class TrendStore:
    """Per-bed trends in SQLite. Written by the ``core`` thread, read from any thread.

    Args:
        path: the database file (created with its folder by :meth:`open`).
        raw_keep_s: raw samples younger than this stay raw; older ones are folded into minutes.
        keep_s: how long trends are kept (plus :data:`KEEP_MARGIN_S`).
        clock: UTC epoch seconds, injected for tests.
    """

    def __init__(
        self,
        path: Path,
        raw_keep_s: float = 4 * 3600,
        keep_s: float = 72 * 3600,
        capture_keep_s: float = CAPTURE_KEEP_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < raw_keep_s <= keep_s:
            raise ValueError(f"need 0 < raw_keep_s <= keep_s, got {raw_keep_s} and {keep_s}")
        self.path = path
        self.raw_keep_s = raw_keep_s
        self.keep_s = keep_s
        self.capture_keep_s = capture_keep_s
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.behind = False
        """True when the last :meth:`compact` left raw rows due for folding: call it again."""

    def open(self) -> None:
        """Open or create the database (WAL, ``synchronous=NORMAL``: see the module docstring)."""
        conn = open_wal(
            self.path,
            synchronous="NORMAL",
            schema=_SCHEMA,
            meta={"schema_version": SCHEMA_VERSION},
        )
        with self._lock:
            self._conn = conn
        log.info("trend store open at %s", self.path)

    def close(self) -> None:
        """Close the writer connection. Idempotent; queries keep working on the file."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def add(self, samples: Sequence[TrendSample]) -> int:
        """Store a batch in one transaction (``core`` thread); return the number of new rows.

        Duplicates, samples without a finite trend value and samples older than the store keeps
        are skipped and not counted.
        """
        horizon_ms = (self._clock() - self.keep_s - KEEP_MARGIN_S) * 1000
        rows: list[tuple[object, ...]] = []
        for s in samples:
            if s.time_ms < horizon_ms:
                continue
            values = [_finite(s.values.get(p)) for p in _P]
            if any(v is not None for v in values):
                rows.append((s.bed, s.device, int(s.time_ms), *values))
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            with transaction(conn):
                return int(conn.executemany(_INSERT, rows).rowcount)

    def compact(self) -> tuple[int, int]:
        """Fold raw rows older than ``raw_keep_s`` into minutes; drop what is older than ``keep_s``.

        Called once a minute by the core. Whole minutes only, so a minute's live samples are
        folded together. Returns ``(raw rows folded, rows deleted)``, the latter counting raw and
        minute rows past the keep horizon (raw rows that old are dropped, not folded).
        """
        now = self._clock()
        cut_ms = math.floor((now - self.raw_keep_s) / 60) * _MINUTE_MS
        keep_ms = math.floor((now - self.keep_s - KEEP_MARGIN_S) * 1000)
        with self._lock:
            conn = self._connection()
            # At most MAX_FOLD_MINUTES per call: after the station was off for hours, folding
            # everything at once would hold the core thread (and its alarms) for seconds.
            (oldest,) = conn.execute(
                "SELECT MIN(time_ms) FROM raw WHERE time_ms >= ?", (keep_ms,)
            ).fetchone()
            limit_ms = cut_ms
            if oldest is not None:
                limit_ms = min(cut_ms, (oldest // _MINUTE_MS + MAX_FOLD_MINUTES) * _MINUTE_MS)
            self.behind = limit_ms < cut_ms
            cut_ms = limit_ms
            with transaction(conn):
                deleted = conn.execute("DELETE FROM raw WHERE time_ms < ?", (keep_ms,)).rowcount
                conn.execute(_FOLD, (cut_ms,))
                folded = conn.execute("DELETE FROM raw WHERE time_ms < ?", (cut_ms,)).rowcount
                deleted += conn.execute(
                    "DELETE FROM minute WHERE minute < ?", (keep_ms // _MINUTE_MS,)
                ).rowcount
                captured_ms = math.floor((now - self.capture_keep_s) * 1000)
                deleted += conn.execute(
                    "DELETE FROM capture WHERE time_ms < ?", (captured_ms,)
                ).rowcount
        if folded or deleted:
            log.debug("trend compaction: %d raw rows folded, %d rows deleted", folded, deleted)
        return int(folded), int(deleted)

    def capture(self, bed: str, start_s: float, end_s: float) -> int:
        """Keep ``bed``'s samples from ``start_s`` to ``end_s`` at full resolution beyond the
        raw window (an event around a high alarm); ``core`` thread. Returns the rows kept."""
        with self._lock:
            conn = self._connection()
            with transaction(conn):
                rows = conn.execute(
                    _CAPTURE, (bed, math.floor(start_s * 1000), math.ceil(end_s * 1000))
                ).rowcount
        return int(rows)

    def row_counts(self) -> tuple[int, int]:
        """``(raw rows, minute rows)`` in the store, for diagnostics and tests (any thread)."""
        with _read_only(self.path, None) as conn:
            raw = conn.execute("SELECT COUNT(*) FROM raw").fetchone()[0]
            minutes = conn.execute("SELECT COUNT(*) FROM minute").fetchone()[0]
        return int(raw), int(minutes)

    def query(
        self,
        bed: str,
        start_s: float,
        end_s: float,
        cancel: threading.Event | None = None,
    ) -> TrendData:
        """One bed's trend between two UTC epoch times; callable from any thread.

        Raw samples when the span is at most :data:`RAW_SPAN_MAX_S` and still within the raw
        window (or, older, kept by an event capture: :meth:`capture`), else 1-minute aggregates
        (whole minutes overlapping the span). Runs on its own
        read-only connection, so it never waits for the core's write transaction.

        Raises:
            QueryCancelled: ``cancel`` was set while the query ran.
            sqlite3.Error: the file is unreadable (it not existing yet is an empty answer).
        """
        if end_s < start_s:
            raise ValueError(f"end {end_s} is before start {start_s}")
        raw = end_s - start_s <= RAW_SPAN_MAX_S and start_s >= self._clock() - self.raw_keep_s
        resolution = RAW if raw else MINUTE
        start_ms, end_ms = math.floor(start_s * 1000), math.ceil(end_s * 1000)
        width = _RAW_WIDTH if raw else _MINUTE_WIDTH
        if not self.path.exists():
            return _data(bed, start_s, end_s, resolution, np.empty((0, width)))
        if cancel is not None and cancel.is_set():
            raise QueryCancelled(f"trend query for {bed} cancelled")
        with _read_only(self.path, cancel) as conn:
            try:
                if raw:
                    rows = conn.execute(_QUERY_RAW, (bed, start_ms, end_ms)).fetchall()
                elif end_s - start_s <= RAW_SPAN_MAX_S and (
                    rows := conn.execute(_QUERY_CAPTURE, (bed, start_ms, end_ms)).fetchall()
                ):
                    # Older than the raw window, but an event capture kept it: every sample.
                    raw, resolution, width = True, RAW, _RAW_WIDTH
                else:
                    first, last = start_ms // _MINUTE_MS, end_ms // _MINUTE_MS
                    rows = conn.execute(_QUERY_MINUTES, (bed, first, last, end_ms)).fetchall()
            except sqlite3.OperationalError as exc:
                if cancel is not None and cancel.is_set():
                    raise QueryCancelled(f"trend query for {bed} cancelled") from exc
                raise
        table = np.array(rows, dtype=np.float64).reshape(-1, width)  # NULL becomes NaN
        return _data(bed, start_s, end_s, resolution, table)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"trend store {self.path} is not open")
        return self._conn


@contextmanager
def _read_only(path: Path, cancel: threading.Event | None) -> Iterator[sqlite3.Connection]:
    """A short-lived read-only connection; SQLite interrupts its query once ``cancel`` is set."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        if cancel is not None:
            conn.set_progress_handler(lambda: int(cancel.is_set()), _CANCEL_CHECK_OPS)
        yield conn
    finally:
        conn.close()


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _frozen(array: _Array) -> _Array:
    array.setflags(write=False)
    return array


def _data(bed: str, start_s: float, end_s: float, resolution: str, table: FloatArray) -> TrendData:
    """Build a :class:`TrendData` from query rows (raw: time + values; minutes: minute + 4 per
    parameter)."""
    mean: dict[str, FloatArray] = {}
    low: dict[str, FloatArray] = {}
    high: dict[str, FloatArray] = {}
    count: dict[str, IntArray] = {}
    if resolution == RAW:
        t = table[:, 0] / 1000.0
        for i, p in enumerate(_P):
            mean[p] = low[p] = high[p] = _frozen(np.ascontiguousarray(table[:, 1 + i]))
            count[p] = _frozen(np.isfinite(mean[p]).astype(np.int64))
    else:
        t = table[:, 0] * 60.0
        for i, p in enumerate(_P):
            n, total = table[:, 1 + 4 * i], table[:, 2 + 4 * i]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean[p] = _frozen(np.where(n > 0, total / n, np.nan))
            low[p] = _frozen(np.ascontiguousarray(table[:, 3 + 4 * i]))
            high[p] = _frozen(np.ascontiguousarray(table[:, 4 + 4 * i]))
            count[p] = _frozen(n.astype(np.int64))
    return TrendData(
        bed=bed,
        start_s=start_s,
        end_s=end_s,
        resolution=resolution,
        t=_frozen(np.ascontiguousarray(t)),
        mean=MappingProxyType(mean),
        min=MappingProxyType(low),
        max=MappingProxyType(high),
        count=MappingProxyType(count),
    )
