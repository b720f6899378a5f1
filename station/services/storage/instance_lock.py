"""One station per data folder: an exclusive ``flock`` on ``<data folder>/station.lock``.

Why a lock and not a pid file: two stations on one folder would both append to the audit trail,
the spool and the trend store and fork the trail's hash chain; a pid file outlives a crash and
then refuses a legitimate restart, while the kernel drops a ``flock`` the moment its process
dies, SIGKILL included. The file holds the holder's pid only so that the refusal can name it.

Commands that must not run beside the station (``station restore``) take the same lock;
``station doctor`` only asks :func:`holder` whether one is running.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "station.lock"


class InstanceLockedError(RuntimeError):
    """Another process holds the data folder; the message names its pid when known."""


class InstanceLock:
    """Held from :meth:`acquire` until :meth:`release` or the process ends."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, *, purpose: str = "station") -> None:
        """Take the lock without waiting.

        Raises:
            InstanceLockedError: another process holds it (its pid in the message).
            OSError: the folder or the file cannot be made.
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"process {pid}" if pid else "another process"
            raise InstanceLockedError(
                f"{self.path.parent} is in use by {who} (a station, or a restore); "
                f"one {purpose} per data folder: stop the other one first"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (closing the file releases the ``flock``)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None


def holder(data_dir: Path) -> int | None:
    """The pid of the process holding ``data_dir``'s lock, 0 if held by an unknown pid, or
    ``None`` when nobody holds it (or there is no lock file). Never takes the lock for longer
    than the probe."""
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0
