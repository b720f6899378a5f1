"""The spool's file: its schema, the keys read from each line, and the migrations to schema 3.

Why a module of its own: what a row holds besides its line (``time_ms``, ``bed``) is read from the
line itself, so the same two functions serve every append and every migration of an older file;
keeping them with the schema keeps :mod:`~station.services.storage.spool` about the spool's
behaviour (durability, budget, draining, consent).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time

from station.services.storage.sqlite_wal import transaction

log = logging.getLogger(__name__)

SCHEMA_VERSION = "3"

# Schema 2 keys a point by (time_ms, line) instead of line alone (schema 1: ``line TEXT UNIQUE``).
# The same uniqueness (time_ms is read from the line itself), but the index now grows at its
# end, in device-time order, instead of at a random place per row: an append of 16 points
# rewrote ~16 index pages of a line-sorted index and now rewrites one or two. Measured with a
# 16-point group commit (synchronous=FULL): ~50 µs per point (60+ as the spool grows) → ~25.
# ``time_ms`` defaults to 0 so that an older station opening this file can still append.
# Schema 3 adds ``bed``: the line's ``bed`` tag as the line writes it, read at append like
# ``time_ms`` (NULL for a row already written before the migration), so that withdrawing a
# patient's storage consent finds that bed's unsent points by a column, never by matching text
# inside the lines (:meth:`Spool.withhold`). No index on it: a (bed, ...) index took an append of
# 128 points from ~8 to ~14 µs a point (a run per bed to extend), for a withdrawal that is rare;
# the column alone costs ~1.5 µs. A purge therefore walks the backlog by id, in windows.
POINTS = """
CREATE TABLE {name} (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    device TEXT,
    seq INTEGER,
    line TEXT NOT NULL,
    written INTEGER NOT NULL DEFAULT 0,
    time_ms INTEGER NOT NULL DEFAULT 0,
    bed TEXT
)
"""
SCHEMA = f"""
{POINTS.format(name="IF NOT EXISTS points").strip()};
CREATE UNIQUE INDEX IF NOT EXISTS points_key ON points(time_ms, line);
CREATE INDEX IF NOT EXISTS points_written ON points(written);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
INSERT = (
    "INSERT OR IGNORE INTO points(received_at, device, seq, line, time_ms, bed)"
    " VALUES (?, ?, ?, ?, ?, ?)"
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


# From the start of a line: the measurement and the tags before ``bed``, each character either
# plain or a backslash escape, then an unescaped ``,bed=`` and the value, as escaped, up to the
# next unescaped comma or space. Consuming escapes in pairs is what makes a ``,bed=`` inside an
# escaped device id or label impossible to take for the tag.
_BED_TAG = re.compile(r"(?:[^ ,\\]|\\.)*(?:,(?:[^ ,\\]|\\.)*)*?,bed=((?:[^ ,\\]|\\.)*)")


def bed_key(line: str) -> str:
    """The line's ``bed`` tag as the line writes it (escaped), for the ``bed`` column; "" when
    it has none. Compare it with :func:`~station.domain.lineprotocol.escape_tag` of a label:
    escaping is one-to-one, so equal escaped texts are equal labels, and nothing is unescaped
    per point.

    Parsed as line protocol, not searched for: the tag set ends at the first unescaped space and
    its tags begin at unescaped commas, so a device id or bed label holding ``,bed=`` (which
    ``escape_tag`` escapes) can never pass for the tag. About 1 µs a line (``bed`` is the first
    tag of both measurements).
    """
    found = _BED_TAG.match(line)
    return "" if found is None else found.group(1)


def _path(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def migrate(conn: sqlite3.Connection) -> None:
    """Bring an older spool to schema 3, in one transaction (all or nothing: a crash midway
    leaves the older schema, migrated again at the next open). The indexes follow from
    :data:`SCHEMA`.

    Schema 1 (``line TEXT UNIQUE``) is rebuilt: rows keep their ids, so the historian's order
    is unchanged. Schema 2 gains the ``bed`` column, filled for the unwritten rows only: written
    rows are never purged, and a spool of hours of written points is not rewritten for nothing.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(points)")}
    if not columns or {"time_ms", "bed"} <= columns:
        return  # a new file, or schema 3 already
    found = "2" if "time_ms" in columns else "1"
    log.warning(
        "spool %s has schema %s: migrating it to schema %s once",
        _path(conn),
        found,
        SCHEMA_VERSION,
    )
    started = time.monotonic()
    conn.create_function("time_key", 1, time_key, deterministic=True)
    conn.create_function("bed_key", 1, bed_key, deterministic=True)
    with transaction(conn):
        if found == "1":
            conn.execute("DROP TABLE IF EXISTS points_v3")
            conn.execute(POINTS.format(name="points_v3"))
            copied = conn.execute(
                "INSERT INTO points_v3 (id, received_at, device, seq, line, written, time_ms, bed)"
                " SELECT id, received_at, device, seq, line, written, time_key(line),"
                " CASE WHEN written = 0 THEN bed_key(line) END FROM points"
            ).rowcount
            conn.execute("DROP TABLE points")
            conn.execute("ALTER TABLE points_v3 RENAME TO points")
        else:
            conn.execute("ALTER TABLE points ADD COLUMN bed TEXT")
            copied = conn.execute(
                "UPDATE points SET bed = bed_key(line) WHERE written = 0"
            ).rowcount
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
