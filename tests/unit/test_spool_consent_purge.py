"""A withdrawn storage consent reaches the points already spooled: held back at once, then purged.

The spool keeps every point until the historian has it; a consent withdrawn during an outage used
to stop only the *next* points of that bed, while the patient's points already spooled still went
out when the historian came back. Here: the spool's ``bed`` column (schema 3, read from the line
as line protocol, never by a substring), :meth:`Spool.withhold` and :meth:`Spool.purge_step`, a
spool of schema 2 migrated, and the core's group commit turning a new bed policy table
(:class:`BedPolicies` with its withheld stays) into a purge audited as ``spool.purge``.

Real SQLite files in ``tmp_path``, the clock injected; no Qt, no network.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from station.config.settings import from_mapping
from station.domain.clock import StationClock
from station.domain.lineprotocol import line
from station.domain.patients.policies import BedPolicies
from station.domain.patients.records import WithheldStay
from station.domain.ward import BedPolicy
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.group_commit import GroupCommit
from station.services.ingest.historian import Historian
from station.services.storage.spool import Row, Spool
from station.services.storage.spool_schema import SCHEMA_VERSION, bed_key
from tests.fakes import FakeClock

T0 = 1_738_411_200.0
PATIENT = "a" * 32


def point(bed: str, n: int, device: str = "") -> Row:
    """A vitals point of ``bed`` as the record path writes it (device time ``n`` ms)."""
    device = device or f"mon-{bed[-1]}"
    tags = {"station": "ward-1", "device": device, "bed": bed}
    return (device, n, line("vitals", tags, {"heartrate": 60.0 + n % 40}, n))


def beds_pending(spool: Spool) -> list[tuple[str, int]]:
    """(bed, device time) of every point the historian would be handed, in order."""
    out = []
    for _, text in spool.pending(100_000):
        bed = bed_key(text).replace("\\ ", " ")
        out.append((bed, int(text.rsplit(" ", 1)[1])))
    return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def spool(tmp_path: Path, clock: FakeClock) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db", clock=clock)
    s.open()
    yield s
    s.close()


# -- the bed column --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bed"),
    [
        (point("Bed 1", 5)[2], r"Bed\ 1"),  # escaped as in the line: compare with escape_tag
        ("alarms,bed=Bed\\ 2,device=x,parameter=hr,priority=high value=1.0 5", r"Bed\ 2"),
        ("vitals,device=mon-1,station=s heartrate=1.0 5", ""),  # a device with no bed
        ("vitals heartrate=1.0 5", ""),
        # A device id holding ",bed=" is escaped, so it is never taken for the tag.
        (r"vitals,device=a\,bed\=Bed\ 9,station=s heartrate=1.0 5", ""),
        (r"vitals,bed=Bed\ 3,device=a\,bed\=Bed\ 9 heartrate=1.0 5", r"Bed\ 3"),
        (r"vitals,device=a\\,bed=Real heartrate=1.0 5", "Real"),  # an escaped backslash
        ("vitals,device=d heartrate=1.0,bed=2 5", ""),  # a field, not a tag
    ],
)
def test_the_bed_column_is_the_lines_bed_tag(text: str, bed: str) -> None:
    assert bed_key(text) == bed


def test_appended_points_carry_their_bed(spool: Spool) -> None:
    spool.append([point("Bed 1", 1), point("Bed 12", 2), ("mon-x", 3, "vitals,device=x f=1.0 3")])
    assert spool._conn is not None
    beds = [b for (b,) in spool._conn.execute("SELECT bed FROM points ORDER BY id")]
    assert beds == [r"Bed\ 1", r"Bed\ 12", ""]


# -- withhold and purge ----------------------------------------------------------------------


def test_withheld_points_are_held_back_at_once_then_purged(spool: Spool, clock: FakeClock) -> None:
    spool.append([point("Bed 1", 1), point("Bed 2", 2)])  # before the admission
    clock.now = T0 + 10  # the patient is admitted to Bed 1 at T0 + 5
    spool.append([point("Bed 1", 3), point("Bed 2", 4), point("Bed 12", 5)])
    clock.now = T0 + 20
    spool.append([point("Bed 1", 6), point("Bed 2", 7), point("Bed 1", 8)])
    first_of_stay = next(i for i, text in spool.pending(10) if text.endswith(" 3"))
    assert spool.mark_written([first_of_stay]) == 1  # the historian had taken it already
    assert spool.backlog()[0] == 7

    spool.withhold("Bed 1", T0 + 5, None, tag="stay")
    # Held back before any is deleted: the historian never gets them. Bed 1's point before the
    # stay (another patient's) and Bed 12's (a label that Bed 1 is a prefix of) stay.
    kept = [("Bed 1", 1), ("Bed 2", 2), ("Bed 2", 4), ("Bed 12", 5), ("Bed 2", 7)]
    assert beds_pending(spool) == kept
    assert spool.withholding == 1
    assert spool.purge_step() == [("stay", 2)]  # Bed 1's points 6 and 8
    assert spool.withholding == 0
    assert spool.backlog()[0] == 5
    assert beds_pending(spool) == kept
    assert spool._conn is not None
    left = [tuple(r) for r in spool._conn.execute("SELECT time_ms, written FROM points")]
    assert (3, 1) in left  # the written one is the historian's already: untouched
    # A point appended later is a later decision's (a consent given again): not covered.
    clock.now = T0 + 30
    spool.append([point("Bed 1", 9)])
    assert ("Bed 1", 9) in beds_pending(spool)


def test_a_closed_stay_leaves_the_beds_next_patient_alone(spool: Spool, clock: FakeClock) -> None:
    for t, n in ((T0, 1), (T0 + 10, 2), (T0 + 20, 3), (T0 + 30, 4)):
        clock.now = t
        spool.append([point("Bed 1", n)])
    spool.withhold("Bed 1", T0 + 10, T0 + 30)  # the stay ended at T0 + 30 (discharge)
    assert [n for _, n in beds_pending(spool)] == [1, 4]
    assert spool.purge_step() == [(None, 2)]


def test_a_long_backlog_is_purged_a_window_at_a_time_and_held_back_meanwhile(
    spool: Spool, clock: FakeClock
) -> None:
    spool.append([point("Bed 1" if n % 2 else "Bed 2", n) for n in range(100)])
    spool.withhold("Bed 1", T0, None, tag=1)
    spool.withhold("Bed 2", T0, T0 + 1, tag=2)  # two requests: one walk through the backlog
    steps = 0
    done: list[tuple[object, int]] = []
    while spool.withholding:
        assert spool.pending(1000) == []  # nothing of either goes out while the purge runs
        done += spool.purge_step(window=16)
        steps += 1
    assert steps == 7  # 100 ids, 16 a step
    assert sorted(done, key=lambda d: str(d[0])) == [(1, 50), (2, 50)]
    assert spool.backlog() == (0, None)


def test_nothing_to_purge_finishes_at_once(spool: Spool) -> None:
    spool.withhold("Bed 1", T0, None, tag="empty")
    assert spool.purge_step() == [("empty", 0)]
    spool.append([point("Bed 1", 1)])
    assert spool.mark_written([i for i, _ in spool.pending(1)]) == 1
    spool.withhold("Bed 1", T0, None, tag="written")
    assert spool.purge_step() == [("written", 0)]


# -- schema 2 → 3 ----------------------------------------------------------------------------

_SCHEMA_2 = """
CREATE TABLE points (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    device TEXT,
    seq INTEGER,
    line TEXT NOT NULL,
    written INTEGER NOT NULL DEFAULT 0,
    time_ms INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX points_key ON points(time_ms, line);
CREATE INDEX points_written ON points(written);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '2'), ('created_at', '1.0');
"""


def test_a_schema_2_spool_gains_the_bed_of_its_unwritten_points(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    conn = sqlite3.connect(db)
    conn.executescript(_SCHEMA_2)
    rows = [(T0, d, s, text, s) for d, s, text in [point("Bed 1", n) for n in range(4)]]
    conn.executemany(
        "INSERT INTO points(received_at, device, seq, line, time_ms) VALUES (?, ?, ?, ?, ?)", rows
    )
    conn.execute("UPDATE points SET written = 1 WHERE seq = 0")
    conn.commit()
    conn.close()

    spool = Spool(db, clock=FakeClock(T0 + 5))
    spool.open()
    try:
        assert spool._conn is not None
        meta = dict(spool._conn.execute("SELECT key, value FROM meta"))
        assert meta == {"schema_version": SCHEMA_VERSION, "created_at": "1.0"}
        assert SCHEMA_VERSION == "3"
        beds = [tuple(r) for r in spool._conn.execute("SELECT seq, bed FROM points ORDER BY id")]
        assert beds == [(0, None), (1, r"Bed\ 1"), (2, r"Bed\ 1"), (3, r"Bed\ 1")]
        assert spool._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        spool.withhold("Bed 1", T0, None)
        assert spool.purge_step() == [(None, 3)]
        assert spool.backlog() == (0, None)
    finally:
        spool.close()


# -- the core's group commit -----------------------------------------------------------------


@dataclass
class Audit:
    records: list[dict[str, Any]] = field(default_factory=list)
    fault: str | None = None

    def record(self, action: str, **fields: Any) -> None:
        self.records.append({"action": action, **fields})

    def of(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["action"] == action]


class Timer:
    """The core's commit timer, never firing: staged points wait for an explicit commit."""

    def isActive(self) -> bool:
        return True

    def start(self) -> None:
        pass


