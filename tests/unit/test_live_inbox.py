"""The live inbox: a budget per device, latest wins past it, bounded whatever the ids."""

from __future__ import annotations

from station.services.ingest.live_inbox import (
    Flooding,
    LiveInbox,
    LiveItem,
    source_key,
    split_source,
)


def _item(n: int) -> LiveItem:
    return LiveItem("healthcare/devices/d/vitals", str(n).encode(), float(n))


def test_within_budget_every_message_is_queued_in_order_and_wakes_once() -> None:
    inbox = LiveInbox(budget_hz=5)
    wakes = [inbox.put("device:a", _item(n), now=0.1 * n) for n in range(5)]
    assert wakes == [True, False, False, False, False]
    assert [i.payload for i in inbox.take()] == [b"0", b"1", b"2", b"3", b"4"]
    assert inbox.take() == []
    assert inbox.put("device:a", _item(9), now=1.05)  # its next second wakes the core again


def test_past_the_budget_the_newest_replaces_the_last_queued() -> None:
    inbox = LiveInbox(budget_hz=3)
    for n in range(100):
        inbox.put("device:flood", _item(n), now=0.001 * n)
    inbox.put("device:quiet", _item(1000), now=0.2)
    taken = inbox.take()
    flood = [i.payload for i in taken if i.received_at < 1000]
    assert flood == [b"0", b"1", b"99"]  # its share, then the newest
    assert [i.payload for i in taken if i.received_at == 1000] == [b"1000"]
    assert inbox.excess == 97
    assert inbox.flooding(now=0.5) == [Flooding("flood", 100, True)]
    # Drained within the same second: nothing more of the flooder until its next second.
    assert not inbox.put("device:flood", _item(200), now=0.6)
    assert inbox.take() == []
    inbox.put("device:flood", _item(300), now=1.2)
    assert [i.payload for i in inbox.take()] == [b"300"]
    assert inbox.flooding(now=1.5) == [Flooding("flood", 101, True)]  # the last full second
    assert inbox.flooding(now=3.5) == []


def test_sources_are_bounded_and_random_ids_evict_the_oldest() -> None:
    inbox = LiveInbox(budget_hz=5, max_sources=50)
    for n in range(10_000):
        inbox.put(source_key(f"rogue-{n}", False), _item(n), now=0.0)
    assert len(inbox) == 50
    assert len(inbox.take()) == 50
    assert inbox.evicted == 9_950


def test_a_claimed_id_is_another_source_than_the_proven_device() -> None:
    assert source_key("bed-1", True) != source_key("bed-1", False)
    assert split_source(source_key("bed-1", False)) == ("bed-1", False)
    assert split_source(source_key("bed-1", True)) == ("bed-1", True)
