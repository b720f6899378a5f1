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

from station.services.storage.sqlite_wal import open_wal, transaction

log = logging.getLogger(__name__)

SCHEMA_VERSION = "2"
PRUNE_CHUNK = 5000  # rows deleted per transaction (a few ms), so a prune never stalls an append

# Schema 2 keys a point by (time_ms, line) instead of line alone (schema 1: ``line TEXT UNIQUE``).
# The same uniqueness (time_ms is read from the line itself), but the index now grows at its
# end, in device-time order, instead of at a random place per row: an append of 16 points
# rewrote ~16 index pages of a line-sorted index and now rewrites one or two. Measured with a
# 16-point group commit (synchronous=FULL): ~50 µs per point (60+ as the spool grows) → ~25.
# ``time_ms`` defaults to 0 so that an older station opening this file can still append.
_POINTS = """
CREATE TABLE {name} (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    device TEXT,
    seq INTEGER,
    line TEXT NOT NULL,
    written INTEGER NOT NULL DEFAULT 0,
    time_ms INTEGER NOT NULL DEFAULT 0
)
"""
_SCHEMA = f"""
{_POINTS.format(name="IF NOT EXISTS points").strip()};
CREATE UNIQUE INDEX IF NOT EXISTS points_key ON points(time_ms, line);
CREATE INDEX IF NOT EXISTS points_written ON points(written);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT = (
    "INSERT OR IGNORE INTO points(received_at, device, seq, line, time_ms) VALUES (?, ?, ?, ?, ?)"
)
_INT64_DIGITS = 18  # any number of this many digits fits SQLite's INTEGER


def time_key(line: str) -> int:
    """The line's timestamp (its last space-separated token) for the ``points_key`` index; 0
    when that is not a plain integer of at most :data:`_INT64_DIGITS` digits. Any function of the
    line would keep uniqueness exact, since the line itself is in the key: this one only makes
    the index grow in time order."""
    tail = line[line.rfind(" ") + 1 :]
    digits = tail[1:] if tail[:1] == "-" else tail
    if 0 < len(digits) <= _INT64_DIGITS and digits.isascii() and digits.isdigit():
        return int(tail)
    return 0


def _path(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def _migrate(conn: sqlite3.Connection) -> None:
    """Rebuild a schema 1 ``points`` table as schema 2, in one transaction (all or nothing:
    a crash midway leaves schema 1, migrated again at the next open). Rows keep their ids, so
    the historian's order is unchanged. The indexes follow from :data:`_SCHEMA`."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(points)")}
    if not columns or "time_ms" in columns:
        return  # a new file, or schema 2 already
    log.warning(
        "spool %s has schema 1: migrating it to schema %s once", _path(conn), SCHEMA_VERSION
    )
    started = time.monotonic()
    conn.create_function("time_key", 1, time_key, deterministic=True)
    with transaction(conn):
        conn.execute("DROP TABLE IF EXISTS points_v2")
        conn.execute(_POINTS.format(name="points_v2"))
        copied = conn.execute(
            "INSERT INTO points_v2 (id, received_at, device, seq, line, written, time_ms)"
            " SELECT id, received_at, device, seq, line, written, time_key(line) FROM points"
        ).rowcount
        conn.execute("DROP TABLE points")
        conn.execute("ALTER TABLE points_v2 RENAME TO points")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )
    log.warning(
        "spool migrated to schema %s: %d points in %.1f s",
        SCHEMA_VERSION,
        copied,
        time.monotonic() - started,
    )


Row = tuple[str, int | None, str]
"""One point to spool: ``(device, seq or None, line protocol)``."""


class SpoolFull(Exception):  # noqa: N818 - a state callers name, like queue.Full
    """The spool refused an append: its budget or the disk is exhausted. Nothing was stored."""


class Spool:
    """A SQLite spool of line-protocol points, shared by the ``core`` and ``historian`` threads.

    Every public method is thread-safe: one connection, one lock, held for one transaction at a
    time (a prune releases it between chunks of :data:`PRUNE_CHUNK` rows), so the core's append
    and the historian's drain wait at most for one short transaction of the other.

    Idempotence: ``line`` is unique (through the ``(time_ms, line)`` key, ``time_ms`` read from
    the line). A line holds measurement, tags, fields and device time, so an identical line is
    the same point, and a QoS 1 redelivery is stored once. A redelivery that
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
        self._page_size = 4096

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
            migrate=_migrate,
        )
        unwritten = conn.execute("SELECT COUNT(*) FROM points WHERE written = 0").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        with self._lock:
            self._conn = conn
            self._unwritten = int(unwritten)
            self._page_size = int(page_size)  # fixed once the file exists (WAL: no VACUUM change)
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
            rows = [(now, device, seq, text, time_key(text)) for device, seq, text in lines]
            added = self._transaction(conn, _INSERT, rows, refuse=len(lines))
            self._unwritten += added
            return added

    def pending(self, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` unwritten ``(id, line)``, oldest first (``historian`` thread)."""
        with self._lock:
            cur = self._connection().execute(
                "SELECT id, line FROM points WHERE written = 0 ORDER BY id LIMIT ?", (limit,)
            )
            rows: list[tuple[int, str]] = cur.fetchall()  # INTEGER PRIMARY KEY, TEXT NOT NULL
            return rows

    def mark_written(self, ids: Iterable[int]) -> int:
        """Mark points the historian wrote (``historian`` thread); return how many changed.

        One ``UPDATE`` per run of consecutive ids (a drained batch is usually one run), not one
        per id: the same rows, a fraction of the statements.
        """
        params = _runs(ids)
        if not params:
            return 0
        with self._lock:
            sql = "UPDATE points SET written = 1 WHERE id BETWEEN ? AND ? AND written = 0"
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

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        # Pages on the freelist are reused before the file grows, so they count as room. Each
        # PRAGMA costs ~4 µs and this runs before every append: the page size is read at open.
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self._page_size)

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


def _runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """``ids`` as ``(first, last)`` runs of consecutive integers, each id in exactly one run."""
    runs: list[tuple[int, int]] = []
    ordered = sorted(set(ids))
    if not ordered:
        return runs
    first = last = ordered[0]
    for i in ordered[1:]:
        if i != last + 1:
            runs.append((first, last))
            first = i
        last = i
    runs.append((first, last))
    return runs
