"""The HL7 outbox: every report queued on disk until the interface engine accepts it (``AA``).

Why SQLite in the data folder: a report queued here survives an engine outage, a station restart
and a SIGKILL. The reading cursors of the sources (the alarm and trend stores) live in the same
file and move in the same transaction as the reports they produced, so after a crash the station
neither loses a change nor queues one twice; each report's control id (MSH-10) is unique here and
derived from what it reports, so queuing it again is a no-op.

Rows (``messages``): ``queued`` until answered; ``acked`` (body dropped, the row kept
:data:`KEEP_ACKED_S` so a re-derived report is recognised as sent); ``rejected`` (the engine
answered ``AE``/``CR``, or ``AR``/``CE`` too often, or the report could not be rendered: kept
:data:`KEEP_REJECTED_S` for the admin); ``withheld`` (a storage consent withdrawn while the
report waited: never sent).
Reports name patients by pseudonym only; the file is still owner-only (0600 in the 0700 data
folder): beds, times and values are personal data too.

One thread uses it: the interface's ``hl7-out``. Written with ``synchronous=FULL``: a report
taken from a source must be on disk before the source's cursor moves past it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from station.domain.hl7.codes import AlarmEvent
from station.domain.hl7.content import Report, kind_of, to_json
from station.services.storage.sqlite_wal import open_wal, transaction

OUTBOX_FILE = "hl7_outbox.sqlite"
SCHEMA_VERSION = "1"
KEEP_ACKED_S = 7 * 86_400.0
KEEP_REJECTED_S = 30 * 86_400.0
OPEN_ALARM_KEEP_S = 7 * 86_400.0
"""An alarm whose clear never came (its station was killed) is no longer watched after this."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    control_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    bed TEXT NOT NULL,
    patient_id TEXT,
    created_at REAL NOT NULL,
    body TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    answered_at REAL,
    code TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages(state, kind, id);
