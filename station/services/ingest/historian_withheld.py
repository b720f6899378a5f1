"""Stays the historian must no longer send: storage consent withdrawn while points of them were
still on their way (issue 17).

Why here and not only in the spool: the spool holds a withdrawn stay's points back and purges
them (:mod:`station.services.ingest.group_commit`), but a batch the historian thread took
before the withdrawal, and the points in its memory queue (a spool that refused, or none), are
past the spool. The historian asks this list before every write, so the next request sends
nothing of those stays, whether the batch is new or a retry; such points are then dropped from
memory as if written. Thread-safe: the core adds, the historian thread asks.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

from station.domain.lineprotocol import escape_tag


class WithheldStays:
    """Beds and periods (epoch seconds; ``until`` None: still open) never to be written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stays: tuple[tuple[str, int, float], ...] = ()
        self.dropped = 0  # points left out of writes (a retried one counts again); its thread

    def replace(self, stays: Iterable[tuple[str, float, float | None]]) -> None:
        """The stays (bed, since, until) never to be written from now on: all of them, as the
        bed policy now says. Replaced, never added to: a stay that was open when its consent
        was withdrawn ends at the discharge, and the bed's next patient is written again."""
        new = tuple(
            (f",bed={escape_tag(bed)}", math.floor(since * 1000),
             math.inf if until is None else until * 1000)
            for bed, since, until in stays
        )  # fmt: skip
        with self._lock:
            self._stays = new

    def split(self, lines: list[str]) -> tuple[list[int], int]:
        """The indexes of ``lines`` that may be written, and how many may not."""
        stays = self._stays  # an immutable tuple: read without the lock
        if not stays:
            return list(range(len(lines))), 0
        keep = [i for i, text in enumerate(lines) if not _withheld(text, stays)]
        return keep, len(lines) - len(keep)


def _withheld(text: str, stays: tuple[tuple[str, int, float], ...]) -> bool:
    """Whether the line-protocol point ``text`` is of a withheld bed and time."""
    head, _, stamp = text.rpartition(" ")
    for tag, since, until in stays:
        at = head.find(tag)
        if at < 0 or head[at + len(tag) : at + len(tag) + 1] not in (",", " "):
            continue
        try:
            ms = int(stamp)
        except ValueError:
            return True  # a point without a readable time: never risk sending it
        if since <= ms <= until:
            return True
    return False