def group_commit(tmp_path: Path, clock: FakeClock, spool: Spool, audit: Audit) -> GroupCommit:
    settings = from_mapping({"station": {"data_dir": str(tmp_path / "data")}, "ward": {"beds": 4}})
    state = CoreState.build(settings, StationClock.single(clock), {}, audit)
    alarms = AlarmChanges(state, None, None, lambda _alarm: None)
    commits = GroupCommit(state, alarms, spool, None, None, None, batch=16)
    commits.timer = Timer()
    return commits


def policies(*withheld: WithheldStay) -> BedPolicies:
    return BedPolicies({"Bed 1": BedPolicy(store=not withheld, patient=PATIENT)}, withheld)


def test_a_withdrawal_purges_what_was_spooled_and_staged_and_is_audited(
    tmp_path: Path, spool: Spool, clock: FakeClock
) -> None:
    audit = Audit()
    commits = group_commit(tmp_path, clock, spool, audit)
    stay = WithheldStay("Bed 1", T0, None, PATIENT)
    commits.policy_changed(policies())  # admitted with storage consent
    clock.now = T0 + 1
    for n in range(3):
        commits.stage(point("Bed 1", n), None, None)
        commits.stage(point("Bed 2", 10 + n), None, None)
    commits.commit()
    commits.stage(point("Bed 1", 3), None, None)  # staged under the consent, not committed yet
    assert not audit.of("spool.purge")

    commits.policy_changed(policies(stay))  # withdrawn
    assert beds_pending(spool) == [("Bed 2", 10), ("Bed 2", 11), ("Bed 2", 12)]
    [record] = audit.of("spool.purge")
    assert record["target"] == "Bed 1"
    assert record["details"]["purged_unsent"] == 4
    assert record["details"]["patient"] == PATIENT
    assert record["details"]["until"] is None
    # The same table again: nothing new to purge, nothing recorded.
    commits.policy_changed(policies(stay))
    assert len(audit.of("spool.purge")) == 1

    # Given again, then withdrawn again: what was stored in between goes too.
    commits.policy_changed(policies())
    commits.stage(point("Bed 1", 4), None, None)
    commits.commit()
    assert ("Bed 1", 4) in beds_pending(spool)
    commits.policy_changed(policies(stay))
    assert ("Bed 1", 4) not in beds_pending(spool)
    assert [r["details"]["purged_unsent"] for r in audit.of("spool.purge")] == [4, 1]


