"""Files a command hands to an admin (key files, backups): owner-only, whole, never a replacement.

Why a module of its own: :func:`station.config.private_file.write_private` replaces its target,
which is right for the station's own records and wrong here. A key file or a backup written over
an existing one can destroy the only copy of a key. So the name is first *reserved*
(``O_CREAT | O_EXCL``: it fails if anything, a symbolic link included, is there), the content is
written and fsynced under a private staging name beside it, and then renamed over the empty
reservation. A reader never sees half a file under the final name, and a crash leaves at most the
empty reservation (which a restore refuses as not a backup) and no staging file, with luck.
Plain renames only, so a USB stick's FAT file system, without links or modes, works too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from station.config.private_file import fsync_folder


@contextmanager
def new_private_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write that becomes ``path`` (mode 0600) when the block ends normally.

    Raises:
        FileExistsError: ``path`` exists (nothing is touched then).
        FileNotFoundError: its folder does not exist (a mistyped path is not a folder to make).
        OSError: it cannot be written; the reservation and staging file are removed.
    """
    if not path.parent.is_dir():
        raise FileNotFoundError(2, "no such folder", str(path.parent))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    reserved = os.open(path, flags, 0o600)
    reservation = os.fstat(reserved)
    os.close(reserved)
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    done = False
    try:
        fd = os.open(staged, flags, 0o600)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staged, path)
        done = True
    finally:
        staged.unlink(missing_ok=True)
        if not done:
            _drop_reservation(path, reservation)
    fsync_folder(path.parent)


def _drop_reservation(path: Path, reservation: os.stat_result) -> None:
    """Remove the empty file this module reserved, and nothing else by that name."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return
    if (st.st_ino, st.st_dev) == (reservation.st_ino, reservation.st_dev) and st.st_size == 0:
        path.unlink(missing_ok=True)


def write_new_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new owner-only file at ``path``; see :func:`new_private_file`."""
    with new_private_file(path) as handle:
        handle.write(data)
