"""Putting a backup back into a data folder, and saying in the trail what the restore lost.

The order makes every refusal harmless: the backup is checked whole (signature, every hash)
before the target is touched; the target's instance lock is taken, so no station runs on it
while it changes (and a station that runs refuses the restore); a folder with data is only
replaced when asked, and then moved aside beside it, never deleted; the files are written into a
private staging folder inside the target and moved in by renames, so a failure half-way moves
everything back.

Then the restore records itself in the restored trail as ``station.restore`` (actor
``shell:<user>``), with the backup's time and audit head, and what it replaced: the head of the
trail that was in the target, and the station's last published checkpoint (the keyring's
anchor). The chain signs that record with the station key
(:mod:`station.services.audit.restore_marks`), and the checkpoint that closes the restore's run is
kept as the new anchor. So the station's start check knows this folder from one put back by hand:
the broker's retained checkpoint from before the restore is accounted for by the signed restore,
while a copy put back over the restored folder later still lacks a checkpoint made after it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config import credentials
from station.config.private_file import fsync_folder
from station.domain.audit.chain import last_chain_state
from station.domain.audit.keyed import CHECKPOINT_ACTION, Published
from station.domain.vouchers.keys import key_id
from station.services.audit.inbox import INBOX_FILE, SHELL_ROLE
from station.services.audit.keys import ANCHOR_KIND, read_anchor
from station.services.audit.restore_marks import RESTORE_ACTION
from station.services.audit.shell_record import AUDIT_DIR, shell_actor, shell_trail
from station.services.audit.trail import read_trail
from station.services.audit.trail_files import read_head
from station.services.backup.archive import Manifest, extract_data, read_manifest
from station.services.storage.instance_lock import LOCK_FILE, InstanceLock

KEPT_IN_TARGET = frozenset({LOCK_FILE, INBOX_FILE})
"""What may be in a target that counts as empty: the lock the restore holds, and the inbox of
records (a key import's) that the restore's trail takes in."""


class RestoreError(RuntimeError):
    """The restore was refused or failed; the message says why and what to do."""


@dataclass(frozen=True)
class Restored:
    """What a restore did: files put back, where the old folder went, and its record's
    details; ``pinned_anchor`` is the new anchor's JSON when the environment pins
    ``STATION_AUDIT_ANCHOR`` (the admin must update it), else None."""

    target: Path
    files: int
    moved_aside: Path | None
    details: dict[str, Any]
    pinned_anchor: str | None


def _point(seq_hash: tuple[int, str] | None) -> dict[str, Any] | None:
    return {"seq": seq_hash[0], "hash": seq_hash[1]} if seq_hash else None


def _trail_end(data_dir: Path) -> tuple[int, str] | None:
    """The end of the trail in ``data_dir`` (its head, or its last record), None without one."""
    audit = data_dir / AUDIT_DIR
    if not any(audit.glob("*.jsonl")):
        return None
    trail = read_trail(audit, live=True)
    seq, digest = last_chain_state(trail.lines)
    head = read_head(audit)
    if head is not None and head[0] > seq:
        return head
    return (seq, digest) if seq else head


def _lost(backup_last: tuple[int, str] | None, later: list[int], since: str) -> str:
    first = (backup_last[0] if backup_last else 0) + 1
    last = max(later, default=0)
    if last >= first:
        return f"records {first}..{last} and the data written after {since}"
    return f"the data written after {since}, and any records from {first} on"


def restore_backup(
    archive: Path,
    target: Path,
    *,
    station: str,
    key: Ed25519PrivateKey,
    replace: bool,
    now: float,
) -> Restored:
    """Restore ``archive`` into ``target``; see the module docstring.

    Raises:
        BackupError: the backup fails its checks (nothing is touched).
        InstanceLockedError: a station (or another restore) runs on ``target``.
        RestoreError: another station's backup or key, or a target with data and no
            ``replace``.
        OSError: a file could not be moved or written (what was moved is moved back).
    """
    manifest = read_manifest(archive, key.public_key())
    if manifest.station != station:
        raise RestoreError(
            f"the backup is station {manifest.station!r}'s, not {station!r}'s: its trail and"
            " patient table belong to that station"
        )
    ours = key_id(key.public_key())
    if manifest.doc["audit"].get("key_id") != ours:
        raise RestoreError(f"the backup was made with another audit key than this one ({ours})")
    lock = InstanceLock(target)
    lock.acquire(purpose="restore")
    try:
        return _restore_locked(archive, manifest, target, station, key, replace=replace, now=now)
    finally:
        lock.release()


def _restore_locked(
    archive: Path,
    manifest: Manifest,
    target: Path,
    station: str,
    key: Ed25519PrivateKey,
    *,
    replace: bool,
    now: float,
) -> Restored:
    present = sorted(p.name for p in target.iterdir() if p.name not in KEPT_IN_TARGET)
    if present and not replace:
        raise RestoreError(
            f"{target} is not empty ({', '.join(present[:4])}{' …' if len(present) > 4 else ''});"
            " restore into an empty folder (--data-dir), or pass --replace to move it aside"
        )
    before = _trail_end(target) if present else None
    anchor = read_anchor(station)
    if anchor is not None and not anchor.verifies(key.public_key()):
        anchor = None
    staging = target / f".restore-{uuid.uuid4().hex}"
    staging.mkdir(mode=0o700)
    aside: Path | None = None
    try:
        files = sum(1 for _ in extract_data(archive, manifest, staging))
        if present:
            stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = target.with_name(f"{target.name}.before-restore-{stamp}")
            aside.mkdir(mode=0o700)
        _swap(target, staging, aside, present)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # only our own staging folder
    later = [point[0] for point in (before, (anchor.seq, anchor.hash) if anchor else None) if point]
    details: dict[str, Any] = {
        "backup": archive.name,
        "backup_sha256": manifest.sha256,
        "backup_time": manifest.created,
        "backup_version": manifest.doc["version"],
        "backup_head": _point(manifest.last),
        "replaced": {
            "head": _point(before),
            "anchor": (
                {"seq": anchor.seq, "hash": anchor.hash, "ts": anchor.ts} if anchor else None
            ),
        },
        "lost": _lost(manifest.last, later, manifest.created),
        "moved_aside": str(aside) if aside is not None else None,
        "files": files,
    }
    with shell_trail(target, station, key, check_anchor=False) as writer:
        writer.record(
            RESTORE_ACTION,
            actor=shell_actor(),
            role=SHELL_ROLE,
            target=str(target),
            details={**details, "via": "trail", "pid": os.getpid(), "uid": os.getuid()},
        )
    pinned = None
    if credentials.from_environment(ANCHOR_KIND):
        last = _last_checkpoint(target, station)
        pinned = last.to_json() if last is not None else None
    return Restored(target, files, aside, details, pinned)


def _swap(target: Path, staging: Path, aside: Path | None, present: list[str]) -> None:
    """Move ``present`` into ``aside`` and the staged files into ``target``; on failure, move
    everything back where it was."""
    moved_out: list[str] = []
    moved_in: list[str] = []
    out = aside if aside is not None else target  # nothing present: nothing moves out
    try:
        for name in present:
            os.rename(target / name, out / name)
            moved_out.append(name)
        for path in sorted(staging.iterdir()):
            os.rename(path, target / path.name)
            moved_in.append(path.name)
    except OSError:
        for name in reversed(moved_in):
            os.rename(target / name, staging / name)
        for name in reversed(moved_out):
            os.rename(out / name, target / name)
        raise
    fsync_folder(target)
    if aside is not None:
        fsync_folder(aside)


def _last_checkpoint(target: Path, station: str) -> Published | None:
    records = read_trail(target / AUDIT_DIR).records()
    last = next((r for r in reversed(records) if r["action"] == CHECKPOINT_ACTION), None)
    return Published(station, last) if last is not None else None
