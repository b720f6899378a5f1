"""Reading a whole audit trail as its verifiers see it: every file in chain order, and its head.

Used by ``station audit verify``, the export bundle and the auditor view, so all three read the
same lines the same way (split at ``\\n`` only; a live file's unfinished last line left out when
asked, because the writer may be appending to it this very moment), and judge the head the same
way (:mod:`station.domain.audit.head`).

The key file beside a trail (or in a bundle) is whatever the folder holds: whoever rewrote the
trail could have put their own key there. So a verdict reached with that key only is flagged
:data:`UNVERIFIED`, for a person to compare its id with the one on record.
"""

from __future__ import annotations

import base64
import binascii
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.domain.audit.chain import parse_record
from station.domain.audit.head import Head
from station.domain.audit.keyed import Published, TrailReport, verify_trail
from station.domain.audit.safe_json import MAX_SMALL_BYTES
from station.domain.vouchers.keys import load_public_key
from station.services.audit.restore_marks import marks_in, superseding
from station.services.audit.trail_files import AUDIT_FILE, PUBLIC_KEY_FILE, load_head

UNVERIFIED = "UNVERIFIED KEY"
"""How a verdict says the key it used came only from the folder or bundle it checked."""
COMPARE = "compare it with the id on record, or pass --key or --key-id"


@dataclass(frozen=True)
class Trail:
    """A trail's lines in order, which file each came from, and the writer's head."""

    directory: Path
    lines: list[bytes]
    files: list[tuple[str, int]]  # (file name, lines in it)
    head: tuple[int, str] | None
    written_head: Head | str | None = None  # audit.head as read (str: why it is unreadable)

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
        written = load_head(path.parent) if path.name == AUDIT_FILE else None
        directory, files = path.parent, [path]
    else:
        directory = audit_folder(path)
        written = load_head(directory)
        files = sorted(p for p in directory.glob("*.jsonl") if p.is_file())
    lines: list[bytes] = []
    counts: list[tuple[str, int]] = []
    for file in files:
        data = file.read_bytes().splitlines(keepends=True)
        if live and file is files[-1] and data and not data[-1].endswith(b"\n"):
            data.pop()
        lines.extend(data)
        counts.append((file.name, len(data)))
    head = written.point if isinstance(written, Head) else None
    return Trail(directory, lines, counts, head, written)


def public_key_beside(directory: Path) -> Ed25519PublicKey | None:
    """The station key the writer left beside the trail, if any (trust it only after comparing
    its id with the one on record: whoever can write the folder can replace it).

    Raises:
        VoucherError: the file is not a public key.
        OSError: it cannot be read.
    """
    path = directory / PUBLIC_KEY_FILE
    return load_public_key(path) if path.is_file() else None


def key_beside(directory: Path) -> Ed25519PublicKey | str | None:
    """The key file beside the trail as a verifier reads it: the key, why the file there is no
    key (a string), or None when there is none. Never raises."""
    path = directory / PUBLIC_KEY_FILE
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return f"{PUBLIC_KEY_FILE} is not a file"
        if info.st_size > MAX_SMALL_BYTES:
            return f"{PUBLIC_KEY_FILE} is larger than {MAX_SMALL_BYTES} bytes"
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{PUBLIC_KEY_FILE} cannot be read ({exc.strerror or exc})"
    return public_key_from(data, PUBLIC_KEY_FILE)


def public_key_from(data: bytes, name: str) -> Ed25519PublicKey | str:
    """The Ed25519 public key in ``data`` (PEM, or base64 of the raw key, as
    :func:`~station.domain.vouchers.keys.load_public_key` reads them), or why it is none."""
    if len(data) > MAX_SMALL_BYTES:
        return f"{name} is larger than {MAX_SMALL_BYTES} bytes"
    try:
        if b"-----BEGIN" in data:
            key: object = serialization.load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error):
        return f"{name} is not an Ed25519 public key"
    if not isinstance(key, Ed25519PublicKey):
        return f"{name} is not an Ed25519 public key"
    return key


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
    head = trail.written_head if trail.written_head is not None else trail.head
    return verify_trail(trail.lines, key, head=head, published=kept)
