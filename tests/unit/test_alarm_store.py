"""The alarm store and the history's comments: what the core writes reads back the same, with
its comments, by period and bed; a year's horizon is kept; a comment is checked as typed."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from station.domain.alarm_history import AlarmComment, AlarmEpisode, AlarmHistory, comment_of
from station.domain.alarms import AlarmKind, Priority
from station.services.storage.alarm_store import AlarmStore

T0 = 1_790_000_000.0


def episode(alarm_id: str, bed: str, raised: float, **changes: Any) -> AlarmEpisode:
    base = AlarmEpisode(alarm_id, bed, "mon-1", AlarmKind.PHYSIOLOGICAL, "heartrate",
                        Priority.HIGH, "HR 150 > 120", raised)  # fmt: skip
    return replace(base, **changes)


def test_episodes_and_comments_read_back_by_period_and_bed(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path / "alarms.sqlite", clock=lambda: T0)
    store.open()
    store.save([episode("a", "Bed 1", T0 - 100), episode("b", "Bed 2", T0 - 50)])
    store.save([episode("a", "Bed 1", T0 - 100, acknowledged_at=T0 - 90, acknowledged_by="ann")])
    note = AlarmComment(T0 - 80, "ann", "artefact", "probe")
    store.add_comment("a", note)
    store.add_comment("a", note)  # told twice: kept once
    store.close()
    again = AlarmStore(tmp_path / "alarms.sqlite", clock=lambda: T0)
    again.open()
    both = again.load(T0 - 200, T0)
    assert [e.alarm_id for e in both] == ["b", "a"]  # newest first
    a = both[1]
    assert (a.acknowledged_by, a.time_to_ack_s, a.comments) == ("ann", 10.0, (note,))
    assert [e.alarm_id for e in again.load(T0 - 200, T0, bed="Bed 2")] == ["b"]
    assert again.load(T0 - 60, T0 - 55) == []
    assert (tmp_path / "alarms.sqlite").stat().st_mode & 0o777 == 0o600
    again.close()


def test_episodes_older_than_the_horizon_go_at_open(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path / "alarms.sqlite", keep_s=1000, clock=lambda: T0)
    store.open()
    store.save([episode("old", "Bed 1", T0 - 5000), episode("new", "Bed 1", T0 - 10)])
    store.add_comment("old", AlarmComment(T0 - 4000, "ann", "other"))
    store.close()
    store.open()
    assert [e.alarm_id for e in store.load(0, T0 + 1)] == ["new"]
    store.close()


def test_a_closed_store_refuses_writes_with_a_database_error(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path / "alarms.sqlite")
    with pytest.raises(sqlite3.Error):
        store.save([episode("a", "Bed 1", T0)])


def test_comments_are_checked_and_merged_into_the_history() -> None:
    with pytest.raises(ValueError, match="unknown mark"):
        comment_of(T0, "ann", "nonsense", "")
    typed = comment_of(T0, "ann", "suction", "line one\nline\ttwo  " + "x" * 400)
    assert typed.text.startswith("line one line two x")
    assert len(typed.text) == 300
    history = AlarmHistory()
    assert history.comment("nope", typed) is None
    history.merge([episode("a", "Bed 1", T0 - 10)])
    history.comment("a", typed)
    stored = episode("a", "Bed 1", T0 - 10, comments=(AlarmComment(T0 - 5, "bo", "artefact"),))
    assert history.merge([stored, episode("b", "Bed 2", T0 - 20)]) == 1
    merged = history.episodes(bed="Bed 1")[0]
    assert [c.by for c in merged.comments] == ["bo", "ann"]
    assert merged.comment_text.startswith("artefact (bo); suction: line one")
