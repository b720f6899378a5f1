"""The audit trail's files in its folder: their names, and the head that marks the durable end.

Why a module of its own: the writer writes these files and the verifiers (``station audit
verify``, the export bundle, the auditor view) read them, so the names, the order of rotated
files and the head's format are stated once, here, for both.

The head (``audit.head``) holds the last ``seq`` and ``hash`` the writer made durable, and the
epoch it was in; verification compares the trail's end with it and so finds records cut off the
end. It is replaced atomically, so a crash leaves the old head or the new, never half of one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from station.config.private_file import write_private

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
PUBLIC_KEY_FILE = "station-audit.pub"


def rotated_name(first_seq: int) -> str:
    """The name a full live file takes: sorted by name, the files are the chain in order (and
    the live ``audit.jsonl`` sorts after every ``audit-…``)."""
    return f"audit-{first_seq:012d}.jsonl"


def newest_rotated(directory: Path) -> list[bytes]:
    """The lines of the newest rotated file in ``directory`` (none: an empty list)."""
    rotated = sorted(directory.glob("audit-*.jsonl"))
    return rotated[-1].read_bytes().splitlines(keepends=True) if rotated else []


def read_head(directory: Path) -> tuple[int, str] | None:
    """The ``(seq, hash)`` the writer last made durable in ``directory``, or None if unknown."""
    doc = _head_doc(directory)
    seq, digest = (doc.get("seq"), doc.get("hash")) if isinstance(doc, dict) else (None, None)
    if isinstance(seq, int) and not isinstance(seq, bool) and isinstance(digest, str):
        return seq, digest
    if doc is not None:
        log.warning("ignoring malformed audit head in %s", directory)
    return None


def head_epoch(directory: Path) -> int:
    """The epoch the head in ``directory`` names; 0 if it names none."""
    doc = _head_doc(directory)
    epoch = doc.get("epoch") if isinstance(doc, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else 0


def write_head(directory: Path, seq: int, digest: str, epoch: int) -> None:
    """Replace the head in ``directory``, atomically.

    Raises:
        OSError: it could not be written; the old head is then untouched.
    """
    head = {"seq": seq, "hash": digest, "epoch": epoch}
    write_private(directory / HEAD_FILE, json.dumps(head).encode())


def _head_doc(directory: Path) -> object:
    try:
        return json.loads((directory / HEAD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable audit head in %s: %s", directory, exc)
        return None
