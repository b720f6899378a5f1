"""Unit tests of :mod:`station.domain.alarm_history`: folding snapshots, figures and CSV.

Snapshots are built directly as the engine emits them (one per state change), so each test reads
as the alarm's life: raise → acknowledge → clear, raise → clear, escalation. States the running
version of the engine may not have yet (``escalated``) are passed by value: the history compares
states by value, so it handles them either way.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from typing import cast

import pytest

from station.domain.alarm_history import CSV_COLUMNS, AlarmHistory, episodes_csv, rfc3339
from station.domain.alarms import Alarm, AlarmKind, AlarmState, Priority

T0 = 1738411200.0  # 2025-02-01T12:00:00Z
T0_ISO = "2025-02-01T12:00:00.000Z"


def state(value: str) -> AlarmState:
    """The engine's state of that value, or the bare value if this engine has no such state."""
    try:
        return AlarmState(value)
    except ValueError:
        return cast(AlarmState, value)


def raised(
    alarm_id: str = "a1",
    *,
    bed: str = "Bed 1",
    at: float = T0,
    priority: Priority = Priority.MEDIUM,
    device_id: str = "dev-1",
    message: str = "HR 134 > 120",
) -> Alarm:
    return Alarm(
        alarm_id=alarm_id,
        device_id=device_id,
        bed=bed,
        kind=AlarmKind.PHYSIOLOGICAL,
        parameter="heartrate",
        priority=priority,
        state=AlarmState.ACTIVE,
        value=134.0,
        limit=120.0,
        message=message,
        raised_at=at,
        at=at,
    )


def then(
    alarm: Alarm, new_state: str, at: float, by: str | None = None, priority: Priority | None = None
) -> Alarm:
    """The next snapshot of the same alarm, as the engine makes it with ``replace``."""
    return replace(alarm, state=state(new_state), at=at, by=by, priority=priority or alarm.priority)


def history_of(*alarms: Alarm) -> AlarmHistory:
    history = AlarmHistory()
    for alarm in alarms:
        history.add(alarm)
    return history


def test_raise_ack_clear_folds_into_one_episode() -> None:
    a = raised()
    acked = then(a, "acknowledged", T0 + 12.5, by="nurse.kim")
    history = history_of(a, acked, then(acked, "cleared", T0 + 60.0, by="nurse.kim"))

    [episode] = history.episodes()
    assert episode.alarm_id == "a1"
    assert episode.raised_at == T0
    assert episode.acknowledged_at == T0 + 12.5
    assert episode.acknowledged_by == "nurse.kim"
    assert episode.cleared_at == T0 + 60.0
    assert episode.time_to_ack_s == 12.5
    assert episode.duration_s == 60.0
    assert episode.escalated_at is None


def test_raise_then_clear_without_ack_leaves_ack_empty() -> None:
    a = raised()
    history = history_of(a, then(a, "cleared", T0 + 8.0))

    [episode] = history.episodes()
    assert episode.acknowledged_at is None
    assert episode.acknowledged_by is None
    assert episode.time_to_ack_s is None
    assert episode.duration_s == 8.0


def test_open_episode_has_no_duration() -> None:
    [episode] = history_of(raised()).episodes()
    assert episode.cleared_at is None
    assert episode.duration_s is None


def test_escalation_time_and_most_urgent_priority_are_kept() -> None:
    a = raised(priority=Priority.MEDIUM)
    escalated = then(a, "escalated", T0 + 30.0, priority=Priority.HIGH)
    acked = then(escalated, "acknowledged", T0 + 45.0, by="dr.ng")
    history = history_of(a, escalated, acked, then(acked, "cleared", T0 + 90.0, by="dr.ng"))

    [episode] = history.episodes()
    assert episode.escalated_at == T0 + 30.0
    assert episode.priority == Priority.HIGH
    assert episode.acknowledged_by == "dr.ng"
    assert episode.time_to_ack_s == 45.0


def test_cleared_by_the_acknowledgement_keeps_both_times() -> None:
    # A latched alarm whose condition is gone clears when acknowledged: one snapshot, both facts.
    a = raised()
    history = history_of(a, then(a, "cleared", T0 + 20.0, by="nurse.kim"))

    [episode] = history.episodes()
    assert episode.acknowledged_at == T0 + 20.0
    assert episode.acknowledged_by == "nurse.kim"
    assert episode.cleared_at == T0 + 20.0


def test_repeated_snapshots_are_idempotent_and_first_ack_wins() -> None:
    a = raised()
    acked = then(a, "acknowledged", T0 + 5.0, by="nurse.kim")
    history = history_of(a, a, acked, acked, then(a, "acknowledged", T0 + 9.0, by="other"))
    first = history.episodes()
    assert history.add(acked) == first[0]

    assert len(history) == 1
    assert first[0].acknowledged_at == T0 + 5.0
    assert first[0].acknowledged_by == "nurse.kim"