CREATE TABLE IF NOT EXISTS cursors(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS open_alarms(
    alarm_id TEXT PRIMARY KEY, raised_at REAL NOT NULL, sent TEXT NOT NULL
);
"""
QUEUED, ACKED, REJECTED, WITHHELD = "queued", "acked", "rejected", "withheld"


@dataclass(frozen=True, slots=True)
class Queued:
    """The next report to send: its row, kind, pseudonym and stored JSON."""

    row: int
    control_id: str
    kind: str
    bed: str
    patient_id: str | None
    body: str
    attempts: int


class Outbox:
    """The queue and the sources' cursors in one SQLite file; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self.queued = 0
        """Reports waiting (kept in step with the file: read at open, moved by each change)."""

    def open(self) -> None:
        """Open or create the file (0600).

        Raises:
            sqlite3.Error, OSError: it cannot be opened or created (a full disk, a newer
                release's file).
        """
        conn = open_wal(
            self.path, synchronous="FULL", schema=_SCHEMA, meta={"schema_version": SCHEMA_VERSION}
        )
        self._conn = conn
        self.queued = self._count(QUEUED)

    def close(self) -> None:
        """Close the file. Idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError(f"{self.path}: outbox is not open")
        return self._conn

    def _count(self, state: str) -> int:
        row = self._db().execute("SELECT COUNT(*) FROM messages WHERE state = ?", (state,))
        return int(row.fetchone()[0])

    def count(self, state: str) -> int:
        """Rows in ``state`` (``rejected``, ``withheld``, ...)."""
        return self._count(state)

    # -- queuing ---------------------------------------------------------------------------

    def add(
        self,
        reports: Iterable[Report],
        cursors: Mapping[str, str] | None = None,
        alarms: Mapping[str, tuple[float, frozenset[AlarmEvent]] | None] | None = None,
    ) -> int:
        """Queue ``reports`` (those whose control id is already here are skipped), move the
        ``cursors`` and record which events each alarm has queued (``alarms``: alarm id → raise
        time and events; None once its clear is queued), all in one transaction. Returns how
        many reports were new.

        Raises:
            sqlite3.Error: nothing of it was kept.
        """
        conn = self._db()
        added = 0
        with transaction(conn):
            for report in reports:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO messages(control_id, kind, bed, patient_id,"
                    " created_at, body, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        report.control_id,
                        kind_of(report),
                        report.bed,
                        report.patient_id,
                        report.created_at,
                        to_json(report),
                        QUEUED,
                    ),
                )
                added += cursor.rowcount
            for name, value in (cursors or {}).items():
                conn.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (name, value))
            for alarm_id, state in (alarms or {}).items():
                if state is None:
                    conn.execute("DELETE FROM open_alarms WHERE alarm_id = ?", (alarm_id,))
                else:
                    sent = ",".join(sorted(e.value for e in state[1]))
                    conn.execute(
                        "INSERT OR REPLACE INTO open_alarms VALUES (?, ?, ?)",
                        (alarm_id, state[0], sent),
                    )
        self.queued += added
        return added

    def cursor(self, name: str) -> str | None:
        """A source's cursor, None before the first read."""
        row = self._db().execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def open_alarms(self) -> dict[str, tuple[float, frozenset[AlarmEvent]]]:
        """Alarms whose raise is queued and whose clear is not: id → raise time, events queued."""
        rows = self._db().execute("SELECT alarm_id, raised_at, sent FROM open_alarms")
        return {
            str(a): (float(r), frozenset(AlarmEvent(e) for e in str(s).split(",") if e))
            for a, r, s in rows
        }

    # -- sending ---------------------------------------------------------------------------

    def next(self, observations: bool = True) -> Queued | None:
        """The next report to send: alarms first (patient safety: a backlog of observations after
        an outage must not hold an alarm back), each kind in queue order; observations only when
        ``observations``."""
        kinds = ("R40", "R01") if observations else ("R40",)
        for kind in kinds:
            row = (
                self._db()
                .execute(
                    "SELECT id, control_id, kind, bed, patient_id, body, attempts FROM messages"
                    " WHERE state = ? AND kind = ? ORDER BY id LIMIT 1",
                    (QUEUED, kind),
                )
                .fetchone()
            )
            if row is not None:
                return Queued(
                    int(row[0]), str(row[1]), str(row[2]), str(row[3]),
                    None if row[4] is None else str(row[4]), str(row[5]), int(row[6]),
                )  # fmt: skip
        return None

    def attempted(self, row: int) -> None:
        """One more try of ``row`` (kept for the admin: how often a message had to be sent)."""
        conn = self._db()
        with transaction(conn):
            conn.execute("UPDATE messages SET attempts = attempts + 1 WHERE id = ?", (row,))

    def acked(self, row: int, at: float) -> None:
        """The engine accepted ``row``: it leaves the queue, its body is dropped."""
        self._answer(row, ACKED, at, "AA", "", keep_body=False)

    def rejected(self, row: int, at: float, code: str, detail: str) -> None:
        """``row`` is quarantined: the engine refused it (``AE``/``CR``, or ``AR``/``CE`` too
        often) or it cannot be rendered (``invalid``). ``detail`` may hold the engine's text: it
        stays in this file."""
        self._answer(row, REJECTED, at, code, detail, keep_body=True)

    def withhold_row(self, row: int, at: float) -> None:
        """``row`` is never sent (its patient's storage consent is withdrawn, or the patient is
        no longer on record): marked ``withheld``, its body dropped."""
        self._answer(row, WITHHELD, at, "", "", keep_body=False)

    def _answer(
        self, row: int, state: str, at: float, code: str, detail: str, keep_body: bool
    ) -> None:
        conn = self._db()
        with transaction(conn):
            changed = conn.execute(
                "UPDATE messages SET state = ?, answered_at = ?, code = ?, detail = ?"
                + ("" if keep_body else ", body = NULL")
                + " WHERE id = ? AND state = ?",
                (state, at, code, detail, row, QUEUED),
            ).rowcount
        self.queued -= changed

    def withhold(self, patients: Iterable[str], at: float) -> dict[str, int]:
        """Observations of ``patients`` still queued are never sent (storage consent withdrawn):
        marked ``withheld``, their bodies dropped. Returns pseudonym → how many."""
        conn = self._db()
        ids = sorted(set(patients))
        out: dict[str, int] = {}
        with transaction(conn):
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                where = (
                    f"state = '{QUEUED}' AND kind = 'R01'"
                    f" AND patient_id IN ({','.join('?' * len(chunk))})"
                )
                for patient, n in conn.execute(
                    f"SELECT patient_id, COUNT(*) FROM messages WHERE {where} GROUP BY patient_id",
                    chunk,
                ):
                    out[str(patient)] = int(n)
                conn.execute(
                    f"UPDATE messages SET state = ?, answered_at = ?, body = NULL WHERE {where}",
                    (WITHHELD, at, *chunk),
                )
        self.queued -= sum(out.values())
        return out

    def prune(self, now: float) -> int:
        """Forget answered rows past their keep time and alarms watched too long; returns rows
        removed."""
        conn = self._db()
        with transaction(conn):
            n = conn.execute(
                "DELETE FROM messages WHERE (state = ? AND answered_at < ?)"
                " OR (state IN (?, ?) AND answered_at < ?)",
                (ACKED, now - KEEP_ACKED_S, REJECTED, WITHHELD, now - KEEP_REJECTED_S),
            ).rowcount
            conn.execute("DELETE FROM open_alarms WHERE raised_at < ?", (now - OPEN_ALARM_KEEP_S,))
        return int(n)
