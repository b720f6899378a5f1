"""Tests of the audit trail's filters: the answers an auditor's questions depend on.

Records are built by hand as plain dicts (the filter must not trust their shape), with times
from :func:`iso_ms` as the writer stamps them.
"""

from __future__ import annotations

from typing import Any

import pytest

from station.domain.audit.query import (
    AuditFilter,
    action_groups,
    beds,
    record_time,
    select,
    users,
)
from station.domain.timefmt import iso_ms

T0 = 1795341600.0  # 2026-11-22T10:00:00Z


def rec(
    seq: int,
    at: float | str = T0,
    actor: str = "station",
    action: str = "session.login",
    target: str = "",
    **details: Any,
) -> dict[str, Any]:
    ts = at if isinstance(at, str) else iso_ms(at)
    return {
        "seq": seq,
        "ts": ts,
        "actor": actor,
        "role": "nurse",
        "action": action,
        "target": target,
        "outcome": "success",
        "details": details,
    }


def seqs(records: list[Any]) -> list[int]:
    return [r["seq"] for r in records]


@pytest.fixture
def trail() -> list[dict[str, Any]]:
    return [
        rec(1, T0, "nurse.kim", "session.login", "ward-1"),
        rec(2, T0 + 60, "Nurse.Kim", "alarm.acknowledge", "a-17", bed="Bed 3"),
        rec(3, T0 + 120, "dr.lee", "alarm.limits_change", "Bed 3"),
        rec(4, T0 + 180, "admin", "alarms.export", "/tmp/x.csv"),
        rec(5, T0 + 240, "admin", "device.reassign", "dev-9", bed="Bed 5", **{"from": "Bed 2"}),
        rec(6, T0 + 300, "nurse.kim", "patient.transfer", "Bed 7", to="bed 8"),
        rec(7, "yesterday", "mallory", "alarm.raise", "Bed 3"),
    ]


def test_no_filter_keeps_every_record_in_trail_order(trail: list[dict[str, Any]]) -> None:
    assert AuditFilter().empty
    assert seqs(select(trail, AuditFilter())) == [1, 2, 3, 4, 5, 6, 7]


def test_since_is_inclusive_and_until_exclusive(trail: list[dict[str, Any]]) -> None:
    flt = AuditFilter(since=T0 + 60, until=T0 + 180)
    assert flt.bounded
    assert seqs(select(trail, flt)) == [2, 3]
    # Two windows that meet share no record and lose none.
    first, second = AuditFilter(until=T0 + 120), AuditFilter(since=T0 + 120)
    assert seqs(select(trail, first)) + seqs(select(trail, second)) == [1, 2, 3, 4, 5, 6]


def test_millisecond_times_compare_exactly() -> None:
    trail = [rec(1, T0 + 0.123), rec(2, T0 + 0.124)]
    assert seqs(select(trail, AuditFilter(since=T0 + 0.124))) == [2]
    assert seqs(select(trail, AuditFilter(until=T0 + 0.124))) == [1]


def test_unreadable_time_is_kept_only_without_a_time_bound(
    trail: list[dict[str, Any]],
) -> None:
    assert 7 in seqs(select(trail, AuditFilter(user="mallory")))
    assert select(trail, AuditFilter(user="mallory", since=0.0)) == []
    assert select(trail, AuditFilter(user="mallory", until=T0 * 2)) == []


def test_user_matches_whole_name_case_insensitively(trail: list[dict[str, Any]]) -> None:
    assert seqs(select(trail, AuditFilter(user="NURSE.KIM"))) == [1, 2, 6]
    assert select(trail, AuditFilter(user="nurse")) == []  # not a substring search
    assert select(trail, AuditFilter(user="kim")) == []


def test_bed_matches_target_and_detail_fields(trail: list[dict[str, Any]]) -> None:
    assert seqs(select(trail, AuditFilter(bed="Bed 3"))) == [2, 3, 7]  # details, target, target
    assert seqs(select(trail, AuditFilter(bed="bed 5"))) == [5]  # details "bed"
    assert seqs(select(trail, AuditFilter(bed="BED 2"))) == [5]  # details "from"
    assert seqs(select(trail, AuditFilter(bed="Bed 8"))) == [6]  # details "to"
    assert seqs(select(trail, AuditFilter(bed="Bed 7"))) == [6]
    assert select(trail, AuditFilter(bed="Bed")) == []  # whole label only


