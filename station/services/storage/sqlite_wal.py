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

    ``migrate``, if given, runs before ``schema``: it brings a file of an older schema up to
    date (a ``CREATE ... IF NOT EXISTS`` cannot change an existing table).

    The file is made owner-only before SQLite opens it (SQLite would create it with the
    process's umask, and every store holds patients' values, alarms or who did what); its
    ``-wal`` and ``-shm`` files take the same mode. A file an older run made is narrowed too.

    Raises:
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
        if migrate is not None:
            migrate(conn)
        conn.executescript(schema)
        conn.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", list(meta.items()))
    except BaseException:
        conn.close()
        raise
    return conn


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
