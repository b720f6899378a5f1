"""What the record session hands the core: its messages in arrival order, and how to ack each.

Why a module of its own: this queue is the seam between paho's ``mqtt`` thread and the core
thread (issue 13), and its bounds are what keep a flood from growing the core's memory or its
event queue. Messages are not sent one signal each: they wait here, and the consumer is woken only
when the queue goes from empty to not empty (:meth:`RecordInbox.put` says when); the core takes
them in chunks (:meth:`RecordInbox.take`). So the core's event queue holds at most one record
wake-up whatever the message rate, and the live feed's wake-up never waits behind thousands of
queued record events (it waited behind them on ``main``: a QoS 0 flood grew the core's queue
without bound). The queue itself is bounded by the broker's in-flight window for QoS 1, as nothing
is acknowledged before the core has spooled it, and by :data:`MAX_RECEIVED` for QoS 0 (past it
QoS 0 messages are dropped and counted).

Thread-safe: :meth:`~RecordInbox.put` runs on the ``mqtt`` thread, :meth:`~RecordInbox.take` on
the core thread; one lock, held for microseconds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from station.domain.messages import Accepted, Rejection

MAX_RECEIVED = 20_000
"""Received messages waiting for the core at most, for QoS 0 (QoS 1 waits in the broker)."""


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
        self._received: deque[tuple[Accepted | Rejection, Delivery]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False  # the consumer has been woken and has not emptied the queue
        self.dropped_qos0 = 0

    def put(self, item: tuple[Accepted | Rejection, Delivery]) -> bool:
        """Queue one message (the ``mqtt`` thread). Returns True when the consumer must be woken
        (nothing was waiting for it before)."""
        with self._lock:
            if len(self._received) >= MAX_RECEIVED and item[1].qos == 0:
                # QoS 1 is bounded by the in-flight window; a QoS 0 flood is not: past the
                # bound its messages are dropped here (counted), never the core's memory.
                self.dropped_qos0 += 1
                return False
            self._received.append(item)
            wake = not self._scheduled
            self._scheduled = True
        return wake

    def take(self, limit: int) -> tuple[list[tuple[Accepted | Rejection, Delivery]], bool]:
        """Up to ``limit`` received messages in arrival order (any thread; the core's), and
        whether more are waiting. When none are left, the next message wakes the core again."""
        with self._lock:
            n = min(limit, len(self._received))
            items = [self._received.popleft() for _ in range(n)]
            more = bool(self._received)
            if not more:
                self._scheduled = False
            return items, more
