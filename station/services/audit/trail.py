"""Reading a whole audit trail as its verifiers see it: every file in chain order, and its head.

Used by ``station audit verify``, the export bundle and the auditor view, so all three read the
same lines the same way (split at ``\\n`` only; a live file's unfinished last line left out when
asked, because the writer may be appending to it this very moment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.domain.audit.chain import parse_record
from station.domain.audit.keyed import Published, TrailReport, verify_trail
from station.domain.vouchers.keys import load_public_key
from station.services.audit.restore_marks import marks_in, superseding
from station.services.audit.trail_files import AUDIT_FILE, PUBLIC_KEY_FILE, read_head


@dataclass(frozen=True)
class Trail:
    """A trail's lines in order, which file each came from, and the writer's head."""

    directory: Path
    lines: list[bytes]
    files: list[tuple[str, int]]  # (file name, lines in it)
    head: tuple[int, str] | None

    def locate(self, line: int) -> str:
        """``file line n`` for a line number counted across all the files."""
        for name, count in self.files:
            if line <= count:
                return f"{name} line {line}"
            line -= count
        return f"after the end of {self.files[-1][0]}" if self.files else "no file"

    def records(self) -> list[dict[str, object]]:
        """Every line that has a record's shape (a damaged line is left out here; the
        verification names it)."""
        found = (parse_record(line) for line in self.lines)
        return [record for record in found if record is not None]


def audit_folder(path: Path) -> Path:
    """The audit folder at ``path``: ``path`` itself, or its ``audit/`` (a data folder)."""
    return path / "audit" if (path / "audit").is_dir() else path


def read_trail(path: Path, *, live: bool = False) -> Trail:
    """Read the trail at ``path`` (one ``.jsonl`` file, an audit folder or a data folder).

    The head is read before the lines: a writer appending meanwhile leaves the file ahead of
    the head, which verifies; read the other way round it would look like a cut-off tail.

    Args:
        live: the writer may be running; an unfinished last line is not read (it is being
            written, not torn).

    Raises:
        OSError: a file cannot be read.
    """
    if path.is_file():
        head = read_head(path.parent) if path.name == AUDIT_FILE else None
        directory, files = path.parent, [path]
    else:
        directory = audit_folder(path)
        head = read_head(directory)
        files = sorted(p for p in directory.glob("*.jsonl") if p.is_file())
    lines: list[bytes] = []
    counts: list[tuple[str, int]] = []
    for file in files:
        data = file.read_bytes().splitlines(keepends=True)
        if live and file is files[-1] and data and not data[-1].endswith(b"\n"):
            data.pop()
        lines.extend(data)
        counts.append((file.name, len(data)))
    return Trail(directory, lines, counts, head)


def public_key_beside(directory: Path) -> Ed25519PublicKey | None:
    """The station key the writer left beside the trail, if any (trust it only after comparing
    its id with the one on record: whoever can write the folder can replace it)."""
    path = directory / PUBLIC_KEY_FILE
    return load_public_key(path) if path.is_file() else None


def verify(trail: Trail, key: Ed25519PublicKey, published: Sequence[Published] = ()) -> TrailReport:
    """The full verification of a trail read by :func:`read_trail`.

    A published checkpoint that a signed ``station.restore`` in the trail accounts for is not
    held against it (:mod:`station.services.audit.restore_marks`: the rule the station's start
    check applies too); the restore record itself says what was lost."""
    marks = marks_in(trail.lines, key) if published else []
    kept = [
        checkpoint
        for checkpoint in published
        if not (checkpoint.verifies(key) and superseding(checkpoint, marks) is not None)
    ]
    return verify_trail(trail.lines, key, head=trail.head, published=kept)
