"""What the audit writer checks of its trail before it appends: whatever the folder holds, the
station starts, and says what is wrong.

Why a module of its own: the check at start is the station's own verification, run every time it
(or a shell command) opens the trail, and it must hold against a folder rewritten by someone
without the key. Before, it verified only the live file's hash chain, from the live file's first
record: no checkpoint signature, no seal, no rotated file, and an unsigned head that whoever cut
the tail could rewrite. A last checkpoint kept outside the folder that lay in a rotated file was
passed over. Now:

* :func:`open_window` reads the trail from the rotated file that holds the oldest checkpoint
  kept outside (the keyring's, the environment's, the anchor log's), so that checkpoint is
  looked for whatever the live file's first ``seq``; an older one, beyond
  :data:`~station.services.audit.trail_files.WINDOW_FILES` files, is looked up by its ``seq``
  (:func:`~station.services.audit.trail_files.hash_at`);
* :func:`verify_window` checks the window's chain, every checkpoint's signature and the signed
  head (:func:`station.domain.audit.quick.verify_quick`): cheap enough to run before the start;
* :class:`SealCheck` then checks every record's seal off the caller's thread (a full 16 MiB
  file takes seconds of CPU) and reports a fault as the start check would. It pauses as long
  as it works, so a station restarting in front of a backlog keeps at least half of the
  interpreter for its alarms.

Nothing here raises on what the files hold; an unreadable rotated file is itself a finding.
Threads: the functions run on the thread that starts the writer; :class:`SealCheck` is its own
short-lived thread (``audit-seals``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.domain.audit.chain import VerifyResult, parse_record, verify_lines
from station.domain.audit.head import Head
from station.domain.audit.keyed import check_seals, epoch_keys
from station.domain.audit.quick import verify_quick
from station.services.audit.trail_files import AUDIT_FILE, Window, trail_window

log = logging.getLogger(__name__)

PACE_MAX_S = 0.05
"""The longest pause :class:`SealCheck` makes between two stretches of records."""


def open_window(
    directory: Path, live: list[bytes], back_to: int | None
) -> tuple[Window, str | None]:
    """The start check's window (:func:`trail_window`), or the live file alone and why the
    rotated files could not be read."""
    try:
        return trail_window(directory, live, back_to), None
    except OSError as exc:
        first = parse_record(live[0]) if live else None
        start = (first["seq"], str(first["prev"])) if first and first["seq"] > 1 else None
        alone = Window(list(live), [(AUDIT_FILE, len(live))], start, [])
        return alone, f"the rotated audit files cannot be read: {exc}"


def verify_window(
    window: Window, key: Ed25519PublicKey | None, head: Head | str | None
) -> VerifyResult:
    """The window's chain, and with the station key every checkpoint and the signed head."""
    if key is None:  # an unkeyed station: only the chain (the trail is flagged unkeyed anyway)
        point = head.point if isinstance(head, Head) else None
        return verify_lines(window.lines, head=point, start=window.start)
    return verify_quick(window.lines, key, head=head, start=window.start)


def where(window: Window, result: VerifyResult) -> str:
    """``result``'s message, with the file the line is in when the window spans files."""
    if len(window.files) > 1 and result.line is not None:
        return f"{result.message} [{window.locate(result.line)}]"
    return result.message


class SealCheck:
    """Every record's seal in ``window``, checked on the ``audit-seals`` thread after the start;
    ``found`` gets the verdict when it fails (from that thread)."""

    def __init__(
        self,
        window: Window,
        key: Ed25519PublicKey,
        found: Callable[[VerifyResult], None],
    ) -> None:
        self._window, self._key, self._found = window, key, found
        self._lap = 0.0
        self._thread = threading.Thread(target=self._run, name="audit-seals", daemon=True)

    def start(self) -> None:
        """Start the check."""
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the check; whether it has ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _pace(self) -> None:
        """Sleep as long as the last stretch took: the check takes at most half of the
        interpreter while the station starts and drains its backlog."""
        now = time.monotonic()
        time.sleep(min(PACE_MAX_S, now - self._lap))
        self._lap = time.monotonic()

    def _run(self) -> None:
        window = self._window
        self._lap = time.monotonic()
        try:
            epochs = epoch_keys(window.opening, self._key)
            lenient = window.start is not None and not epochs
            fault = check_seals(
                window.lines, self._key, epochs=epochs, pace=self._pace, lenient=lenient
            )
        except Exception:  # a bug here must not pass for an intact trail, nor kill silently
            log.exception("the audit trail's seals could not be checked")
            return
        if fault is not None:
            self._found(fault)
