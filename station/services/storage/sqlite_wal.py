"""Opening the station's local SQLite stores (the spool, the trend store) one way.

Both are written by one connection per process in WAL mode, with transactions we begin and end
ourselves (``isolation_level=None``): ``BEGIN IMMEDIATE`` takes the write lock up front, so a
reader never turns into a writer halfway and deadlocks. They differ only in durability: the
spool fsyncs every commit (``FULL``: it holds what was already acknowledged to the broker), the
trend store does not (``NORMAL``: WAL still survives a process crash).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

JOURNAL_SIZE_LIMIT = 64 * 1024**2
"""Keeps the WAL file from staying large after a burst; checkpoints run every ~1000 pages."""


def open_wal(
    path: Path,
    *,
    synchronous: Literal["FULL", "NORMAL"],
    schema: str,
    meta: Mapping[str, str],
    migrate: Callable[[sqlite3.Connection], None] | None = None,
) -> sqlite3.Connection:
    """Open or create ``path`` in WAL mode, create ``schema`` and record ``meta`` (kept if
    already there) in its ``meta(key, value)`` table. Closes the connection on any failure.

    Upgrades: a file whose ``schema_version`` is newer than ``meta["schema_version"]`` is
    refused with :class:`StoreVersionError` (a downgrade must not write rows an older schema
    misreads). ``migrate``, if given, runs before ``schema``: it brings a file of an older
    schema up to date (a ``CREATE ... IF NOT EXISTS`` cannot change an existing table); then
    the file records this schema version. Tables added by a release are created by ``schema``
    itself, so an additive release needs no migration.

    The file is made owner-only before SQLite opens it (SQLite would create it with the
    process's umask, and every store holds patients' values, alarms or who did what); its
    ``-wal`` and ``-shm`` files take the same mode. A file an older run made is narrowed too.

    Raises:
        StoreVersionError: the file comes from a newer release.
        sqlite3.Error: the file cannot be opened or refuses WAL.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"{path}: WAL refused (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        found = _schema_version(conn)
        wanted = meta.get("schema_version")
        if found is not None and wanted is not None and _newer(found, wanted):
            raise StoreVersionError(
                f"{path} was written by a newer release of the station (schema {found}; this"
                f" release reads schema {wanted} and older): run the newer release, or restore"
                " a backup made by this one"
            )
        if migrate is not None:
            migrate(conn)
        conn.executescript(schema)
        conn.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", list(meta.items()))
        if wanted is not None:  # migrated forward (or additive tables created): now this schema
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (wanted,)
            )
    except BaseException:
        conn.close()
        raise
    return conn


class StoreVersionError(sqlite3.DatabaseError):
    """A store written by a newer release: refused, never opened and half-understood."""


def _schema_version(conn: sqlite3.Connection) -> str | None:
    """The ``schema_version`` a file records, or None for a new (or unversioned) file."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else str(row[0])


def _newer(found: str, wanted: str) -> bool:
    """Whether schema ``found`` is newer than ``wanted`` (both decimal; anything else that
    differs counts as newer: a version this release cannot read is one it must not write)."""
    if found.isdigit() and wanted.isdigit():
        return int(found) > int(wanted)
    return found != wanted


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
