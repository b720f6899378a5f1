"""The quarantine kept across restarts: the newest rejected messages, for the admin's view.

A rejected message (forged, malformed, from a device nobody onboarded) never reaches a plot, an
alarm or the historian, but the admin who must find the misconfigured sensor or the forger needs
to see what came, from which claimed device, and why it was refused — also after the station
restarted. The core keeps a short list in memory for the status bar; this store keeps the newest
:data:`MAX_ROWS` in SQLite (WAL), in ``quarantine.sqlite`` under the data folder.

Bounded, because rejections are what an attacker controls: a flood of forged messages must not
fill the disk the spool and the audit trail need. :data:`MAX_ROWS` rows of at most ~1 KB (every
text is clipped, below) is at most ~10 MB, enough for an hour of one misbehaving device at 1 Hz
plus the history of the rest; the oldest rows are dropped first, since the newest are what an
admin investigates. Counts (by reason, by device) are over the rows kept.

Safe: only the short printable ``excerpt`` ingest made (:func:`station.domain.ingest.excerpt`)
is stored, never a payload; every text, including the device id a payload claims and the topic,
is made printable and clipped here again, so nothing stored is longer than a table cell. The
file is created owner-only (0600): excerpts may hold a patient's values.

Cheap under a flood: :meth:`QuarantineStore.stage` only queues a row in memory (bounded too);
:meth:`QuarantineStore.flush` writes what is queued in one transaction, with
``synchronous=NORMAL`` (no fsync per commit; WAL survives a process crash, a power cut may lose
the last second of rejections, which is not worth an fsync on the ``core`` thread). The core
flushes on its watch timer (every 250 ms) and whenever :data:`FLUSH_ROWS` are queued.

Threads: :meth:`stage`, :meth:`flush` and :meth:`close` run on the ``core`` thread (one writer
connection, behind a lock). :meth:`query` and :meth:`counts` may be called from any thread:
each opens its own short-lived read-only connection, which WAL lets read the last commit while
the core writes, so a reader never waits behind the core (nor the core behind a reader).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from station.domain.ingest import EXCERPT_CHARS
from station.domain.messages import Rejection
from station.services.storage.sqlite_wal import open_wal, transaction

log = logging.getLogger(__name__)

QUARANTINE_FILE = "quarantine.sqlite"
MAX_ROWS = 10_000
"""Rejections kept at most (see the module docstring for why); older ones are dropped first."""
FLUSH_ROWS = 256
"""Rows queued that make :meth:`QuarantineStore.stage` ask for a flush before the timer's."""
QUERY_LIMIT = 500
"""Rows a query answers by default: the newest, as many as a table is read through."""
SCHEMA_VERSION = "1"
NO_DEVICE = ""
"""The stored device of a message that named none; pass it to :meth:`QuarantineStore.query`
to see only those."""

