"""A consistent copy of an audit folder while its writer may be appending and rotating.

Why a module of its own: the backup must copy a trail that verifies, taken from a station that
keeps writing, and only this package knows how the writer moves its files
(:mod:`station.services.audit.live_file`). Three facts make a copy consistent without stopping
the writer:

* rotated files (``audit-<seq>.jsonl``) never change once renamed;
* the live file only grows, by whole lines, so a copy cut after its last newline is a prefix
  of the chain; a batch being written at that moment is simply not in it;
* the head (``audit.head``) is written after the lines it names are fsynced, so a head read
  *before* the files never names a record the copy lacks.

The one race is a rotation between opening the live file and listing the rotated ones: the live
file opened would then be listed again as rotated (same inode) and the new live file missed. That
is detected and the copy taken again. Files are held open, so a rotation after that point only
renames what is already being read.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from station.domain.audit.chain import parse_record
from station.domain.audit.head import parse_head
from station.services.audit.trail_files import AUDIT_FILE, HEAD_FILE, PUBLIC_KEY_FILE

ATTEMPTS = 5
_TAIL_BYTES = 1024 * 1024  # a record is far smaller: the last line of a rotated file is in it


class TrailCopyError(OSError):
    """No consistent copy could be taken (the trail kept rotating, or is unreadable)."""


@dataclass(frozen=True)
class TrailFile:
    """One file of the copy: its name in the audit folder, a handle at its start, its size."""

    name: str
    handle: BinaryIO
    size: int
    mode: int


@dataclass(frozen=True)
class TrailCopy:
    """The copy's files, and the last record it holds (``(seq, hash)``, None if empty)."""

    files: list[TrailFile]
    last: tuple[int, str] | None


def _open(path: Path, stack: ExitStack) -> BinaryIO | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    return stack.enter_context(os.fdopen(fd, "rb"))


def _last_record(data: bytes) -> tuple[int, str] | None:
    for line in reversed(data.splitlines()):
        record = parse_record(line)
        if record is not None:
            return record["seq"], record["hash"]
    return None


def _tail(handle: BinaryIO, size: int) -> bytes:
    handle.seek(max(0, size - _TAIL_BYTES))
    data = handle.read()
    handle.seek(0)
    return data


@contextmanager
def trail_copy(directory: Path) -> Iterator[TrailCopy]:
    """A consistent copy of the audit folder ``directory`` (see the module docstring): the
    head, the rotated files, the live file up to its last whole line, the public key and any
    torn tails set aside. The handles are open for the ``with`` block.

    Raises:
        TrailCopyError: no consistent copy in :data:`ATTEMPTS` tries.
        OSError: a file cannot be read.
    """
    for _attempt in range(ATTEMPTS):
        with ExitStack() as stack:
            copy = _attempt_copy(directory, stack)
            if copy is not None:
                yield copy
                return
    raise TrailCopyError(f"the audit trail in {directory} kept changing; try again")


def _attempt_copy(directory: Path, stack: ExitStack) -> TrailCopy | None:
    head_file = directory / HEAD_FILE
    head = head_file.read_bytes() if head_file.is_file() else None
    live = _open(directory / AUDIT_FILE, stack)
    live_inode = os.fstat(live.fileno()).st_ino if live is not None else None
    files: list[TrailFile] = []
    last: tuple[int, str] | None = None
    for path in sorted(directory.glob("audit-*.jsonl")):
        handle = _open(path, stack)
        if handle is None:
            return None  # gone between the listing and the open: take the copy again
        st = os.fstat(handle.fileno())
        if st.st_ino == live_inode:
            return None  # rotated after the live file was opened: the new one is missed
        files.append(TrailFile(path.name, handle, st.st_size, st.st_mode & 0o777))
        last = _last_record(_tail(handle, st.st_size)) or last
    if live is not None:
        data = live.read()
        data = data[: data.rfind(b"\n") + 1]  # whole lines only: a batch in writing is left out
        mode = os.fstat(live.fileno()).st_mode & 0o777
        files.append(TrailFile(AUDIT_FILE, io.BytesIO(data), len(data), mode))
        last = _last_record(data) or last
    if head is not None:
        if not _head_within(head, last):
            return None  # cannot happen with the order above, unless the folder was swapped
        files.append(TrailFile(HEAD_FILE, io.BytesIO(head), len(head), 0o600))
    for path in [directory / PUBLIC_KEY_FILE, *sorted(directory.glob(f"{AUDIT_FILE}.torn-*"))]:
        handle = _open(path, stack)
        if handle is not None:
            st = os.fstat(handle.fileno())
            files.append(TrailFile(path.name, handle, st.st_size, st.st_mode & 0o777))
    return TrailCopy(files, last)


def _head_within(head: bytes, last: tuple[int, str] | None) -> bool:
    """Whether the copy reaches the record the head names (a malformed head, nested or huge
    as it may be: yes, it is copied as it is and the verifiers judge it)."""
    parsed = parse_head(head)
    if isinstance(parsed, str):
        return True
    return last is not None and last[0] >= parsed.seq
