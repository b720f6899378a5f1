"""A second keeper of the last audit checkpoint for a station without a keyring: an append-only
log file outside the data folder.

Why: a data folder put back to an older copy is intact in itself; only a checkpoint kept
elsewhere shows what it lost. With a desktop keyring the station keeps its last checkpoint there;
an unattended service has none, and ``STATION_AUDIT_ANCHOR`` in its environment is set by hand,
so it is as old as the day it was set. That left one retained MQTT message as the only guard,
and whoever can publish as the station (its broker password is in the same environment) or
clear the retained topic could remove it. The log is a second guard that needs no broker:

* ``STATION_AUDIT_ANCHOR_LOG`` names a file outside the data folder; every checkpoint the trail
  makes durable is appended to it (one JSON line, ``O_APPEND``, fsynced) by the station and by
  the shell commands that open the trail;
* at start the newest line that the station key signed for this station is compared with the
  trail like the keyring's anchor (:func:`station.services.audit.keys.read_anchor`);
* ``station audit verify`` on the station holds the trail to every signed line of the last
  month (:func:`every`): someone holding the station key can append a checkpoint of a trail
  they rewrote, but the ones appended before still contradict it.

It is a guard only if the station's user cannot shorten the file. Make it append-only as root
(``chattr +a``, which needs ``CAP_LINUX_IMMUTABLE``): the service may then add lines but not
remove or rewrite one, so copying the data folder back, which is all that a rollback is, still
leaves the newer checkpoint in the log. Lines appended by someone else count only if the station
key signed them, so garbage appended to the log is passed over, not believed. Root (who can
remove the attribute, and reads the station key in ``/etc/station/credentials.env``) is not
stopped by it; anyone holding the station key can make the start check's newest line their own,
and only the auditor's full comparison (:func:`every`) still finds them.
Threads: the ``audit`` thread appends; the start reads; shell commands do both.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.domain.audit.keyed import Published
from station.domain.audit.safe_json import MAX_SMALL_BYTES

log = logging.getLogger(__name__)

ENV = "STATION_AUDIT_ANCHOR_LOG"
TAIL_BYTES = 256 * 1024
"""How much of the log's end the start reads: hundreds of checkpoints, the newest among them."""
AUDIT_BYTES = 8 * 1024 * 1024
"""How much of the log's end ``station audit verify`` reads: about a month of checkpoints."""


def log_path() -> Path | None:
    """The anchor log this process keeps (``STATION_AUDIT_ANCHOR_LOG``, an absolute path), or
    None when none is set (a relative path is refused: it would follow the working folder)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    path = Path(text)
    if not path.is_absolute():
        log.warning("ignoring %s=%s: the anchor log needs an absolute path", ENV, text)
        return None
    return path


def append(path: Path, checkpoint: Published) -> None:
    """Append ``checkpoint`` to the log at ``path`` (created owner-only) and fsync it.

    Raises:
        OSError: it could not be written (the caller logs it: the trail goes on).
    """
    line = checkpoint.to_json().encode("utf-8") + b"\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    try:
        # A torn last line (a crash mid-write) must not glue itself to this one.
        if os.fstat(fd).st_size and not _ends_with_newline(path):
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def newest(path: Path, station: str, key: Ed25519PublicKey) -> Published | None:
    """The last checkpoint in the log that ``key`` signed for ``station``, or None (no log, or
    no such line in its last :data:`TAIL_BYTES`). Never raises on what the file holds."""
    for found in reversed(_lines(path, TAIL_BYTES)):
        checkpoint = _signed(found, station, key)
        if checkpoint is not None:
            return checkpoint
    return None


def every(path: Path, station: str, key: Ed25519PublicKey) -> list[Published]:
    """Every checkpoint in the log's last :data:`AUDIT_BYTES` that ``key`` signed for
    ``station``, oldest first. A trail must hold each (or a signed restore account for it):
    someone holding the station key can sign a checkpoint of a rewritten trail and append it,
    but cannot take back the ones the station appended before."""
    found = (_signed(line, station, key) for line in _lines(path, AUDIT_BYTES))
    return [checkpoint for checkpoint in found if checkpoint is not None]


def _lines(path: Path, limit: int) -> list[bytes]:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            tail = handle.read(limit)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("could not read the audit anchor log %s: %s", path, exc)
        return []
    return [line for line in tail.split(b"\n") if line.strip() and len(line) <= MAX_SMALL_BYTES]


def _signed(line: bytes, station: str, key: Ed25519PublicKey) -> Published | None:
    try:
        found = Published.from_json(line)
    except ValueError:
        return None
    return found if found.station == station and found.verifies(key) else None