def test_a_long_backlog_goes_on_purging_on_the_cores_ticks(
    tmp_path: Path, spool: Spool, clock: FakeClock
) -> None:
    audit = Audit()
    commits = group_commit(tmp_path, clock, spool, audit)
    spool.append([point("Bed 1", n) for n in range(40_000)])
    commits.policy_changed(policies(WithheldStay("Bed 1", T0, None, PATIENT)))
    assert spool.pending(10) == []
    assert spool.withholding == 1  # one window at once: the core thread is not stalled
    assert not audit.of("spool.purge")
    while spool.withholding:
        commits.purge_withheld()  # the core's tick
    [record] = audit.of("spool.purge")
    assert record["details"]["purged_unsent"] == 40_000
    assert spool.backlog() == (0, None)


def test_the_historian_follows_the_whole_withheld_list_so_the_next_patient_is_written(
    tmp_path: Path, spool: Spool, clock: FakeClock
) -> None:
    """Past the spool (a batch in flight, the memory queue) the historian leaves out what the
    bed policy withholds now: a stay open at the withdrawal ends at the discharge, and the
    bed's next patient is written again; a consent given again lets the stay through."""
    audit = Audit()
    state = CoreState.build(
        from_mapping({"station": {"data_dir": str(tmp_path / "data")}}),
        StationClock.single(clock),
        {},
        audit,
    )
    historian = Historian("http://127.0.0.1:9", "ward", "vitals", None)  # never started
    alarms = AlarmChanges(state, None, None, lambda _alarm: None)
    commits = GroupCommit(state, alarms, spool, None, historian, None, batch=16)
    commits.timer = Timer()
    during = line("vitals", {"bed": "Bed 1"}, {"heartrate": 80.0}, round((T0 + 5) * 1000))
    after = line("vitals", {"bed": "Bed 1"}, {"heartrate": 90.0}, round((T0 + 20) * 1000))

    commits.policy_changed(policies(WithheldStay("Bed 1", T0, None, PATIENT)))  # withdrawn
    assert historian.withheld.split([during, after]) == ([], 2)
    commits.policy_changed(policies(WithheldStay("Bed 1", T0, T0 + 10, PATIENT)))  # discharged
    assert historian.withheld.split([during, after]) == ([1], 1)
    commits.policy_changed(policies())  # consent given again
    assert historian.withheld.split([during, after]) == ([0, 1], 0)
