"""The live audit file the writer appends to: whole lines, fsynced, rotated by UTC day and size.

Why a module of its own: this is the trail's only contact with the disk while it runs, and each
step has its own failure to survive. A write that fails half-way is trimmed off, so the retry does
not glue itself to a torn line; a last line torn by a crash is moved aside at open, so the next
record starts a line of its own; a rotation that fails leaves the records going on into the old
file. :class:`LiveFile` holds the descriptor and what decides the next rotation: the seq and UTC
day of the file's first record, and its size. It belongs to the writer's ``audit`` thread (and
to the thread that starts and closes the writer).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from station.config.private_file import fsync_folder, write_private
from station.domain.audit.chain import parse_record
from station.services.audit.trail_files import AUDIT_FILE, rotated_name

log = logging.getLogger(__name__)


class Line(NamedTuple):
    """One encoded record waiting to be written, with what decides the file it goes to."""

    seq: int
    day: str
    data: bytes


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is out (a module function so tests can fail it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _open_append(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o600)


class LiveFile:
    """``<directory>/audit.jsonl``, appended to; see the module docstring."""

    def __init__(self, directory: Path, rotate_bytes: int) -> None:
        self._dir = directory
        self.path = directory / AUDIT_FILE
        self._rotate_bytes = rotate_bytes
        self._fd: int | None = None
        self._first: tuple[int, str] | None = None  # (seq, UTC day) of the file's first record
        self._size = 0

    @property
    def is_open(self) -> bool:
        """Whether the file is open for appending (between :meth:`open` and :meth:`close`)."""
        return self._fd is not None

    def open(self, clock: Callable[[], float]) -> tuple[list[bytes], dict[str, Any] | None]:
        """Open the file for appending (creating it) and return its lines, with the details of
        a repair if its last line was torn (for the caller to audit), else None.

        Raises:
            OSError: the file cannot be read, opened or repaired; it is then not open.
        """
        data = self.path.read_bytes() if self.path.exists() else b""
        self._fd = _open_append(self.path)
        try:
            data, repaired = self._repair_tail(self._fd, data, clock)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise
        lines = io.BytesIO(data).readlines()  # split at b"\n" only, as verification does
        self._size = len(data)
        first = parse_record(lines[0]) if lines else None
        self._first = (first["seq"], first["ts"][:10]) if first else None
        return lines, repaired

    def _repair_tail(
        self, fd: int, data: bytes, clock: Callable[[], float]
    ) -> tuple[bytes, dict[str, Any] | None]:
        """End the file with a newline so the next record starts a line of its own."""
        if not data or data.endswith(b"\n"):
            return data, None
        cut = data.rfind(b"\n") + 1
        if parse_record(data[cut:]) is not None:  # whole record, only its newline lost
            _write_all(fd, b"\n")
            return data + b"\n", None
        torn = self._dir / f"{AUDIT_FILE}.torn-{int(clock() * 1000)}"
        write_private(torn, data[cut:])
        os.ftruncate(fd, cut)
        log.warning("audit trail ended mid-line; moved %s bytes to %s", len(data) - cut, torn)
        return data[:cut], {"bytes": len(data) - cut, "moved_to": torn.name}

    def fits(self, backlog: Sequence[Line]) -> int:
        """How many backlog lines still belong in the live file (same UTC day, under size)."""
        first, size = self._first, self._size
        count = 0
        for line in backlog:
            if first is not None and (line.day != first[1] or size >= self._rotate_bytes):
                break
            first = first or (line.seq, line.day)
            size += len(line.data)
            count += 1
        return count

    def append(self, lines: list[Line]) -> None:
        """Append ``lines`` and fsync them.

        Raises:
            OSError: they could not be written; the file is left as it was (as far as it can
                be trimmed: a failed trim is logged).
        """
        fd, size = self._fd, None
        assert fd is not None
        try:
            size = os.fstat(fd).st_size
            _write_all(fd, b"".join(line.data for line in lines))
            os.fsync(fd)
        except OSError:
            try:  # a half-written line would glue itself to the retry
                if size is not None:
                    os.ftruncate(fd, size)
            except OSError:
                log.exception("could not trim a partial audit write")
            raise
        if self._first is None:
            self._first = (lines[0].seq, lines[0].day)
        self._size = size + sum(len(line.data) for line in lines)

    def rotate(self) -> bool:
        """Move the full (or yesterday's) live file aside and open a new one; False (and the
        records go on into the old file) if that fails."""
        first, fd = self._first, self._fd
        if first is None or fd is None:
            return False
        target = self._dir / rotated_name(first[0])
        try:
            os.rename(self.path, target)
            fsync_folder(self._dir)
            self._fd = _open_append(self.path)
        except OSError as exc:
            log.error("could not rotate %s: %s; appending to it", self.path, exc)
            return False
        os.close(fd)
        self._first, self._size = None, 0
        log.info("audit trail rotated: %s", target.name)
        return True

    def close(self) -> None:
        """Close the descriptor (nothing to do if it is not open)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
