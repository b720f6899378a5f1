"""The audit trail's files in its folder: their names, and the head that marks the durable end.

Why a module of its own: the writer writes these files and the verifiers (``station audit
verify``, the export bundle, the auditor view, the station's start check) read them, so the
names, the order of rotated files and the head's format are stated once, here, for both.

The head (``audit.head``) holds the last ``seq`` and ``hash`` the writer made durable, the epoch
it was in and, with the station key, the key's signature over the three
(:mod:`station.domain.audit.head`); verification compares the trail's end with it and so finds
records cut off the end, and a head rewritten without the key vouches for nothing. It is
replaced atomically, so a crash leaves the old head or the new, never half of one.

Everything read here may have been written by someone else: every read is bounded and returns
what is wrong instead of raising (:mod:`station.domain.audit.safe_json`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.private_file import write_private
from station.domain.audit.chain import parse_record
from station.domain.audit.head import Head, parse_head, signed_head
from station.domain.audit.keyed import CHECKPOINT_ACTION
from station.domain.audit.safe_json import MAX_SMALL_BYTES

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
PUBLIC_KEY_FILE = "station-audit.pub"
_ROTATED = re.compile(r"audit-(\d{1,20})\.jsonl")


def rotated_name(first_seq: int) -> str:
    """The name a full live file takes: sorted by name, the files are the chain in order (and
    the live ``audit.jsonl`` sorts after every ``audit-…``)."""
    return f"audit-{first_seq:012d}.jsonl"


def rotated_files(directory: Path) -> list[tuple[int, Path]]:
    """``(first seq, path)`` of every rotated file in ``directory``, oldest first (by name, as
    the verifiers order them)."""
    found = []
    for path in sorted(directory.glob("audit-*.jsonl")):
        match = _ROTATED.fullmatch(path.name)
        if match is not None and path.is_file():
            found.append((int(match.group(1)), path))
    return found


def read_lines(path: Path) -> list[bytes]:
    """A trail file's lines, split at ``\\n`` only, newline kept."""
    return path.read_bytes().splitlines(keepends=True)


def newest_rotated(directory: Path) -> list[bytes]:
    """The lines of the newest rotated file in ``directory`` (none: an empty list)."""
    rotated = rotated_files(directory)
    return read_lines(rotated[-1][1]) if rotated else []


def load_head(directory: Path) -> Head | str | None:
    """The head in ``directory`` as read: a :class:`Head`, why it could not be read, or None
    when there is none. Never raises."""
    try:  # never blocks: a FIFO planted as the head is no regular file
        fd = os.open(directory / HEAD_FILE, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"audit.head cannot be read ({exc.strerror or exc})"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "audit.head is not a regular file"
        data = os.read(fd, MAX_SMALL_BYTES + 1)
    except OSError as exc:
        return f"audit.head cannot be read ({exc.strerror or exc})"
    finally:
        os.close(fd)
    return parse_head(data)


def read_head(directory: Path) -> tuple[int, str] | None:
    """The ``(seq, hash)`` the writer last made durable in ``directory``, or None if unknown
    (whether it is signed is :func:`load_head`'s to tell)."""
    head = load_head(directory)
    if isinstance(head, str):
        log.warning("ignoring the audit head in %s: %s", directory, head)
        return None
    return head.point if head is not None else None


def head_epoch(directory: Path) -> int:
    """The epoch the head in ``directory`` names; 0 if it names none."""
    head = load_head(directory)
    return head.epoch if isinstance(head, Head) else 0


def write_head(
    directory: Path, seq: int, digest: str, epoch: int, key: Ed25519PrivateKey | None = None
) -> None:
    """Replace the head in ``directory``, atomically; signed when ``key`` (the station key) is
    given.

    Raises:
        OSError: it could not be written; the old head is then untouched.
    """
    head = signed_head(seq, digest, epoch, key)
    write_private(directory / HEAD_FILE, json.dumps(head.to_doc()).encode())


def _first_seq(lines: Sequence[bytes]) -> int | None:
    first = parse_record(lines[0]) if lines else None
    return first["seq"] if first is not None else None


def opening_checkpoint(lines: Sequence[bytes]) -> list[bytes]:
    """The last checkpoint line among ``lines`` (it opened the epoch in force after them)."""
    for line in reversed(lines):
        if CHECKPOINT_ACTION.encode("ascii") not in line:
            continue
        record = parse_record(line)
        if record is not None and record["action"] == CHECKPOINT_ACTION:
            return [line]
    return []


def hash_at(directory: Path, seq: int) -> str | None:
    """The hash of the record at ``seq`` in the rotated file that should hold it, or None
    (no such file, no such record). Reads one file."""
    holder = [path for first, path in rotated_files(directory) if first <= seq]
    if not holder:
        return None
    for line in read_lines(holder[-1]):
        record = parse_record(line)
        if record is not None and record["seq"] == seq:
            return str(record["hash"])
    return None


@dataclass(frozen=True)
class Window:
    """The part of a trail the station checks at start: from the rotated file that holds the
    oldest checkpoint asked for (within :data:`WINDOW_FILES`) to the end of the live file.

    Attributes:
        lines: its lines, in chain order.
        files: ``(file name, lines in it)``, to say where a line is.
        start: ``(seq, prev)`` of its first record when it does not start the trail.
        opening: the checkpoint line that opened the epoch of its first records (from the file
            before it), so their seals can be checked.
    """

    lines: list[bytes]
    files: list[tuple[str, int]]
    start: tuple[int, str] | None
    opening: list[bytes]

    @property
    def first_seq(self) -> int:
        """The seq of its first record (1 when it starts the trail or holds none)."""
        return self.start[0] if self.start is not None else 1

    def locate(self, line: int) -> str:
        """``file line n`` for a line number counted across the window's files."""
        for name, count in self.files:
            if line <= count:
                return f"{name} line {line}"
            line -= count
        return f"after the end of {self.files[-1][0]}" if self.files else AUDIT_FILE


WINDOW_FILES = 4
"""Rotated files the start check reads at most (a day or 16 MiB each): the last checkpoint
kept outside lies in the newest one, or in the live file, unless the trail was rolled back."""


def trail_window(directory: Path, live: list[bytes], back_to: int | None) -> Window:
    """The start check's :class:`Window`: the live file's lines ``live`` and, when they start
    after ``back_to`` (the oldest checkpoint kept outside) or are empty, the rotated files
    before them back to the one holding ``back_to``.

    Raises:
        OSError: a rotated file cannot be read.
    """
    rotated = rotated_files(directory)
    live_first = _first_seq(live) if live else None
    keep = 0
    if rotated and not (live_first is not None and (back_to is None or back_to >= live_first)):
        wanted = back_to if back_to is not None else live_first
        holder = max(
            (i for i, (first, _) in enumerate(rotated) if wanted is None or first <= wanted),
            default=0,
        )
        keep = min(max(len(rotated) - holder, 0 if live else 1), WINDOW_FILES)
    chosen = rotated[len(rotated) - keep :] if keep else []
    lines: list[bytes] = []
    files: list[tuple[str, int]] = []
    for _, path in chosen:
        part = read_lines(path)
        lines.extend(part)
        files.append((path.name, len(part)))
    lines.extend(live)
    files.append((AUDIT_FILE, len(live)))
    before = len(rotated) - keep - 1
    opening = opening_checkpoint(read_lines(rotated[before][1])) if before >= 0 else []
    first = parse_record(lines[0]) if lines else None
    start = (first["seq"], str(first["prev"])) if first is not None and first["seq"] > 1 else None
    return Window(lines, files, start, opening)
