"""The per-device order of messages: duplicates, late data, seq gaps and counter resets."""

from __future__ import annotations

from station.domain.sequence import REMEMBERED, Order, SequenceTracker, Verdict

T0 = 1_700_000_000.0


def test_in_order_messages_are_new_without_gaps() -> None:
    tracker = SequenceTracker()
    verdicts = [tracker.observe("mon-1", T0 + i, i) for i in range(1, 6)]
    assert verdicts == [Verdict(Order.NEW)] * 5
    assert (tracker.duplicates, tracker.late, tracker.missing) == (0, 0, 0)


def test_redelivery_is_a_duplicate_however_often_it_comes() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, 1)
    tracker.observe("mon-1", T0 + 1, 2)
    assert tracker.observe("mon-1", T0, 1).order is Order.DUPLICATE
    assert tracker.observe("mon-1", T0 + 1, 2).order is Order.DUPLICATE
    assert tracker.observe("mon-1", T0 + 1, 2).order is Order.DUPLICATE
    assert tracker.duplicates == 3
    # The next real message continues the counter without a gap.
    assert tracker.observe("mon-1", T0 + 2, 3) == Verdict(Order.NEW)


def test_a_different_message_in_the_same_millisecond_is_new() -> None:
    """A coarse device clock must not hide a new value: seq or values tell them apart."""
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, 1, (("heartrate", 70.0),))
    assert tracker.observe("mon-1", T0, 2, (("heartrate", 70.0),)) == Verdict(Order.NEW)
    assert tracker.observe("mon-1", T0, None, (("heartrate", 71.0),)).order is Order.NEW
    assert tracker.observe("mon-1", T0, None, (("heartrate", 72.0),)).order is Order.NEW
    assert tracker.observe("mon-1", T0, None, (("heartrate", 72.0),)).order is Order.DUPLICATE


def test_devices_are_independent() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, 1)
    assert tracker.observe("mon-2", T0, 1) == Verdict(Order.NEW)


def test_a_jump_in_seq_reports_how_many_are_missing() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, 10)
    verdict = tracker.observe("mon-1", T0 + 5, 15)
    assert verdict == Verdict(Order.NEW, missing=4, after_seq=10)
    assert tracker.missing == 4
    tracker.observe("mon-1", T0 + 9, 20)
    assert tracker.missing == 8


def test_an_older_message_that_was_never_seen_is_late_not_new() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0 + 10, 10)
    verdict = tracker.observe("mon-1", T0 + 3, 3)
    assert verdict == Verdict(Order.LATE)
    assert tracker.late == 1
    # It does not move the newest point: the next in-order message is judged against seq 10.
    assert tracker.observe("mon-1", T0 + 11, 11) == Verdict(Order.NEW)
    # And the late one, delivered again, is a duplicate.
    assert tracker.observe("mon-1", T0 + 3, 3).order is Order.DUPLICATE


def test_counter_going_down_with_newer_time_is_a_device_restart() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, 500)
    verdict = tracker.observe("mon-1", T0 + 1, 1)
    assert verdict == Verdict(Order.NEW, after_seq=500, reset=True)
    assert tracker.missing == 0
    assert tracker.observe("mon-1", T0 + 2, 2) == Verdict(Order.NEW)


def test_an_absurd_jump_is_a_reset_not_millions_missing() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, 1)
    verdict = tracker.observe("mon-1", T0 + 1, 2**62)
    assert verdict.reset
    assert verdict.missing == 0
    assert tracker.missing == 0


def test_messages_without_seq_are_ordered_by_time_only() -> None:
    tracker = SequenceTracker()
    assert tracker.observe("mon-1", T0, None) == Verdict(Order.NEW)
    assert tracker.observe("mon-1", T0 + 1, 7) == Verdict(Order.NEW)
    assert tracker.observe("mon-1", T0 + 2, None) == Verdict(Order.NEW)
    assert tracker.observe("mon-1", T0 + 1, 7).order is Order.DUPLICATE


def test_memory_is_bounded_and_old_replays_with_seq_are_late() -> None:
    tracker = SequenceTracker()
    n = REMEMBERED + 100
    for i in range(n):
        tracker.observe("mon-1", T0 + i, i)
    stream = tracker._streams["mon-1"]
    assert len(stream.seen) == REMEMBERED == len(stream.order)
    # The first message is no longer remembered, but a replay of it is still not live.
    assert tracker.observe("mon-1", T0, 0).order is Order.LATE


def test_forget_starts_a_device_afresh() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0 + 10, 10)
    tracker.forget("mon-1")
    assert tracker.observe("mon-1", T0, 1) == Verdict(Order.NEW)


