"""What the live feed hands the core: each device's newest messages, within a budget per device.

Why a budget per device: the live path must not let one device's rate decide how soon another
bed is seen. Measured before the live path (one broker session for everything): one device
flooding at QoS 1 delayed another bed's HR 170 alarm by 19 s. Here every message is taken by the
live MQTT thread at the cost of a dictionary update, and per *source* (a device the topic names,
or the id a message on the shared topic claims) at most ``budget_hz`` messages a second are
queued for the core; past that, a newer message replaces the last one still queued ("latest
wins"), the rest of the second is left to the record path, and the excess is counted. The core
then sees a flooding device at the budget rate and reports it (technical alarm "device
flooding", audit record). Nothing is lost by this: the persistent session keeps every message
for the record.

Memory is bounded: at most :data:`MAX_SOURCES` sources (least recently heard forgotten first) and
:data:`QUEUE_PER_SOURCE` messages queued per source, so random ids cannot grow it.

Thread-safe: :meth:`put` runs on the live MQTT thread, :meth:`take` and :meth:`flooding` on the
core thread; one lock, held for microseconds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

MAX_SOURCES = 4096
QUEUE_PER_SOURCE = 8
WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class LiveItem:
    """One message as it arrived on the live session; parsed later, on the core thread."""

    topic: str
    payload: bytes
    received_at: float  # the station's wall time (StationClock.now) at arrival


@dataclass
class _Source:
    window_start: float
    count: int = 0  # arrivals in the current window
    previous: int = 0  # arrivals in the window before
    queued: deque[LiveItem] = field(default_factory=lambda: deque(maxlen=QUEUE_PER_SOURCE))


@dataclass(frozen=True, slots=True)
class Flooding:
    """A source over its budget: how many messages it sent in its last full second."""

    source: str
    rate: int
    proven: bool  # the topic names the device (the broker's ACL vouches for it)


class LiveInbox:
    """Per-source budget and queue; see the module docstring."""

    def __init__(self, budget_hz: int, max_sources: int = MAX_SOURCES) -> None:
        self.budget = budget_hz
        self._max_sources = max_sources
        self._sources: dict[str, _Source] = {}  # least recently heard first
        self._ready: set[str] = set()  # sources with something queued
        self._lock = threading.Lock()
        self._scheduled = False
        self.excess = 0  # messages over budget (replaced or not queued), since the start
        self.evicted = 0
        self.last_count = 0  # arrivals of the source of the last put in its current second
        self.last_previous = 0  # and in its second before

    def put(self, source: str, item: LiveItem, now: float) -> bool:
        """Queue one message of ``source`` (``now``: monotonic seconds). Returns True when the
        consumer must be woken (nothing was waiting for it before)."""
        with self._lock:
            src = self._sources.pop(source, None)
            if src is None:
                if len(self._sources) >= self._max_sources:
                    old = next(iter(self._sources))
                    del self._sources[old]
                    self._ready.discard(old)
                    self.evicted += 1
                src = _Source(now)
            self._sources[source] = src
            if now - src.window_start >= WINDOW_S:
                src.previous = src.count if now - src.window_start < 2 * WINDOW_S else 0
                src.window_start, src.count = now, 0
            src.count += 1
            self.last_count, self.last_previous = src.count, src.previous
            if src.count <= self.budget:
                src.queued.append(item)
            else:
                self.excess += 1
                if not src.queued:
                    return False  # its share of this second is used: kept only for the record
                src.queued[-1] = item  # latest wins
            self._ready.add(source)
            wake = not self._scheduled
            self._scheduled = True
            return wake

    def waiting(self) -> bool:
        """Whether messages wait to be taken (any thread; a hint, read without the lock)."""
        return self._scheduled

    def take(self) -> list[LiveItem]:
        """Everything queued, one source after another (each source's messages in order)."""
        with self._lock:
            items: list[LiveItem] = []
            for source in self._ready:
                src = self._sources.get(source)
                if src is not None:
                    items.extend(src.queued)
                    src.queued.clear()
            self._ready.clear()
            self._scheduled = False
            return items

    def flooding(self, now: float) -> list[Flooding]:
        """Sources over budget in the current or the last full window."""
        with self._lock:
            found = []
            for source, src in self._sources.items():
                age = now - src.window_start
                if age < WINDOW_S:
                    rate = max(src.count, src.previous)  # this second so far, or the last
                elif age < 2 * WINDOW_S:
                    rate = src.count  # its second ended and nothing rolled it yet
                else:
                    rate = 0
                if rate > self.budget:
                    device, proven = split_source(source)
                    found.append(Flooding(device, rate, proven))
            return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._sources)


PROVEN, CLAIMED = "device:", "claimed:"


def source_key(device: str, proven: bool) -> str:
    """The budget key of a message: a device the topic names is one source; an id claimed on a
    shared topic is another, so a forger claiming a bed's id cannot use up that device's budget
    on its own topic."""
    return (PROVEN if proven else CLAIMED) + device


def split_source(source: str) -> tuple[str, bool]:
    """The device id and whether it is proven, from :func:`source_key`."""
    if source.startswith(PROVEN):
        return source[len(PROVEN) :], True
    return source[len(CLAIMED) :], False