def test_action_is_a_whole_name_or_a_dotted_prefix(trail: list[dict[str, Any]]) -> None:
    assert seqs(select(trail, AuditFilter(action="alarm"))) == [2, 3, 7]
    assert seqs(select(trail, AuditFilter(action="alarms"))) == [4]
    assert seqs(select(trail, AuditFilter(action="alarm.acknowledge"))) == [2]
    assert select(trail, AuditFilter(action="alarm.ack")) == []  # "alarm.ack" is no prefix
    assert select(trail, AuditFilter(action="alar")) == []


def test_criteria_combine_with_and(trail: list[dict[str, Any]]) -> None:
    flt = AuditFilter(since=T0, until=T0 + 3600, user="nurse.kim", bed="Bed 3", action="alarm")
    assert seqs(select(trail, flt)) == [2]


def test_records_of_the_wrong_shape_do_not_match_and_do_not_raise() -> None:
    broken: list[dict[str, Any]] = [
        {"seq": 1, "ts": 12, "actor": None, "action": 5, "target": ["Bed 3"], "details": "x"},
        {"seq": 2},
    ]
    flt = AuditFilter(since=0.0, user="x", bed="Bed 3", action="alarm")
    for field in ("since", "user", "bed", "action"):
        only = AuditFilter(**{field: getattr(flt, field)})
        assert select(broken, only) == []
    assert users(broken) == []
    assert beds(broken) == []
    assert action_groups(broken) == []


def test_users_are_distinct_case_insensitively_in_natural_order(
    trail: list[dict[str, Any]],
) -> None:
    assert users(trail) == ["admin", "dr.lee", "mallory", "nurse.kim"]
    assert users([rec(1, actor="user10"), rec(2, actor="user9"), rec(3, actor="")]) == [
        "user9",
        "user10",
    ]


def test_beds_come_from_details_and_from_bed_like_targets(trail: list[dict[str, Any]]) -> None:
    # Bed 7 only as a target, but it looks like a bed label; dev-9, a-17, ward-1 and the path
    # do not, so they are not offered (the filter still takes them when typed).
    assert beds(trail) == ["Bed 2", "Bed 3", "Bed 5", "Bed 7", "bed 8"]
    assert beds([rec(1, target="Bed 10"), rec(2, target="Bed 9")]) == ["Bed 9", "Bed 10"]
    # A target named as a bed elsewhere counts even when it does not look like one.
    odd = [rec(1, target="Isolation"), rec(2, target="dev-1", bed="Isolation")]
    assert beds(odd) == ["Isolation"]


def test_action_groups_list_each_group_before_its_members(trail: list[dict[str, Any]]) -> None:
    assert action_groups(trail) == [
        "alarm",
        "alarm.acknowledge",
        "alarm.limits_change",
        "alarm.raise",
        "alarms",
        "alarms.export",
        "device",
        "device.reassign",
        "patient",
        "patient.transfer",
        "session",
        "session.login",
    ]
    assert action_groups([rec(1, action="a.b.c"), rec(2, action="a-b")]) == [
        "a",
        "a.b",
        "a.b.c",
        "a-b",
    ]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-22T10:00:00.123Z", T0 + 0.123),
        ("2026-11-22T11:00:00.123+01:00", T0 + 0.123),
        ("2026-11-22T10:00:00", T0),  # no offset: the trail's zone is UTC
        ("yesterday", None),
        ("", None),
        ("2026-13-01T00:00:00Z", None),
    ],
)
def test_record_time(ts: str, expected: float | None) -> None:
    assert record_time({"ts": ts}) == (pytest.approx(expected) if expected is not None else None)


def test_record_time_of_a_missing_or_non_text_ts_is_none() -> None:
    assert record_time({}) is None
    assert record_time({"ts": 1795341600}) is None
