"""What the record session hands the core: its messages in arrival order, and how to ack each.

Why a module of its own: this queue is the seam between paho's ``mqtt`` thread and the core
thread (issue 13), and its bounds are what keep a flood from growing the core's memory or its
event queue. Messages are not sent one signal each: they wait here, and the consumer is woken only
when the queue goes from empty to not empty (:meth:`RecordInbox.put` says when); the core takes
them in chunks (:meth:`RecordInbox.take`). So the core's event queue holds at most one record
wake-up whatever the message rate, and the live feed's wake-up never waits behind thousands of
queued record events (it waited behind them on ``main``: a QoS 0 flood grew the core's queue
without bound).

The queue is bounded by :data:`MAX_WAITING` for QoS 1 and by :data:`MAX_RECEIVED` for QoS 0
(past it QoS 0 messages are dropped and counted). The broker's in-flight window (MQTT 5 Receive
Maximum) does not bound it: Mosquitto 2.0.11 honours the window until acknowledgements come
back, then sends a resumed session's backlog as fast as it can (measured: 15,589
unacknowledged with a window of 256 while a client acknowledged 64 at a time). After a 1 h
outage of 64 beds the queue held 172,000 messages (about 1.4 million Python objects), and each
full cycle collection over them stopped every thread for up to 0.9 s, live alarms included.
Past :data:`MAX_WAITING`, :meth:`RecordInbox.put` therefore waits (on paho's network thread)
until the core has taken a chunk: paho stops reading the socket and the broker keeps the rest.

Thread-safe: :meth:`~RecordInbox.put` runs on the ``mqtt`` thread, :meth:`~RecordInbox.take` on
the core thread; one lock, held for microseconds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

Raw = tuple[str, bytes, float]
"""A received message as it came: topic, payload, and the station's wall time at its arrival.
Parsed on the core thread, not here: a parsed message is about ten objects the cycle collector
must walk for as long as it waits here (up to :data:`MAX_WAITING`), and under a flood those
walks stopped every thread for 20-50 ms at a time (the GUI timer's lag, ``station bench
--flood``); a tuple of a string, bytes and a float is dropped from the collector's lists."""

MAX_RECEIVED = 20_000
"""Received QoS 0 messages waiting for the core at most; past it they are dropped."""
MAX_WAITING = 2_048
"""Received QoS 1 messages waiting for the core at most; past it the receiving thread waits
(0.4 s of the core's drain rate here: enough to keep it busy, small enough for a cheap cycle
collection)."""
WAIT_SLICE_S = 0.5
"""A waiting receiver re-checks whether the inbox was closed this often."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What acknowledging one received message needs: its packet id and QoS on the connection
    (``generation``) it arrived on. A packet id means nothing on a later connection, so an
    acknowledgement for an earlier one is not sent; the broker redelivers that message and the
    spool and the sequence tracker recognise it."""

    generation: int
    mid: int
    qos: int


class RecordInbox:
    """Received messages waiting for the core; see the module docstring."""

    def __init__(self) -> None:
        self._received: deque[tuple[Raw, Delivery]] = deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)  # the core took some: a receiver may go on
        self._closed = False
        self._scheduled = False  # the consumer has been woken and has not emptied the queue
        self.dropped_qos0 = 0

    def put(self, item: tuple[Raw, Delivery]) -> bool:
        """Queue one message (the ``mqtt`` thread). Returns True when the consumer must be woken
        (nothing was waiting for it before). A QoS 1 message waits while :data:`MAX_WAITING`
        are queued (the consumer is awake then: the queue is not empty); after :meth:`close` it
        is dropped unacknowledged, and the broker sends it again to the next session."""
        with self._lock:
            if item[1].qos > 0:
                while len(self._received) >= MAX_WAITING and not self._closed:
                    self._space.wait(WAIT_SLICE_S)
                if self._closed:
                    return False
            if len(self._received) >= MAX_RECEIVED and item[1].qos == 0:
                # QoS 1 waited above; a QoS 0 flood cannot be held back by not acknowledging:
                # past the bound its messages are dropped here (counted), never the core's memory.
                self.dropped_qos0 += 1
                return False
            self._received.append(item)
            wake = not self._scheduled
            self._scheduled = True
        return wake

    def take(self, limit: int) -> tuple[list[tuple[Raw, Delivery]], bool]:
        """Up to ``limit`` received messages in arrival order (any thread; the core's), and
        whether more are waiting. When none are left, the next message wakes the core again."""
        with self._lock:
            n = min(limit, len(self._received))
            items = [self._received.popleft() for _ in range(n)]
            if n:
                self._space.notify_all()
            more = bool(self._received)
            if not more:
                self._scheduled = False
            return items, more

    def close(self) -> None:
        """Stop waiting for room (the station is stopping): a receiver waiting in :meth:`put`
        returns at once, and later QoS 1 messages are not queued."""
        with self._lock:
            self._closed = True
            self._space.notify_all()

    def waiting(self) -> int:
        """Messages queued for the core now."""
        with self._lock:
            return len(self._received)
