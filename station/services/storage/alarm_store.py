"""The alarm history on disk: every alarm episode and its comments in SQLite, so a review after a
restart (or of last month) still finds them.

Before this store the history lived in the window's memory: empty after every restart, so a
night's alarms were gone by the morning's review. The audit trail holds every change too, but as
a sealed log meant for auditors, not for the queries a ward runs (a bed, a date range, with
comments), and rebuilding from it means reading every rotated file.

Written by the core thread (:meth:`AlarmStore.save`, :meth:`AlarmStore.add_comment`): episodes
are upserted by ``alarm_id`` in one transaction per batch (the core flushes once a second), in
WAL with ``synchronous=NORMAL`` like the trend store: the audit trail is the durable record of
each change; this file is its index. Read from any thread (:meth:`AlarmStore.load`) on a
read-only connection of its own, so a query never waits behind a write. Episodes older than
``keep_s`` (a year by default) are dropped when the store opens. Owner-only: it names beds'
alarms and who acknowledged them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from station.domain.alarm_history import AlarmComment, AlarmEpisode
from station.domain.alarms import AlarmKind, Priority
from station.services.storage.sqlite_wal import open_wal, transaction

ALARM_STORE_FILE = "alarms.sqlite"
SCHEMA_VERSION = "1"
KEEP_S = 366 * 86_400.0
LOAD_LIMIT = 100_000
"""Episodes one query returns at most (newest first): a history dialog's table stays usable."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes(
    alarm_id TEXT PRIMARY KEY,
    bed TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    parameter TEXT NOT NULL,
    priority TEXT NOT NULL,
    message TEXT NOT NULL,
    raised_at REAL NOT NULL,
    acknowledged_at REAL,
    acknowledged_by TEXT,
    escalated_at REAL,
    cleared_at REAL
);
CREATE INDEX IF NOT EXISTS episodes_raised ON episodes(raised_at);
CREATE TABLE IF NOT EXISTS comments(
    alarm_id TEXT NOT NULL,
    at REAL NOT NULL,
    by TEXT NOT NULL,
    mark TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE(alarm_id, at, by, mark, text)
);
CREATE INDEX IF NOT EXISTS comments_alarm ON comments(alarm_id);
"""

_UPSERT = """
INSERT INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(alarm_id) DO UPDATE SET
    priority = excluded.priority,
    acknowledged_at = excluded.acknowledged_at,
    acknowledged_by = excluded.acknowledged_by,
    escalated_at = excluded.escalated_at,
    cleared_at = excluded.cleared_at
"""


class AlarmStore:
    """Alarm episodes and comments in one SQLite file; see the module docstring."""

    def __init__(
        self, path: Path, keep_s: float = KEEP_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.keep_s = keep_s
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open or create the file (owner-only), and drop episodes older than ``keep_s``.

        Raises:
            sqlite3.Error, OSError: the file cannot be opened or created.
        """
        conn = open_wal(
            self.path,
            synchronous="NORMAL",
            schema=_SCHEMA,
            meta={"schema_version": SCHEMA_VERSION},
        )
        horizon = self._clock() - self.keep_s
        with transaction(conn):
            conn.execute(
                "DELETE FROM comments WHERE alarm_id IN "
                "(SELECT alarm_id FROM episodes WHERE raised_at < ?)",
                (horizon,),
            )
            conn.execute("DELETE FROM episodes WHERE raised_at < ?", (horizon,))
        with self._lock:
            self._conn = conn

    def close(self) -> None:
        """Close the writer connection. Idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def save(self, episodes: Iterable[AlarmEpisode]) -> None:
        """Insert or update episodes in one transaction (the core thread's flush).

        Raises:
            sqlite3.Error: the write failed (a full disk); nothing of the batch is kept.
        """
        rows = [
            (
                e.alarm_id,
                e.bed,
                e.device_id,
                e.kind.value,
                e.parameter,
                e.priority.value,
                e.message,
                e.raised_at,
                e.acknowledged_at,
                e.acknowledged_by,
                e.escalated_at,
                e.cleared_at,
            )
            for e in episodes
        ]
        if not rows:
            return
        with self._lock:
            conn = self._writer()
            with transaction(conn):
                conn.executemany(_UPSERT, rows)

    def add_comment(self, alarm_id: str, comment: AlarmComment) -> None:
        """Keep a nurse's comment on an alarm.

        Raises:
            sqlite3.Error: the write failed.
        """
        with self._lock:
            conn = self._writer()
            with transaction(conn):
                conn.execute(
                    "INSERT OR IGNORE INTO comments VALUES (?, ?, ?, ?, ?)",
                    (alarm_id, comment.at, comment.by, comment.mark, comment.text),
                )

    def load(
        self, since: float, until: float, bed: str | None = None, limit: int = LOAD_LIMIT
    ) -> list[AlarmEpisode]:
        """Episodes raised in ``[since, until)`` (of one bed, or all), newest first, with their
        comments. Any thread: its own read-only connection.

        Raises:
            sqlite3.Error: the file cannot be read.
        """
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            where = "raised_at >= ? AND raised_at < ?"
            args: list[float | str] = [since, until]
            if bed is not None:
                where += " AND bed = ?"
                args.append(bed)
            rows = conn.execute(
                f"SELECT * FROM episodes WHERE {where} ORDER BY raised_at DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            comments: dict[str, list[AlarmComment]] = {}
            ids = [row[0] for row in rows]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for alarm_id, at, by, mark, text in conn.execute(
                    f"SELECT alarm_id, at, by, mark, text FROM comments "
                    f"WHERE alarm_id IN ({marks}) ORDER BY at",
                    chunk,
                ):
                    comments.setdefault(alarm_id, []).append(AlarmComment(at, by, mark, text))
        finally:
            conn.close()
        return [episode_of(row, tuple(comments.get(row[0], ()))) for row in rows]

    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError(f"{self.path}: alarm store is not open")
        return self._conn


def episode_of(row: tuple[object, ...], comments: tuple[AlarmComment, ...] = ()) -> AlarmEpisode:
    """The episode of one ``episodes`` row (its columns in the table's order, ``rowid`` left out),
    with its comments: also for the HL7 interface, which reads the store on its own
    connection."""
    (alarm_id, bed, device, kind, parameter, priority, message, raised, acked, by, esc, cleared) = (
        row
    )
    return AlarmEpisode(
        alarm_id=str(alarm_id),
        bed=str(bed),
        device_id=str(device),
        kind=AlarmKind(str(kind)),
        parameter=str(parameter),
        priority=Priority(str(priority)),
        message=str(message),
        raised_at=float(raised),  # type: ignore[arg-type]
        acknowledged_at=None if acked is None else float(acked),  # type: ignore[arg-type]
        acknowledged_by=None if by is None else str(by),
        escalated_at=None if esc is None else float(esc),  # type: ignore[arg-type]
        cleared_at=None if cleared is None else float(cleared),  # type: ignore[arg-type]
        comments=comments,
    )
