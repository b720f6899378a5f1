"""The ``disk``, ``data folder`` and ``instance`` checks: where the station keeps patients' data.

Nothing is created or changed: a data folder that does not exist yet is judged by its nearest
existing parent (the station makes it, owner-only, at first start), and the instance lock is only
probed (:func:`~station.services.storage.instance_lock.holder`), never taken.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from station.cli.doctor.context import Context
from station.cli.doctor.report import Finding, fail, ok, warn
from station.services.storage.instance_lock import holder

MIB = 1024 * 1024
MARGIN_BYTES = 512 * MIB
"""Room kept beside the spool for the trend store (72 h per bed), the alarm history, the
quarantine and the audit trail."""
SPOOL_FILES = ("spool.sqlite", "spool.sqlite-wal", "spool.sqlite-shm")
SHOWN_FILES = 3


def _existing(path: Path) -> Path:
    """``path`` or its nearest parent that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mib(size: int) -> str:
    return f"{size / MIB:,.0f} MiB"


def check_disk(ctx: Context) -> Finding:
    """Free space on the data folder's file system against the spool's budget plus a margin.
    The spool already on disk counts as room it may use again."""
    s = ctx.s
    folder = s.station.data_path
    usage = os.statvfs(_existing(folder))
    free = usage.f_bavail * usage.f_frsize
    if not s.influx.enabled:
        if free < MARGIN_BYTES:
            return warn(
                f"only {_mib(free)} free for the trends, alarm history and audit trail (the "
                f"historian is off: no spool): free space on {folder}'s file system"
            )
        return ok(f"{_mib(free)} free (the historian is off: no spool to budget)")
    spool = sum((folder / name).stat().st_size for name in SPOOL_FILES if (folder / name).exists())
    room, budget = free + spool, s.spool.budget_bytes
    if room < budget:
        return fail(
            f"only {_mib(room)} free for a spool budget of {_mib(budget)}: lower [spool] "
            f"budget_mb or free space on {folder}'s file system"
        )
    if room < budget + MARGIN_BYTES:
        return warn(
            f"{_mib(room)} free: the spool budget of {_mib(budget)} fits, but leaves less than "
            f"{_mib(MARGIN_BYTES)} for the trends, alarm history and audit trail: lower [spool] "
            "budget_mb or free space"
        )
    return ok(f"{_mib(room)} free for a spool budget of {_mib(budget)} and the local stores")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_data_folder(ctx: Context) -> Finding:
    """Exists (or can be made), owned by the user running this, owner-only, writable."""
    folder = ctx.s.station.data_path
    me = _user(os.geteuid())
    if not folder.exists():
        parent = _existing(folder)
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return ok(
                f"{folder} does not exist yet: the station makes it (owner-only, 0700) at first "
                f"start; {parent} is writable by {me}"
            )
        return fail(
            f"{folder} does not exist and {parent} is not writable by {me}: make it as the "
            f"station's user (mkdir -p -m 700 {folder}) or set [station] data_dir"
        )
    info = folder.stat()
    if not stat.S_ISDIR(info.st_mode):
        return fail(f"{folder} is not a folder: set [station] data_dir to a folder")
    if info.st_uid != os.geteuid():
        return fail(
            f"{folder} is owned by {_user(info.st_uid)}, not by {me} who runs this: run the "
            f"doctor as the station's user, or chown -R {me} {folder}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return fail(f"{folder} is not writable by {me}: chmod 700 {folder}")
    return _permissions(folder, stat.S_IMODE(info.st_mode))


def _permissions(folder: Path, mode: int) -> Finding:
    """Owner-only: patients' data. Files that others can read fail; a folder others can only
    enter or list warns (the station narrows it to 0700 at start)."""
    exposed = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and p.stat().st_mode & 0o077
    )
    if exposed or mode & 0o022:
        shown = ", ".join(exposed[:SHOWN_FILES]) + (" …" if len(exposed) > SHOWN_FILES else "")
        what = f"files others can read in it: {shown}" if exposed else "others can write in it"
        return fail(
            f"{folder} (mode {mode:04o}) holds patients' data and {what}: chmod -R go-rwx {folder}"
        )
    if mode & 0o077:
        return warn(
            f"{folder} is mode {mode:04o}: others can see which files it holds; chmod 700 "
            f"{folder} (the station also narrows it at start)"
        )
    return ok(f"{folder}: owned by {_user(os.geteuid())}, mode 0700, writable")


def check_instance(ctx: Context) -> Finding:
    """Whether a station holds the data folder's lock; the doctor never takes it."""
    folder = ctx.s.station.data_path
    pid = holder(folder)
    if pid is None:
        return ok(f"no station running on {folder}")
    who = f"a station (pid {pid})" if pid else "a station or a restore (pid unknown)"
    return ok(f"{who} is running on this data folder")