# Longest text kept per column, in characters; longer is clipped with "…".
REASON_CHARS = 40
DEVICE_CHARS = 128
TOPIC_CHARS = 256
DETAIL_CHARS = 300

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rejection (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    reason TEXT NOT NULL,
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    detail TEXT NOT NULL,
    excerpt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejection_reason ON rejection(reason, id);
CREATE INDEX IF NOT EXISTS rejection_device ON rejection(device, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT = (
    "INSERT INTO rejection (received_at, reason, device, topic, detail, excerpt)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# Row ids only grow (the newest row has the largest), so the bound is one range delete.
_TRIM = "DELETE FROM rejection WHERE id <= (SELECT MAX(id) FROM rejection) - ?"
_COLUMNS = "received_at, reason, device, topic, detail, excerpt"

Row = tuple[float, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class QuarantineCounts:
    """What the store keeps, counted: immutable, so it may cross threads.

    ``by_reason`` and ``by_device`` are ``(name, rows)``, most rows first; ``by_device`` names
    :data:`NO_DEVICE` for messages that named none and holds the ``top`` devices at most.
    """

    kept: int
    by_reason: tuple[tuple[str, int], ...]
    by_device: tuple[tuple[str, int], ...]


class QuarantineStore:
    """The newest rejected messages in SQLite. Written on the ``core`` thread, read from any.

    Args:
        path: the database file (created owner-only, with its folder, by :meth:`open`).
        max_rows: how many rows are kept at most (:data:`MAX_ROWS`).
    """

    def __init__(self, path: Path, max_rows: int = MAX_ROWS) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.path = path
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # Bounded like the table: under a flood with the disk failing, the newest are kept.
        self._staged: deque[Row] = deque(maxlen=max_rows)

    def open(self) -> None:
        """Create the file owner-only if need be, then open it (WAL, ``synchronous=NORMAL``).

        Raises:
            OSError: the file or its folder cannot be made.
            sqlite3.Error: SQLite cannot open the file or refuses WAL.
        """
        # Owner-only (open_wal): excerpts may hold a patient's values.
        conn = open_wal(
            self.path,
            synchronous="NORMAL",
            schema=_SCHEMA,
            meta={"schema_version": SCHEMA_VERSION},
        )
        with self._lock:
            self._conn = conn
        log.info("quarantine store open at %s", self.path)

    def close(self) -> None:
        """Close the writer connection (what is still staged is not written). Idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def staged(self) -> int:
        """Rows waiting for :meth:`flush`."""
        return len(self._staged)

    def stage(self, rejection: Rejection) -> bool:
        """Queue one rejection for the next :meth:`flush` (``core`` thread; no I/O). True when
        :data:`FLUSH_ROWS` are queued: flush now rather than at the next timer."""
        self._staged.append(_row(rejection))
        return len(self._staged) >= FLUSH_ROWS

    def flush(self) -> int:
        """Write what is staged in one transaction and drop the rows beyond the bound; return
        the number written (``core`` thread). On an error the rows stay staged (still bounded)
        for the next flush.

        Raises:
            sqlite3.Error: the write failed (a full disk: ``database or disk is full``).
            RuntimeError: the store is not open.
        """
        if not self._staged:
            return 0
        rows = list(self._staged)
        with self._lock:
            conn = self._connection()
            with transaction(conn):
                conn.executemany(_INSERT, rows)
                conn.execute(_TRIM, (self.max_rows,))
        self._staged.clear()  # nothing was staged meanwhile: both run on the core thread
        return len(rows)

    def query(
        self, reason: str | None = None, device: str | None = None, limit: int = QUERY_LIMIT
    ) -> tuple[Rejection, ...]:
        """The newest kept rejections, newest first; callable from any thread.

        Args:
            reason: only this reason; None: any.
            device: only this claimed device (:data:`NO_DEVICE`: those that named none);
                None: any.
            limit: at most this many rows (at most :attr:`max_rows`).

        Raises:
            sqlite3.Error: the file is unreadable (it not existing yet is an empty answer).
        """
        where: list[str] = []
        args: list[object] = []
        if reason is not None:
            where.append("reason = ?")
            args.append(reason)
        if device is not None:
            where.append("device = ?")
            args.append(device)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        args.append(max(0, min(limit, self.max_rows)))
        sql = f"SELECT {_COLUMNS} FROM rejection {clause} ORDER BY id DESC LIMIT ?"
        with self._reader() as conn:
            if conn is None:
                return ()
            rows = conn.execute(sql, args).fetchall()
        return tuple(
            Rejection(
                reason=reason_,
                detail=detail,
                topic=topic,
                received_at=received_at,
                device_id=device_ or None,
                excerpt=excerpt,
            )
            for received_at, reason_, device_, topic, detail, excerpt in rows
        )

    def counts(self, top: int = 50) -> QuarantineCounts:
        """Rows kept, by reason and by claimed device (the ``top`` devices); any thread.

        Raises:
            sqlite3.Error: the file is unreadable (it not existing yet is an empty answer).
        """
        with self._reader() as conn:
            if conn is None:
                return QuarantineCounts(0, (), ())
            (kept,) = conn.execute("SELECT COUNT(*) FROM rejection").fetchone()
            reasons = conn.execute(
                "SELECT reason, COUNT(*) AS n FROM rejection GROUP BY reason"
                " ORDER BY n DESC, reason"
            ).fetchall()
            devices = conn.execute(
                "SELECT device, COUNT(*) AS n FROM rejection GROUP BY device"
                " ORDER BY n DESC, device LIMIT ?",
                (max(0, top),),
            ).fetchall()
        return QuarantineCounts(
            int(kept),
            tuple((str(r), int(n)) for r, n in reasons),
            tuple((str(d), int(n)) for d, n in devices),
        )

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection | None]:
        """A short-lived read-only connection of the calling thread; None before the file
        exists (nothing rejected has been kept yet)."""
        if not self.path.exists():
            yield None
            return
        conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            yield conn
        finally:
            conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"quarantine store {self.path} is not open")
        return self._conn


def _row(rej: Rejection) -> Row:
    """A rejection as stored: every text printable and clipped (see the module docstring)."""
    return (
        float(rej.received_at),
        _clip(rej.reason, REASON_CHARS),
        _clip(rej.device_id or NO_DEVICE, DEVICE_CHARS),
        _clip(rej.topic, TOPIC_CHARS),
        _clip(rej.detail, DETAIL_CHARS),
        _clip(rej.excerpt, EXCERPT_CHARS + 1),  # ingest's own, with its "…"
    )


def _clip(text: str, limit: int) -> str:
    """``text`` with every unprintable character (newlines, controls, lone surrogates) as
    U+FFFD, at most ``limit`` characters (the last one "…" when clipped)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
