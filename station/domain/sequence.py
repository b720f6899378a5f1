"""Per-device order of messages: what is new, a duplicate, late, or follows a gap in ``seq``.

Why here and not in the spool: the spool keeps a redelivered *point* once (its line is unique),
but the screen and the alarm engine must not see it twice either — a QoS 1 redelivery or a replay
would otherwise add a second plot sample and could re-raise an alarm (issue 4). And a gap in the
device's ``seq`` (CONTRACT §1: a per-device counter) is the only evidence that messages were lost
before they reached the station, for example in a broker queue that overflowed; it must be shown
on the bed and recorded, never smoothed over.

Identity of a message is its device time, ``seq`` and values (``fingerprint``): a redelivery or
a replay repeats all three. Two different messages in one millisecond are both kept (a device
with a coarse clock must not lose a new value on the screen), though the historian, which keys a
point by its time, keeps only the last of them. Rules, per device:

- a message already seen (among the last :data:`REMEMBERED`) is a ``DUPLICATE``;
- with ``seq`` on both it and the newest before it, the counter decides: a higher ``seq`` is
  ``NEW`` even if its time is older (the device's clock stepped back, e.g. corrected by NTP:
  hiding its values would hide the patient), and ``missing`` says how many never arrived; a
  lower ``seq`` with a newer time is a device restart (``reset``), not a gap; a lower ``seq``
  with an older time is ``LATE`` (out of order): stored, never live;
- without ``seq``, an older time may be a clock step as well as a late message, so it is
  ``NEW`` (``clock_back``); data older than the live window is still kept off the screen by the
  core's age rule.

Pure and single-threaded (the core's thread); memory is bounded per device.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum

REMEMBERED = 512
"""Messages remembered per device for duplicate detection: 8.5 min at 1 Hz, longer than a broker
redelivery takes; an older replay is caught by the ``LATE`` rule (with ``seq``) or the core's
live-window age rule instead."""

MAX_GAP = 10_000_000
"""A jump larger than this is a counter that wrapped or was corrupted, reported as a reset."""


class Order(Enum):
    """Where a message stands in its device's stream."""

    NEW = "new"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The order of one message; ``missing`` > 0 when a ``seq`` gap precedes a ``NEW`` one."""

    order: Order
    missing: int = 0
    after_seq: int | None = None
    reset: bool = False
    clock_back: bool = False
    """A new message whose device time is older than the newest before it."""


Key = tuple[int, int | None, Hashable]


@dataclass
class _Stream:
    newest_ms: int
    newest_seq: int | None
    seen: set[Key] = field(default_factory=set)
    order: deque[Key] = field(default_factory=deque)

    def remember(self, key: Key) -> None:
        self.seen.add(key)
        self.order.append(key)
        if len(self.order) > REMEMBERED:
            self.seen.discard(self.order.popleft())


class SequenceTracker:
    """Classifies each accepted message of each device; see the module docstring."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self.duplicates = 0
        self.late = 0
        self.missing = 0

    def observe(
        self, device: str, device_time_s: float, seq: int | None, fingerprint: Hashable = None
    ) -> Verdict:
        """Classify one message and remember it; ``fingerprint`` stands for its values."""
        ms = round(device_time_s * 1000)
        key: Key = (ms, seq, fingerprint)
        stream = self._streams.get(device)
        if stream is None:
            stream = _Stream(newest_ms=ms, newest_seq=seq)
            stream.remember(key)
            self._streams[device] = stream
            return Verdict(Order.NEW)
        if key in stream.seen:
            self.duplicates += 1
            return Verdict(Order.DUPLICATE)
        stream.remember(key)
        before, newest_ms = stream.newest_seq, stream.newest_ms
        if seq is not None and before is not None:
            jump = seq - before
            if 0 < jump <= MAX_GAP:
                # The counter moves on: a new message, even if the device's clock stepped back.
                stream.newest_ms, stream.newest_seq = ms, seq
                self.missing += jump - 1
                after = before if jump > 1 else None
                return Verdict(Order.NEW, jump - 1, after, clock_back=ms < newest_ms)
            if ms > newest_ms:  # counter down (or absurd) with a newer time: a device restart
                stream.newest_ms, stream.newest_seq = ms, seq
                return Verdict(Order.NEW, after_seq=before, reset=True)
            self.late += 1  # older counter and older time: out of order
            return Verdict(Order.LATE)
        # Without a counter, an older time cannot be told from a clock that stepped back, and
        # hiding a new value is the worse mistake: it is new (the core still keeps data older
        # than the live window off the screen).
        stream.newest_ms, stream.newest_seq = ms, seq
        return Verdict(Order.NEW, clock_back=ms < newest_ms)

    def forget(self, device: str) -> None:
        """Drop a device's history (it was decommissioned or moved)."""
        self._streams.pop(device, None)