def test_a_clock_stepping_back_with_seq_moving_on_is_new_not_late() -> None:
    """NTP corrects a device clock that ran 4 min fast: its next values must still be live."""
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0 + 240, 1)
    verdict = tracker.observe("mon-1", T0 + 1, 2)
    assert verdict == Verdict(Order.NEW, clock_back=True)
    assert tracker.observe("mon-1", T0 + 2, 3) == Verdict(Order.NEW)
    assert tracker.observe("mon-1", T0 + 5, 6) == Verdict(Order.NEW, missing=2, after_seq=3)
    assert tracker.late == 0


def test_without_seq_an_older_time_is_new_because_it_may_be_a_clock_step() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0 + 240, None, 1)
    assert tracker.observe("mon-1", T0 + 1, None, 2) == Verdict(Order.NEW, clock_back=True)
    assert tracker.observe("mon-1", T0 + 2, None, 3) == Verdict(Order.NEW)
    assert tracker.observe("mon-1", T0 + 1, None, 2).order is Order.DUPLICATE


# -- untrusted ordering (issue 13) ------------------------------------------------------------


def test_a_forged_huge_seq_is_suspect_and_moves_nothing() -> None:
    tracker = SequenceTracker()
    assert tracker.observe("mon-1", T0, 1, now=T0).order is Order.NEW
    forged = tracker.observe("mon-1", T0 + 180, 2**63 - 1, ("forged",), now=T0 + 1)
    assert forged.order is Order.SUSPECT
    assert forged.suspect == "sequence"
    genuine = tracker.observe("mon-1", T0 + 1, 2, now=T0 + 1)
    assert genuine == Verdict(Order.NEW)  # not late: the forgery moved nothing
    assert tracker.observe("mon-1", T0 + 180, 2**63 - 1, ("forged",), now=T0 + 2).order is (
        Order.DUPLICATE
    )


def test_a_counter_that_really_jumped_is_followed_after_one_more_message() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, 5, now=T0)
    assert tracker.observe("mon-1", T0 + 1, 5_000_000, now=T0 + 1).order is Order.SUSPECT
    followed = tracker.observe("mon-1", T0 + 2, 5_000_001, now=T0 + 2)
    assert followed.order is Order.NEW
    assert followed.reset
    assert tracker.observe("mon-1", T0 + 3, 5_000_002, now=T0 + 3) == Verdict(Order.NEW)


def test_a_plausible_jump_after_a_long_silence_is_a_gap_not_suspect() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, 1, now=T0)
    verdict = tracker.observe("mon-1", T0 + 3600, 3601, now=T0 + 3600)
    assert verdict == Verdict(Order.NEW, 3599, 1)


def test_a_device_time_ahead_is_shown_but_cannot_make_later_messages_late() -> None:
    tracker = SequenceTracker()
    tracker.observe("mon-1", T0, None, ("a",), now=T0)
    ahead = tracker.observe("mon-1", T0 + 240, None, ("b",), now=T0 + 1)
    assert ahead.order is Order.NEW
    assert ahead.suspect == "ahead"
    assert tracker.observe("mon-1", T0 + 2, None, ("c",), now=T0 + 2) == Verdict(Order.NEW)
    # With seq: the flagged message moves the counter, not the newest time.
    tracker.observe("mon-2", T0, 1, now=T0)
    assert tracker.observe("mon-2", T0 + 240, 2, now=T0 + 1).suspect == "ahead"
    assert tracker.observe("mon-2", T0 + 2, 3, now=T0 + 2) == Verdict(Order.NEW)


def test_streams_are_bounded_whatever_the_number_of_ids() -> None:
    tracker = SequenceTracker(max_streams=100)
    for i in range(10_000):
        tracker.observe(f"rogue-{i}", T0, 1, now=T0)
    assert len(tracker) == 100
    tracker.observe("rogue-9999", T0 + 1, 2, now=T0 + 1)  # the newest are kept
    assert tracker.observe("rogue-9999", T0 + 1, 2, now=T0 + 1).order is Order.DUPLICATE


def test_a_first_message_ahead_of_the_station_cannot_make_the_next_ones_late() -> None:
    tracker = SequenceTracker()
    forged = tracker.observe("mon-1", T0 + 240, 2**40, ("forged",), now=T0)
    assert forged.suspect == "ahead"
    assert tracker.observe("mon-1", T0 + 1, 7, now=T0 + 1).order is Order.NEW
    assert tracker.observe("mon-1", T0 + 2, 8, now=T0 + 2) == Verdict(Order.NEW)
