"""The HL7 outbox on disk: owner-only with its schema version, a report queued once whatever
happens, cursors moved with the reports they produced, alarms sent before observations, answers
and consent withdrawals kept, and a file from a newer release refused."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.domain.hl7.codes import AlarmEvent
from station.domain.hl7.content import AlarmReport, DeviceValues, Metric, ObservationReport
from station.services.hospital.hl7_outbox import (
    KEEP_ACKED_S,
    OUTBOX_FILE,
    REJECTED,
    WITHHELD,
    Outbox,
)
from station.services.storage.sqlite_wal import StoreVersionError

T0 = 1_790_000_000.0


def _observation(cid: str, patient: str = "p1") -> ObservationReport:
    device = DeviceValues("mon-1", (Metric("heartrate", 70.0),), 1)
    return ObservationReport(cid, T0, "Bed 1", patient, T0 - 60, T0, (device,))


def _alarm(cid: str, event: AlarmEvent = AlarmEvent.RAISE) -> AlarmReport:
    return AlarmReport(cid, T0, "Bed 2", None, "a1", event, "mon-2", "physiological",
                       "heartrate", "high", "HR 150 > 120", T0, T0, None, False)  # fmt: skip


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "data" / OUTBOX_FILE)
    box.open()
    return box


def test_the_file_is_owner_only_and_records_its_schema(outbox: Outbox) -> None:
    assert stat.S_IMODE(outbox.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(outbox.path.parent.stat().st_mode) == 0o700
    conn = sqlite3.connect(outbox.path)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            "1",
        )
    finally:
        conn.close()


def test_a_report_is_queued_once_and_its_cursor_moves_with_it(outbox: Outbox) -> None:
    assert outbox.add([_observation("o1"), _alarm("a1")], {"observations": "60.0"}) == 2
    assert outbox.add([_observation("o1"), _alarm("a1")], {"observations": "120.0"}) == 0
    assert (outbox.queued, outbox.cursor("observations"), outbox.cursor("alarms")) == (
        2, "120.0", None,
    )  # fmt: skip
    outbox.close()
    again = Outbox(outbox.path)
    again.open()
    assert again.queued == 2  # read back at open
    again.close()


def test_nothing_of_a_failed_transaction_is_kept(outbox: Outbox) -> None:
    def failing() -> Iterator[AlarmReport]:
        yield _alarm("a1")
        raise sqlite3.OperationalError("disk I/O error")  # the disk fails half-way

    with pytest.raises(sqlite3.OperationalError):
        outbox.add(failing(), {"alarms": "9"})
    assert (outbox.queued, outbox.cursor("alarms"), outbox.next()) == (0, None, None)


def test_alarms_go_before_observations_each_in_queue_order(outbox: Outbox) -> None:
    outbox.add([_observation("o1"), _alarm("a1"), _observation("o2"), _alarm("a2")])
    order = []
    while (item := outbox.next()) is not None:
        order.append(item.control_id)
        outbox.acked(item.row, T0)
    assert order == ["a1", "a2", "o1", "o2"]
    assert outbox.queued == 0
    outbox.add([_observation("o3"), _alarm("a3")])
    first = outbox.next(observations=False)
    assert first is not None
    outbox.acked(first.row, T0)
    assert outbox.next(observations=False) is None  # observations held (patients unknown)


def test_answers_quarantine_and_withdrawals_are_kept_then_pruned(outbox: Outbox) -> None:
    outbox.add([_alarm("a1"), _observation("o1", "p1"), _observation("o2", "p2")])
    item = outbox.next()
    assert item is not None
    outbox.attempted(item.row)
    outbox.rejected(item.row, T0, "AE", "unknown patient")
    assert outbox.withhold(["p1", "p9"], T0) == {"p1": 1}
    assert (outbox.queued, outbox.count(REJECTED), outbox.count(WITHHELD)) == (1, 1, 1)
    nxt = outbox.next()
    assert nxt is not None
    assert nxt.control_id == "o2"
    outbox.acked(nxt.row, T0)
    assert outbox.add([_observation("o2", "p2")]) == 0  # acknowledged: recognised, not queued
    outbox.add((), alarms={"a1": (T0, frozenset({AlarmEvent.RAISE}))})
    assert outbox.open_alarms() == {"a1": (T0, frozenset({AlarmEvent.RAISE}))}
    assert outbox.prune(T0 + KEEP_ACKED_S + 1) == 1  # the acknowledged row; the rest stay longer
    assert outbox.add([_observation("o2", "p2")]) == 1
    outbox.add((), alarms={"a1": None})
    assert outbox.open_alarms() == {}


def test_a_file_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / OUTBOX_FILE
    box = Outbox(path)
    box.open()
    box.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreVersionError, match="newer release"):
        Outbox(path).open()
