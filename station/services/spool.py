"""The local spool: every accepted point is on disk before its MQTT message is acknowledged.

The ``core`` thread appends each batch of line-protocol points (group commit: what arrived in
~20 ms is one transaction) and only then acknowledges the MQTT messages it came from; the
``historian`` thread drains the spool in id order and marks what InfluxDB took. A crash at any
moment therefore loses nothing that was acknowledged: what was not committed was not acknowledged,
and the broker redelivers it.

Durability: SQLite in WAL mode with ``synchronous=FULL``. With WAL, ``NORMAL`` already survives a
process crash (SIGKILL), because committed frames are in the OS page cache; but on a power cut it
may lose the last transactions, and those were acknowledged to the broker, which has then dropped
them. ``FULL`` fsyncs the WAL on every commit, which group commit makes affordable. A torn tail
(a half-written WAL frame) fails the WAL's checksums and is dropped by SQLite on the next open.

Budget policy: before each append the spool compares the bytes in use (pages in use, since SQLite
reuses freed pages without shrinking the file) with ``budget_bytes``. When over, it first deletes
rows already written to the historian, whatever their age, until under budget; if still over
(everything left is unwritten), it refuses the append with :class:`SpoolFull` and counts it in
:attr:`Spool.refused`. A disk that fills before the budget (SQLite's "database or disk is full",
or any other write error) is refused the same way. The caller (the core) then applies the
station's policy: live monitoring comes first, so the MQTT messages are still acknowledged
(unacknowledged, they would fill the broker's in-flight window and the station would go deaf: no
display, no alarms); their points go to the historian's memory queue instead, which writes them
when InfluxDB is up; they are lost if the station stops first or if that queue overflows too
(1 M points, each drop counted and logged). Every refusal is counted, audited and raised as a
high-priority technical alarm until the spool takes points again: never silent. As the check
runs before a transaction, the spool may exceed its budget by at most one batch.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from station.services.sqlite_wal import open_wal, transaction

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
PRUNE_CHUNK = 5000  # rows deleted per transaction (a few ms), so a prune never stalls an append

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    device TEXT,
    seq INTEGER,
    line TEXT NOT NULL UNIQUE,
    written INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS points_written ON points(written);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Row = tuple[str, int | None, str]
"""One point to spool: ``(device, seq or None, line protocol)``."""


class SpoolFull(Exception):  # noqa: N818 - a state callers name, like queue.Full
    """The spool refused an append: its budget or the disk is exhausted. Nothing was stored."""


class Spool:
    """A SQLite spool of line-protocol points, shared by the ``core`` and ``historian`` threads.

    Every public method is thread-safe: one connection, one lock, held for one transaction at a
    time (a prune releases it between chunks of :data:`PRUNE_CHUNK` rows), so the core's append
    and the historian's drain wait at most for one short transaction of the other.

    Idempotence: ``line`` is unique. A line holds measurement, tags, fields and device time, so an
    identical line is the same point, and a QoS 1 redelivery is stored once. A redelivery that
    arrives after its original was pruned is stored again and written again, which InfluxDB
    counts once.
    """

    def __init__(
        self,
        path: Path,
        budget_bytes: int = 2 * 1024**3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.budget_bytes = budget_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._refused = 0
        self._unwritten = 0  # kept by append / mark_written: backlog() must not COUNT(*)

    @property
    def refused(self) -> int:
        """Appends refused since :meth:`open` (budget or disk full)."""
        return self._refused

    def open(self) -> None:
        """Open or create the database. Called once, on any thread, before the threads start."""
        conn = open_wal(
            self.path,
            synchronous="FULL",
            schema=_SCHEMA,
            meta={"schema_version": SCHEMA_VERSION, "created_at": repr(self._clock())},
        )
        unwritten = conn.execute("SELECT COUNT(*) FROM points WHERE written = 0").fetchone()[0]
        with self._lock:
            self._conn = conn
            self._unwritten = int(unwritten)
        log.info(
            "spool open at %s (budget %d bytes, %d points not yet written)",
            self.path,
            self.budget_bytes,
            unwritten,
        )

    def close(self) -> None:
        """Checkpoint and close. Idempotent; call after the threads that use it have stopped."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def append(self, lines: Sequence[Row]) -> int:
        """Store a batch in one transaction (``core`` thread); return the number of new rows.

        Returns only once the commit is durable, so the caller may then acknowledge the MQTT
        messages. Duplicates of stored lines are skipped, not counted.

        Raises:
            SpoolFull: over budget after pruning written rows, the disk is full, or the write
                failed. Nothing of the batch is stored (see the budget policy above).
        """
        if not lines:
            return 0
        with self._lock:
            conn = self._connection()
            if self._used_bytes(conn) > self.budget_bytes:
                # In chunks, stopping as soon as there is room: one append frees what it needs
                # (a chunk is room for many batches) rather than every written row at once.
                sql = (
                    "DELETE FROM points WHERE id IN"
                    f" (SELECT id FROM points WHERE written = 1 LIMIT {PRUNE_CHUNK})"
                )
                freed, deleted = 0, PRUNE_CHUNK
                while deleted == PRUNE_CHUNK and self._used_bytes(conn) > self.budget_bytes:
                    deleted = self._transaction(conn, sql, (), refuse=len(lines))
                    freed += deleted
                log.warning("spool over budget: pruned %d written rows", freed)
                used = self._used_bytes(conn)
                if used > self.budget_bytes:
                    self._refused += 1
                    raise SpoolFull(
                        f"spool {self.path} is full: {used} bytes in use of a {self.budget_bytes}"
                        f" byte budget, all unwritten; refusing {len(lines)} points"
                        f" (refusal {self._refused})"
                    )
            now = self._clock()
            rows = [(now, device, seq, text) for device, seq, text in lines]
            added = self._transaction(
                conn,
                "INSERT OR IGNORE INTO points(received_at, device, seq, line) VALUES (?, ?, ?, ?)",
                rows,
                refuse=len(lines),
            )
            self._unwritten += added
            return added

    def pending(self, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` unwritten ``(id, line)``, oldest first (``historian`` thread)."""
        with self._lock:
            cur = self._connection().execute(
                "SELECT id, line FROM points WHERE written = 0 ORDER BY id LIMIT ?", (limit,)
            )
            return [(int(i), str(text)) for i, text in cur]

    def mark_written(self, ids: Iterable[int]) -> int:
        """Mark points the historian wrote (``historian`` thread); return how many changed."""
        params = [(i,) for i in ids]
        if not params:
            return 0
        with self._lock:
            sql = "UPDATE points SET written = 1 WHERE id = ? AND written = 0"
            changed = self._transaction(self._connection(), sql, params)
            self._unwritten -= changed
            return changed

    def backlog(self) -> tuple[int, float | None]:
        """Unwritten points and the age in seconds of the oldest, None when there is none (any
        thread; for the window's historian status). Cheap at any size: a counter and one index
        lookup, so the core's appends never wait behind it."""
        with self._lock:
            count = self._unwritten
            row = (
                self._connection()
                .execute("SELECT received_at FROM points WHERE written = 0 ORDER BY id LIMIT 1")
                .fetchone()
            )
        oldest = None if row is None else max(0.0, self._clock() - float(row[0]))
        return count, oldest

    def prune(self, keep_written_s: float) -> int:
        """Delete written points received more than ``keep_written_s`` ago; return how many.

        Unwritten points are never pruned: only the historian's acknowledgement makes them safe.
        Deleted :data:`PRUNE_CHUNK` rows per transaction, the lock released in between, so the
        core's appends never wait behind a large prune.
        """
        cutoff = self._clock() - keep_written_s
        sql = (
            "DELETE FROM points WHERE id IN (SELECT id FROM points"
            f" WHERE written = 1 AND received_at < ? LIMIT {PRUNE_CHUNK})"
        )
        total = 0
        while True:
            with self._lock:
                deleted = self._transaction(self._connection(), sql, (cutoff,))
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"spool {self.path} is not open")
        return self._conn

    @staticmethod
    def _used_bytes(conn: sqlite3.Connection) -> int:
        # Pages on the freelist are reused before the file grows, so they count as room.
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _transaction(
        self,
        conn: sqlite3.Connection,
        sql: str,
        params: Sequence[tuple[object, ...]] | tuple[object, ...],
        refuse: int = 0,
    ) -> int:
        """Run ``sql`` (many times if ``params`` is a list) in one write transaction.

        A full disk becomes :class:`SpoolFull` when ``refuse`` (the batch size) is given, so the
        caller treats it like the budget; otherwise the error propagates.
        """
        try:
            with transaction(conn):
                if isinstance(params, list):
                    changed = conn.executemany(sql, params).rowcount
                else:
                    changed = conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            if refuse:
                self._refused += 1
                full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                why = "database or disk is full" if full else f"cannot write: {exc}"
                raise SpoolFull(
                    f"spool {self.path}: {why}; refusing {refuse} points (refusal {self._refused})"
                ) from exc
            raise
        return int(changed)
