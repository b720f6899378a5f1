"""The record session's inbox holds back the receiving thread instead of growing without bound.

Mosquitto 2.0.11 stops honouring the Receive Maximum once acknowledgements flow, so a resumed
session's backlog arrives as fast as the broker can send it; the inbox is the only bound.
"""

from __future__ import annotations

import threading
import time

import pytest

from station.services.ingest import record_inbox
from station.services.ingest.record_inbox import MAX_RECEIVED, Delivery, Raw, RecordInbox


def _item(mid: int, qos: int = 1) -> tuple[Raw, Delivery]:
    return ("t", str(mid).encode(), 0.0), Delivery(1, mid, qos)


def test_a_qos1_receiver_waits_at_the_bound_until_the_core_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(record_inbox, "MAX_WAITING", 100)
    inbox = RecordInbox()
    for mid in range(100):
        inbox.put(_item(mid))
    done = threading.Event()

    def receive() -> None:
        inbox.put(_item(100))
        done.set()

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    assert not done.wait(0.3), "the receiver did not wait at the bound"
    assert inbox.waiting() == 100
    items, more = inbox.take(10)
    assert [d.mid for _, d in items] == list(range(10))
    assert more
    assert done.wait(2.0), "taking did not let the receiver go on"
    assert inbox.waiting() == 91
    rest, more = inbox.take(1000)
    assert [d.mid for _, d in rest] == list(range(10, 101))
    assert not more


def test_close_releases_a_waiting_receiver_and_drops_later_qos1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(record_inbox, "MAX_WAITING", 5)
    inbox = RecordInbox()
    for mid in range(5):
        inbox.put(_item(mid))
    returned: list[bool] = []
    thread = threading.Thread(target=lambda: returned.append(inbox.put(_item(5))), daemon=True)
    thread.start()
    time.sleep(0.1)
    assert thread.is_alive()
    inbox.close()
    thread.join(2.0)
    assert not thread.is_alive()
    assert returned == [False]
    assert inbox.put(_item(6)) is False  # not queued: unacknowledged, the broker sends it again
    assert inbox.waiting() == 5


def test_qos0_is_dropped_past_its_bound_never_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_inbox, "MAX_WAITING", 3)
    inbox = RecordInbox()
    for mid in range(MAX_RECEIVED + 10):
        inbox.put(_item(mid, qos=0))
    assert inbox.waiting() == MAX_RECEIVED
    assert inbox.dropped_qos0 == 10
