"""Writing the station's small private files (users, settings, registry, patients) safely.

One way for all of them, because each is a record a ward depends on: a temporary file in the same
folder, written and fsynced, made owner-only before it holds anything, renamed over the target and
the folder fsynced. A crash or a full disk leaves either the old file or the new one, never half of
one, and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably, mode 0600.

    Raises:
        OSError: the folder cannot be written or the disk is full; ``path`` is then untouched.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # mkstemp's mode already; said for an odd FS
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_export(path: Path, data: bytes) -> None:
    """Write a file a user chose (an export, a report) as :func:`write_private` does, but into
    a folder that must exist: a path the user mistyped is an error to show, not a folder to make.

    Raises:
        OSError: no such folder, not writable, or the disk is full; ``path`` is then untouched.
    """
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(path.parent))
    write_private(path, data)


def fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a platform without directory fds skips it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s companion ``.lock`` file: a read-modify-write by the
    station and one by ``station devices`` in a shell at the same moment cannot lose either."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
