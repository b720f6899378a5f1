"""What a backup copies from a data folder, and how each kind is copied consistently while the
station runs.

Each kind of file is written its own way by the station, so each is read its own way:

* SQLite stores (spool, trends, alarms, quarantine, and any other file that starts with SQLite's
  magic): SQLite's online backup API, which copies one consistent snapshot of the database
  while the station's connection goes on committing (WAL: the reader never blocks the writer).
  The ``-wal`` and ``-shm`` files are the live state of that snapshot, never copied themselves.
* the audit folder: :mod:`station.services.audit.trail_copy` (whole lines, head first).
* the device registry ``devices.json`` and its seal ``devices.json.seal``: read together under
  the registry's file lock, as ``station devices`` and the station change them under that lock.
* everything else (``patients.enc``, still encrypted; ``users.json``, ``bed_limits.json``, the
  trust folder's public keys): replaced whole by a rename when written, so one read of an open
  file is one version of it.

Left out: the instance lock, lock files, the audit inbox (requests for the running station's
trail, not data), SQLite's side files, hidden staging files and anything that is not a regular
file or folder (a symbolic link is listed as skipped, never followed). No key is ever in a data
folder, so none is in a backup.
"""

from __future__ import annotations

import io
import os
import sqlite3
import stat
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from station.config.private_file import locked
from station.services.audit.inbox import INBOX_FILE
from station.services.audit.trail_copy import trail_copy
from station.services.storage.device_registry import REGISTRY_FILE
from station.services.storage.instance_lock import LOCK_FILE
from station.services.storage.registry_seal import SEAL_SUFFIX, seal_path

AUDIT_DIR = "audit"
SQLITE_MAGIC = b"SQLite format 3\x00"
SKIPPED_NAMES = frozenset({LOCK_FILE, INBOX_FILE})
SKIPPED_SUFFIXES = (".lock", "-wal", "-shm", "-journal")
KINDS = ("sqlite", "audit", "registry", "file")

Add = Callable[[str, str, int, BinaryIO, int], None]
"""``add(relative path, kind, mode, handle, size)``: one file into the archive."""


@dataclass
class CopyReport:
    """What the copy left out, and the last audit record it holds."""

    skipped: list[str] = field(default_factory=list)
    audit_last: tuple[int, str] | None = None


def skipped_name(name: str) -> bool:
    """Whether a file of this name is never part of a backup (nor put back by a restore)."""
    return (
        name in SKIPPED_NAMES
        or name.startswith(f"{INBOX_FILE}.")
        or name.startswith(".")
        or name.endswith(SKIPPED_SUFFIXES)
    )


def copy_data_folder(data_dir: Path, staging: Path, add: Add) -> CopyReport:
    """Hand every file of ``data_dir`` that belongs in a backup to ``add``, each consistent.

    Args:
        staging: a private folder for the SQLite snapshots (emptied again file by file).

    Raises:
        OSError: a file cannot be read (the backup is then not made).
        sqlite3.Error: a store cannot be copied.
    """
    report = CopyReport()
    _copy_folder(data_dir, "", staging, add, report)
    return report


def _copy_folder(folder: Path, prefix: str, staging: Path, add: Add, report: CopyReport) -> None:
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        relative = f"{prefix}{entry.name}"
        if skipped_name(entry.name):
            continue
        if entry.is_symlink():
            report.skipped.append(f"{relative} (symbolic link)")
        elif entry.is_dir(follow_symlinks=False):
            if not prefix and entry.name == AUDIT_DIR:
                report.audit_last = _copy_trail(Path(entry.path), add)
            else:
                _copy_folder(Path(entry.path), f"{relative}/", staging, add, report)
        elif entry.is_file(follow_symlinks=False):
            _copy_file(Path(entry.path), relative, staging, add)
        else:
            report.skipped.append(f"{relative} (not a regular file)")


def _copy_trail(audit_dir: Path, add: Add) -> tuple[int, str] | None:
    with trail_copy(audit_dir) as copy:
        for file in copy.files:
            add(f"{AUDIT_DIR}/{file.name}", "audit", file.mode, file.handle, file.size)
        return copy.last


def _copy_file(path: Path, relative: str, staging: Path, add: Add) -> None:
    with ExitStack() as stack:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        handle = stack.enter_context(os.fdopen(fd, "rb"))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return
        mode = st.st_mode & 0o777
        if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            handle.close()
            snapshot = _sqlite_snapshot(path, staging)
            stack.callback(snapshot.unlink, missing_ok=True)
            copy = stack.enter_context(snapshot.open("rb"))
            add(relative, "sqlite", mode, copy, snapshot.stat().st_size)
            return
        handle.seek(0)
        if relative == REGISTRY_FILE + SEAL_SUFFIX:
            return  # copied with the registry, below
        if relative == REGISTRY_FILE:
            handle.close()
            with locked(path):  # as the station and `station devices` write them
                data = path.read_bytes()
                try:
                    seal: bytes | None = seal_path(path).read_bytes()
                except FileNotFoundError:
                    seal = None
            add(relative, "registry", mode, io.BytesIO(data), len(data))
            if seal is not None:
                add(relative + SEAL_SUFFIX, "registry", mode, io.BytesIO(seal), len(seal))
            return
        add(relative, "file", mode, handle, st.st_size)


def _sqlite_snapshot(path: Path, staging: Path) -> Path:
    """One consistent snapshot of the database at ``path``, as a file in ``staging``."""
    target = staging / f"{path.name}.{os.getpid()}.snapshot"
    target.unlink(missing_ok=True)
    # Read-write but never created: a read-only connection to a WAL file of a stopped station
    # would leave its -wal and -shm behind; this one cleans them up when it is the last.
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            copy.close()
    finally:
        source.close()
    return target