def test_time_to_ack_stats() -> None:
    history = AlarmHistory()
    for i, delay in enumerate([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]):
        a = raised(f"a{i}", at=T0 + i)
        history.add(then(a, "acknowledged", T0 + i + delay, by="nurse.kim"))
    history.add(raised("never-acked", at=T0 + 99))
    history.add(then(raised("b1", bed="Bed 2"), "acknowledged", T0 + 7.0, by="nurse.kim"))

    assert history.time_to_ack_stats(bed="Bed 1") == {
        "count": 10,
        "median": 55.0,
        "p90": 90.0,
        "max": 100.0,
    }
    assert history.time_to_ack_stats(bed="Bed 2") == {
        "count": 1,
        "median": 7.0,
        "p90": 7.0,
        "max": 7.0,
    }
    assert history.time_to_ack_stats()["count"] == 11
    assert history.time_to_ack_stats(bed="Bed 9") == {
        "count": 0,
        "median": None,
        "p90": None,
        "max": None,
    }


def test_per_bed_per_hour_counts_the_window_only() -> None:
    now = T0 + 10_000.0
    history = history_of(
        *(raised(f"a{i}", at=now - 600.0 * i) for i in range(4)),  # 4 in the last 2 h
        raised("old", at=now - 7_201.0),  # just before the window
        raised("future", at=now + 1.0),  # after now: not yet
        raised("b1", bed="Bed 2", at=now - 3_600.0),
    )

    assert history.per_bed_per_hour(now, window_s=7_200.0) == {"Bed 1": 2.0, "Bed 2": 0.5}
    assert history.per_bed_per_hour(now + 1.0e6) == {}
    with pytest.raises(ValueError, match="window_s"):
        history.per_bed_per_hour(now, window_s=0)


def test_filters_and_newest_first() -> None:
    history = history_of(
        raised("a1", at=T0),
        raised("b1", bed="Bed 2", at=T0 + 10),
        raised("a2", at=T0 + 20),
        raised("a3", at=T0 + 30),
    )

    assert [e.alarm_id for e in history.episodes()] == ["a3", "a2", "b1", "a1"]
    assert [e.alarm_id for e in history.episodes(bed="Bed 1")] == ["a3", "a2", "a1"]
    assert [e.alarm_id for e in history.episodes(since=T0 + 10)] == ["a3", "a2", "b1"]
    assert [e.alarm_id for e in history.episodes(until=T0 + 20)] == ["b1", "a1"]
    assert [e.alarm_id for e in history.episodes("Bed 1", T0 + 10, T0 + 30)] == ["a2"]
    assert history.beds() == ["Bed 1", "Bed 2"]


def test_oldest_episodes_are_forgotten_when_full() -> None:
    history = AlarmHistory(max_episodes=3)
    for i in range(5):
        history.add(raised(f"a{i}", at=T0 + i))

    assert [e.alarm_id for e in history.episodes()] == ["a4", "a3", "a2"]
    with pytest.raises(ValueError, match="max_episodes"):
        AlarmHistory(max_episodes=0)


def test_csv_columns_and_values() -> None:
    a = raised(priority=Priority.HIGH)
    acked = then(a, "acknowledged", T0 + 12.5, by="nurse.kim")
    history = history_of(a, acked, then(acked, "cleared", T0 + 60.25, by="nurse.kim"))
    history.add(raised("open", bed="Bed 2", at=T0 + 100))

    rows = list(csv.reader(io.StringIO(history.to_csv(history.episodes()))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3
    still_open = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert still_open["alarm_id"] == "open"
    for column in ("acknowledged_at", "acknowledged_by", "time_to_ack_s", "cleared_at"):
        assert still_open[column] == ""
    assert still_open["duration_s"] == ""
    done = dict(zip(CSV_COLUMNS, rows[2], strict=True))
    assert done == {
        "alarm_id": "a1",
        "bed": "Bed 1",
        "device_id": "dev-1",
        "kind": "physiological",
        "parameter": "heartrate",
        "priority": "high",
        "message": "HR 134 > 120",
        "raised_at": T0_ISO,
        "acknowledged_at": "2025-02-01T12:00:12.500Z",
        "acknowledged_by": "nurse.kim",
        "time_to_ack_s": "12.500",
        "escalated_at": "",
        "cleared_at": "2025-02-01T12:01:00.250Z",
        "duration_s": "60.250",
        "comments": "",
    }


def test_csv_neutralises_formulas_in_untrusted_text() -> None:
    a = raised(bed="@SUM(A1)", device_id='=HYPERLINK("http://x")', message='+1, "quoted"\nnext')
    history = history_of(a, then(a, "acknowledged", T0 + 1, by="-nurse"))

    reader = csv.DictReader(io.StringIO(episodes_csv(history.episodes())))
    [row] = list(reader)
    assert row["bed"] == "'@SUM(A1)"
    assert row["device_id"] == '\'=HYPERLINK("http://x")'
    assert row["message"] == '\'+1, "quoted"\nnext'
    assert row["acknowledged_by"] == "'-nurse"
    assert row["alarm_id"] == "a1"  # harmless text stays as it is


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(T0) == T0_ISO
    assert rfc3339(T0 + 0.0004) == T0_ISO
    assert rfc3339(None) == ""
