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

Consent: a point of a patient whose storage consent is withdrawn (or was never given) must not
reach the historian even if it was spooled before the core learned of it, so :meth:`Spool.withhold`
holds a bed's unwritten points of a stay back at once and :meth:`Spool.purge_step` deletes them,
found by the ``bed`` column (schema 3, :mod:`~station.services.storage.spool_schema`).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from station.domain.lineprotocol import escape_tag
from station.services.storage.spool_schema import (
    INSERT,
    SCHEMA,
    SCHEMA_VERSION,
    bed_key,
    migrate,
    time_key,
)
from station.services.storage.sqlite_wal import open_wal, transaction

log = logging.getLogger(__name__)

PRUNE_CHUNK = 5000  # rows deleted per transaction (a few ms), so a prune never stalls an append
PURGE_WINDOW = 16384
"""Ids one :meth:`Spool.purge_step` looks through (one transaction of a few ms): a consent
withdrawn during a long historian outage is purged over the core's watch ticks, not in one stall
of the core thread; meanwhile :meth:`Spool.pending` already holds those points back."""

Row = tuple[str, int | None, str]
"""One point to spool: ``(device, seq or None, line protocol)``."""


class SpoolFull(Exception):  # noqa: N818 - a state callers name, like queue.Full
    """The spool refused an append: its budget or the disk is exhausted. Nothing was stored."""


@dataclass(slots=True)
class _Withheld:
    """Unwritten points of one bed, appended from ``since`` until ``until`` and at most up to id
    ``last_id`` (the newest when asked: a later point is a later decision's), that must never
    reach the historian. ``next_id``: where the purge goes on; ``purged``: deleted so far."""

    tag: object
    bed: str  # escaped, as in the lines and the ``bed`` column
    since: float
    until: float
    last_id: int
    next_id: int
    purged: int = 0


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
        self._withheld: list[_Withheld] = []  # consent withdrawn: held back, then purged

    @property
    def refused(self) -> int:
        """Appends refused since :meth:`open` (budget or disk full)."""
        return self._refused

    def open(self) -> None:
        """Open or create the database. Called once, on any thread, before the threads start."""
        conn = open_wal(
            self.path,
            synchronous="FULL",
            schema=SCHEMA,
            meta={"schema_version": SCHEMA_VERSION, "created_at": repr(self._clock())},
            migrate=migrate,
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
            rows = [
                (now, device, seq, text, time_key(text), bed_key(text))
                for device, seq, text in lines
            ]
            added = self._transaction(conn, INSERT, rows, refuse=len(lines))
            self._unwritten += added
            return added

    def pending(self, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` unwritten ``(id, line)``, oldest first (``historian`` thread),
        leaving out the points held back by :meth:`withhold`."""
        with self._lock:
            sql = "SELECT id, line FROM points WHERE written = 0"
            params: tuple[object, ...] = ()
            if self._withheld:  # points whose consent was withdrawn wait here for their purge
                held, params = _any_of(self._withheld)
                sql += f" AND NOT {held}"
            cur = self._connection().execute(f"{sql} ORDER BY id LIMIT ?", (*params, limit))
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

    @property
    def withholding(self) -> int:
        """Requests of :meth:`withhold` not purged to the end yet."""
        with self._lock:
            return len(self._withheld)

    def withhold(self, bed: str, since: float, until: float | None, tag: object = None) -> None:
        """Never send the unwritten points of ``bed`` appended from ``since`` until ``until``
        (None: until now): a patient's storage consent is withheld for that stay (``core``
        thread, after it committed what it had staged under the former consent).

        Takes effect at once: :meth:`pending` leaves these points out from now on; deleting them
        is :meth:`purge_step`'s, a window at a time, which reports ``tag`` with the count when
        done. By the ``bed`` column and the time of the append (``received_at``, the station's
        clock, which admissions and stays are dated by): a point belongs to the patient whose
        consent was in force when the core recorded it, and that is when it was appended. Points
        appended after this call are not covered (a consent given again stores again), nor are
        written ones (the historian has them). A batch the historian took before this call is not
        recalled: at most one batch in flight may still reach the server.

        Raises:
            sqlite3.Error: the spool cannot be read.
        """
        high = math.inf if until is None else until
        with self._lock:
            conn = self._connection()
            newest = conn.execute("SELECT max(id) FROM points").fetchone()[0]
            first = conn.execute("SELECT min(id) FROM points WHERE written = 0").fetchone()[0]
            last = int(newest or 0)
            start = last + 1 if first is None else int(first)
            self._withheld.append(_Withheld(tag, escape_tag(bed), since, high, last, start))

    def purge_step(self, window: int = PURGE_WINDOW) -> list[tuple[object, int]]:
        """Delete held-back points among the next ``window`` ids from where the purge is (one
        transaction: the historian waits a few ms at most); return the ``(tag, deleted)`` of
        each request purged to its end.
        Every request still open is served by the same pass, so many of them (the withheld stays
        a restart asks for again) cost one walk through the backlog, not one each.

        Raises:
            sqlite3.Error: the delete failed (the points stay held back; call again).
        """
        with self._lock:
            open_ = self._withheld
            if not open_:
                return []
            low = min(w.next_id for w in open_)
            high = low + window - 1
            taking = [w for w in open_ if w.next_id <= high and w.next_id <= w.last_id]
            if taking:
                held, params = _any_of(taking)
                sql = (
                    "DELETE FROM points WHERE id BETWEEN ? AND ? AND written = 0"
                    f" AND {held} RETURNING bed, received_at, id"
                )
                conn = self._connection()
                with transaction(conn):
                    deleted = conn.execute(sql, (low, high, *params)).fetchall()
                self._unwritten -= len(deleted)
                for bed, at, row_id in deleted:  # counted once, for the first asker
                    for w in taking:
                        if w.bed == bed and w.since <= at < w.until and row_id <= w.last_id:
                            w.purged += 1
                            break
            for w in open_:
                if w.next_id <= high:
                    w.next_id = high + 1
            done = [w for w in open_ if w.next_id > w.last_id]
            self._withheld = [w for w in open_ if w.next_id <= w.last_id]
        return [(w.tag, w.purged) for w in done]

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


def _any_of(withheld: Sequence[_Withheld]) -> tuple[str, tuple[object, ...]]:
    """The SQL condition "held back by any of ``withheld``", and its parameters."""
    params: tuple[object, ...] = ()
    for w in withheld:
        params += (w.bed, w.since, w.until, w.last_id)
    # ``IS``: a NULL ``bed`` (a row written before schema 3) is no match, never NULL.
    one = "(bed IS ? AND received_at >= ? AND received_at < ? AND id <= ?)"
    return "(" + " OR ".join([one] * len(withheld)) + ")", params


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
