"""``station backup --out FILE`` and ``station restore FILE [--data-dir DIR] [--replace]``.

The backup is one tar file (0600) of the data folder, consistent while the station runs, with a
manifest signed by the station key (:mod:`station.services.backup.archive`); it holds no key. It
runs beside a running station (the stores are copied with SQLite's online backup, the trail up to
a record boundary), or, with none running, holds the folder's instance lock meanwhile. Audited as
``station.backup`` (:mod:`station.services.audit.shell_record`: into the trail, or through the
running station's inbox).

The restore checks the whole backup first, refuses a folder a station runs on and a folder with
data unless ``--replace`` (which moves it aside, beside it), and records itself in the restored
trail as ``station.restore`` (:mod:`station.services.backup.restore`). Needs the station's audit
key (``station keys import`` first on a new machine). Exit 2 for every refusal.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station import __version__
from station.config.settings import load, user_config_path
from station.services.audit.keys import AuditKeyError, existing_key
from station.services.audit.shell_record import (
    ShellAuditError,
    foreign_owner,
    record_from_shell,
)
from station.services.backup.archive import BackupError, write_backup
from station.services.backup.restore import RestoreError, restore_backup
from station.services.storage.instance_lock import InstanceLock, InstanceLockedError


def add_backup_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backup`` and ``restore`` to the top-level parser."""
    backup = sub.add_parser(
        "backup", help="a consistent copy of the data folder, while the station runs"
    )
    backup.add_argument("--out", type=Path, required=True, help="a new file (tar, 0600)")
    restore = sub.add_parser("restore", help="put a backup back into a data folder")
    restore.add_argument("file", type=Path, help="a file written by `station backup`")
    restore.add_argument(
        "--data-dir", type=Path, help="restore here (default: the configured data folder)"
    )
    restore.add_argument(
        "--replace",
        action="store_true",
        help="the folder holds data: move it aside (never deleted) and restore in its place",
    )


def _fail(command: str, text: str) -> int:
    print(f"station {command}: {text}", file=sys.stderr)
    return 2


def _key(station: str) -> Ed25519PrivateKey | str:
    """The station's audit key, or the sentence saying why there is none."""
    try:
        key = existing_key(station)
    except AuditKeyError as exc:
        return str(exc)
    if key is None:
        return (
            f"station {station} has no audit signing key in the environment or the keyring"
            " (on a new machine: `station keys import` first)"
        )
    return key


def run_backup(args: argparse.Namespace) -> int:
    """Run ``station backup``; returns the exit code."""
    settings = load(args.config)
    station, data_dir = settings.station.id, settings.station.data_path
    foreign = foreign_owner(data_dir)
    if foreign is not None:
        return _fail("backup", foreign)
    key = _key(station)
    if isinstance(key, str):
        return _fail("backup", f"{key}; the backup's manifest is signed with it")
    out: Path = args.out
    config = args.config or user_config_path()
    lock = InstanceLock(data_dir)
    try:
        lock.acquire(purpose="backup")
        running = False
    except InstanceLockedError:
        running = True  # copied online, beside the station
    try:
        done = write_backup(
            data_dir,
            out,
            station=station,
            key=key,
            version=__version__,
            now=time.time(),
            settings_file=config if config.is_file() else None,
        )
        last = done.audit_last
        details = {
            "file": out.name,
            "sha256": done.sha256,
            "files": done.files,
            "bytes": done.size,
            "audit_head": {"seq": last[0], "hash": last[1]} if last else None,
            "created": done.created,
            "station_running": running,
        }
        print(
            f"wrote {out}: {done.files} files, {done.size} bytes, audit head seq"
            f" {last[0] if last else '-'}; sha256 {done.sha256}"
        )
        recorded = record_from_shell(
            data_dir,
            station,
            "station.backup",
            target=str(out.resolve()),
            details=details,
            key=key,
            lock_held=lock.held,
        )
    except FileExistsError:
        return _fail("backup", f"{out} exists: a backup is never written over another")
    except (BackupError, OSError, sqlite3.Error) as exc:
        return _fail("backup", f"the backup was not made: {exc}")
    except ShellAuditError as exc:
        print(f"station backup: made, but not audited: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()
    print(f"audit: {recorded.note}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """Run ``station restore``; returns the exit code."""
    settings = load(args.config)
    station = settings.station.id
    target: Path = (args.data_dir or settings.station.data_path).expanduser()
    foreign = foreign_owner(target)
    if foreign is not None:
        return _fail("restore", foreign)
    key = _key(station)
    if isinstance(key, str):
        return _fail("restore", key)
    if not args.file.is_file():
        return _fail("restore", f"no backup file at {args.file}")
    try:
        done = restore_backup(
            args.file, target, station=station, key=key, replace=args.replace, now=time.time()
        )
    except InstanceLockedError as exc:
        return _fail("restore", f"{exc}: a station runs on {target}; stop it first")
    except (BackupError, RestoreError) as exc:
        return _fail("restore", f"refused: {exc}")
    except (OSError, ShellAuditError) as exc:
        return _fail("restore", f"failed: {exc}")
    details = done.details
    print(f"restored {done.files} files of the backup of {details['backup_time']} into {target}")
    if done.moved_aside is not None:
        print(f"the folder's previous content is in {done.moved_aside}")
    print(f"lost by this restore: {details['lost']} (recorded as station.restore)")
    if done.pinned_anchor is not None:
        print(
            "STATION_AUDIT_ANCHOR is set in this environment and names a checkpoint this restore"
            " replaced; set it to the new last checkpoint:\n" + done.pinned_anchor
        )
    return 0
