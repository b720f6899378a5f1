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

Untrusted ordering (issue 13): one message must not be able to move a device's ordering state
far ahead, or every genuine message after it would count as ``LATE`` (measured before this rule: a
single forged message with ``seq`` 2**63-1 kept a real bed's HR 170 from alarming for 40 s, and
for as long as the forgery was renewed). With ``now`` given:

- a ``seq`` that jumps further than a device could have counted since its newest message
  (:data:`MAX_RATE_HZ` per second of device time, plus one second) is ``SUSPECT``: remembered
  (a redelivery is a duplicate) but it moves nothing, and it is not live. Should the device's
  next message continue from that ``seq`` at a plausible step, its counter really did jump: the
  stream follows it (``reset``);
- a device time more than :data:`AHEAD_TOLERANCE_S` ahead of the station is ``NEW`` but flagged
  (``suspect="ahead"``): it is shown (a device with a fast clock must not be hidden) but does not
  move the newest time, so it cannot make later messages late.

Pure and single-threaded; memory is bounded per device and in the number of devices
(:data:`MAX_STREAMS`, least recently heard forgotten first), so random claimed ids cannot grow it.
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
"""A jump larger than this is a counter that wrapped or was corrupted, reported as a reset
(only without ``now``; with it, :data:`MAX_RATE_HZ` decides)."""

MAX_RATE_HZ = 1000.0
"""The fastest a device's counter is believed to move, per second of its own clock."""

AHEAD_TOLERANCE_S = 10.0
"""Device clocks may run this far ahead of the station's before a message is flagged."""

MAX_STREAMS = 1024
"""Devices remembered at once; far above a ward's (256 beds at most), far below what random ids
from a hostile client could make (at most about 1024 × 512 keys: tens of MB)."""


class Order(Enum):
    """Where a message stands in its device's stream."""

    NEW = "new"
    DUPLICATE = "duplicate"
    LATE = "late"
    SUSPECT = "suspect"
    """An implausible ``seq`` jump: stored, flagged, never live, moves nothing."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The order of one message; ``missing`` > 0 when a ``seq`` gap precedes a ``NEW`` one."""

    order: Order
    missing: int = 0
    after_seq: int | None = None
    reset: bool = False
    clock_back: bool = False
    """A new message whose device time is older than the newest before it."""
    suspect: str | None = None
    """``"ahead"`` (device time ahead of the station) or ``"sequence"`` (absurd ``seq`` jump)."""


Key = tuple[int, int | None, Hashable]


@dataclass
class _Stream:
    newest_ms: int
    newest_seq: int | None
    suspect_seq: int | None = None  # the last implausible seq, to follow a real counter jump
    seen: set[Key] = field(default_factory=set)
    order: deque[Key] = field(default_factory=deque)

    def remember(self, key: Key) -> None:
        self.seen.add(key)
        self.order.append(key)
        if len(self.order) > REMEMBERED:
            self.seen.discard(self.order.popleft())


class SequenceTracker:
    """Classifies each accepted message of each device; see the module docstring."""

    def __init__(self, max_streams: int = MAX_STREAMS) -> None:
        self._streams: dict[str, _Stream] = {}  # insertion order = least recently heard first
        self._max_streams = max_streams
        self.duplicates = 0
        self.late = 0
        self.missing = 0
        self.suspect = 0

    def observe(
        self,
        device: str,
        device_time_s: float,
        seq: int | None,
        fingerprint: Hashable = None,
        now: float | None = None,
    ) -> Verdict:
        """Classify one message and remember it; ``fingerprint`` stands for its values and
        ``now`` (the station's wall time) turns on the untrusted-ordering rules."""
        ms = round(device_time_s * 1000)
        # The values' hash, not the values: 512 keys of 64 bytes a device instead of ~400.
        key: Key = (ms, seq, hash(fingerprint))
        stream = self._streams.pop(device, None)
        if stream is None:
            if len(self._streams) >= self._max_streams:
                del self._streams[next(iter(self._streams))]
            stream = _Stream(newest_ms=ms, newest_seq=seq)
            stream.remember(key)
            self._streams[device] = stream
            if now is not None and device_time_s - now > AHEAD_TOLERANCE_S:
                # Nothing to compare with yet: the station's time is the baseline, and the
                # counter none, so neither can make the genuine messages after it late.
                stream.newest_ms, stream.newest_seq = round(now * 1000), None
                self.suspect += 1
                return Verdict(Order.NEW, suspect="ahead")
            return Verdict(Order.NEW)
        self._streams[device] = stream  # most recently heard last
        if key in stream.seen:
            self.duplicates += 1
            return Verdict(Order.DUPLICATE)
        stream.remember(key)
        ahead = now is not None and device_time_s - now > AHEAD_TOLERANCE_S
        if now is not None and seq is not None and stream.newest_seq is not None:
            verdict = self._plausible(stream, ms, seq, ahead)
            if verdict is not None:
                return verdict
        if ahead:
            # Shown, but it cannot make later messages late: the newest time stays put.
            self.suspect += 1
            if seq is not None and stream.newest_seq is not None and seq > stream.newest_seq:
                self.missing += seq - stream.newest_seq - 1
                stream.newest_seq = seq
            return Verdict(Order.NEW, suspect="ahead")
        return self._classify(stream, ms, seq, now is None)

    def _plausible(self, stream: _Stream, ms: int, seq: int, ahead: bool) -> Verdict | None:
        """``SUSPECT`` for a jump no device could have counted, unless it continues an earlier
        such jump (the counter really moved); None when the jump is plausible."""
        before = stream.newest_seq
        assert before is not None
        elapsed_s = max(0.0, (ms - stream.newest_ms) / 1000)
        if seq - before <= MAX_RATE_HZ * (elapsed_s + 1):
            return None
        follows = stream.suspect_seq
        if not ahead and follows is not None and 0 < seq - follows <= MAX_RATE_HZ:
            stream.suspect_seq = None
            stream.newest_ms, stream.newest_seq = ms, seq
            return Verdict(Order.NEW, after_seq=before, reset=True)
        stream.suspect_seq = seq
        self.suspect += 1
        return Verdict(Order.SUSPECT, suspect="sequence")

    def _classify(self, stream: _Stream, ms: int, seq: int | None, legacy: bool) -> Verdict:
        before, newest_ms = stream.newest_seq, stream.newest_ms
        if seq is not None and before is not None:
            jump = seq - before
            if jump > 0 and (jump <= MAX_GAP or not legacy):
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

    def __len__(self) -> int:
        return len(self._streams)
