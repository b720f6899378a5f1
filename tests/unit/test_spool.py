"""Unit tests of the local spool: order, ages, duplicates, pruning, budget, full disk, SIGKILL.

Real SQLite files in ``tmp_path``; no Qt, no network. The clock is injected so ages are exact.
The crash test runs ``tests/spool_writer.py`` in a child process and kills it mid-stream.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.services.storage.spool import PRUNE_CHUNK, Row, Spool, SpoolFull, time_key
from tests.fakes import FakeClock

REPO = Path(__file__).resolve().parents[2]
T0 = 1_714_564_800.0


def points(start: int, count: int, device: str = "dev-1") -> list[Row]:
    """``count`` distinct points with seq ``start``..; padded so budgets fill quickly."""
    pad = "x" * 200
    return [
        (device, s, f'vitals,device={device} heartrate=72.0,note="{pad}" {s}')
        for s in range(start, start + count)
    ]


def fill_until_refused(spool: Spool, start: int, size: int) -> tuple[int, SpoolFull]:
    """Append batches of ``size`` from seq ``start`` until refused; the next seq and the refusal."""
    seq = start
    for _ in range(1000):
        try:
            spool.append(points(seq, size))
        except SpoolFull as exc:
            return seq, exc
        seq += size
    pytest.fail("the spool never refused")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def spool(tmp_path: Path, clock: FakeClock) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db", clock=clock)
    s.open()
    yield s
    s.close()


def test_open_uses_wal_and_full_sync(spool: Spool) -> None:
    conn = sqlite3.connect(spool.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["schema_version"] == "3"
    finally:
        conn.close()


def test_pending_oldest_first_then_marked_written(spool: Spool, clock: FakeClock) -> None:
    assert spool.backlog() == (0, None)
    assert spool.append(points(0, 3)) == 3
    clock.now += 5
    assert spool.append(points(3, 2, device="dev-2")) == 2
    clock.now += 2

    pending = spool.pending(10)
    assert [line.rsplit(" ", 1)[1] for _, line in pending] == ["0", "1", "2", "3", "4"]
    assert [i for i, _ in pending] == sorted(i for i, _ in pending)
    assert spool.backlog() == (5, 7.0)

    assert spool.mark_written([i for i, _ in pending[:3]]) == 3
    assert spool.mark_written([pending[0][0]]) == 0  # already written
    assert spool.backlog() == (2, 2.0)
    assert spool.pending(1) == [pending[3]]


def test_identical_line_is_stored_once(spool: Spool) -> None:
    batch = points(0, 4)
    assert spool.append(batch) == 4
    assert spool.append(batch[2:] + points(4, 1)) == 1  # a QoS 1 redelivery plus one new point
    assert spool.append([batch[0], batch[0]]) == 0
    assert spool.backlog()[0] == 5


def test_prune_removes_only_old_written_rows(spool: Spool, clock: FakeClock) -> None:
    spool.append(points(0, 2))
    clock.now += 100
    spool.append(points(2, 2))
    ids = [i for i, _ in spool.pending(10)]
    spool.mark_written([ids[0], ids[2]])  # one old, one recent written
    clock.now += 10

    assert spool.prune(keep_written_s=50) == 1  # only the old written one
    assert [i for i, _ in spool.pending(10)] == [ids[1], ids[3]]  # unwritten never pruned
    assert spool.prune(keep_written_s=0) == 1
    assert spool.backlog() == (2, 110.0)


def test_budget_refuses_then_pruning_written_rows_makes_room(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "small.db", budget_bytes=64 * 1024)
    spool.open()
    try:
        seq, refusal = fill_until_refused(spool, 0, 16)
        assert re.search(r"is full: \d+ bytes in use of a 65536 byte budget", str(refusal))
        stored = spool.backlog()[0]
        assert stored == seq  # the refused batch left nothing behind
        assert spool.refused == 1
        with pytest.raises(SpoolFull):
            spool.append(points(seq, 16))
        assert spool.refused == 2

        spool.mark_written([i for i, _ in spool.pending(stored)])
        assert spool.append(points(seq, 16)) == 16  # written rows pruned to make room
        assert spool.backlog()[0] == 16
        assert spool.refused == 2
    finally:
        spool.close()


def test_full_disk_is_spool_full(spool: Spool) -> None:
    spool.append(points(0, 1))
    conn = spool._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # a disk with two pages left

    seq, refusal = fill_until_refused(spool, 1, 64)
    assert "database or disk is full; refusing 64 points" in str(refusal)
    assert isinstance(refusal.__cause__, sqlite3.OperationalError)
    assert spool.refused == 1
    assert spool.backlog()[0] == seq  # the failed transaction was rolled back whole
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sigkill_loses_no_committed_point(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.spool_writer", str(db)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported: list[int] = []
    try:
        while len(reported) < 30:
            text = child.stdout.readline()
            assert text, f"writer exited early with {child.poll()}"
            reported.append(int(text))
        child.send_signal(signal.SIGKILL)  # mid-stream: it is appending as fast as it can
        reported += [int(t) for t in child.stdout.read().split()]
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert db.with_name("crash.db-wal").exists()  # killed with its WAL not checkpointed

    spool = Spool(db)
    spool.open()
    try:
        assert spool._conn is not None
        assert spool._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = {s for (s,) in spool._conn.execute("SELECT seq FROM points")}
    finally:
        spool.close()
    assert set(range(max(reported) + 1)) <= seqs


def test_core_appends_while_historian_drains(spool: Spool) -> None:
    """The two threads share one spool; every point is drained exactly once."""
    total, batch = 2000, 50

    def core() -> None:
        for start in range(0, total, batch):
            spool.append(points(start, batch))

    appender = threading.Thread(target=core, name="test-core")
    appender.start()
    drained: list[int] = []
    while appender.is_alive() or spool.backlog()[0]:
        ids = [i for i, _ in spool.pending(64)]
        drained += ids
        spool.mark_written(ids)
    appender.join()
    assert len(drained) == len(set(drained)) == total


def test_closed_spool_refuses_use(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    with pytest.raises(RuntimeError, match="not open"):
        spool.append(points(0, 1))
    spool.open()
    spool.close()
    spool.close()
    with pytest.raises(RuntimeError, match="not open"):
        spool.backlog()


def test_backlog_is_counted_across_reopen_duplicates_and_marks(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    first = Spool(tmp_path / "spool.sqlite", clock=clock)
    first.open()
    first.append(points(0, 10))
    first.append(points(5, 10))  # 5 of them again: not counted twice
    ids = [i for i, _ in first.pending(4)]
    first.mark_written(ids)
    first.mark_written(ids)  # marking again changes nothing
    assert first.backlog() == (11, 0.0)
    first.close()
    clock.now += 30
    second = Spool(tmp_path / "spool.sqlite", clock=clock)
    second.open()
    try:
        assert second.backlog() == (11, 30.0)  # counted once at open, then kept in step
        second.mark_written([i for i, _ in second.pending(100)])
        assert second.backlog() == (0, None)
    finally:
        second.close()


def test_prune_deletes_in_chunks_and_all_of_them(spool: Spool, clock: FakeClock) -> None:
    n = PRUNE_CHUNK * 2 + 7
    spool.append(points(0, n))
    spool.mark_written([i for i, _ in spool.pending(n)])
    clock.now += 100
    assert spool.prune(keep_written_s=50) == n
    assert spool.pending(10) == []


# -- schema 2: the (time_ms, line) key, and files of schema 1 ------------------------------------

_SCHEMA_1 = """
CREATE TABLE points (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    device TEXT,
    seq INTEGER,
    line TEXT NOT NULL UNIQUE,
    written INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX points_written ON points(written);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1'), ('created_at', '1.0');
"""


def test_a_schema_1_spool_is_migrated_keeping_ids_order_and_marks(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(_SCHEMA_1)
    rows = [(T0, device, seq, text) for device, seq, text in points(0, 6)]
    conn.executemany("INSERT INTO points(received_at, device, seq, line) VALUES (?, ?, ?, ?)", rows)
    conn.execute("UPDATE points SET written = 1 WHERE seq < 2")
    conn.commit()
    ids = [i for (i,) in conn.execute("SELECT id FROM points ORDER BY id")]
    conn.close()

    spool = Spool(db, clock=FakeClock(T0))
    spool.open()
    try:
        assert spool.backlog() == (4, 0.0)
        assert [i for i, _ in spool.pending(10)] == ids[2:]
        assert spool.append(points(3, 4)) == 1  # 3..5 were there before the migration
        assert spool._conn is not None
        meta = dict(spool._conn.execute("SELECT key, value FROM meta"))
        assert meta == {"schema_version": "3", "created_at": "1.0"}
        assert spool._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = list(spool._conn.execute("SELECT time_ms, seq FROM points ORDER BY id"))
        assert keys == [(s, s) for s in range(7)]  # the lines of points() end in their seq
        indexes = {r[1] for r in spool._conn.execute("PRAGMA index_list(points)")}
        assert indexes == {"points_key", "points_written"}
    finally:
        spool.close()
    reopened = Spool(db)
    reopened.open()  # already schema 3: nothing to do
    reopened.close()


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("vitals,device=d heartrate=72.0 1738411198123", 1738411198123),
        ("m f=1.0 -5", -5),
        ("m f=1.0 " + "9" * 18, int("9" * 18)),
        ("m f=1.0 " + "9" * 19, 0),  # beyond what SQLite's INTEGER surely holds
        ("m f=1.0 12a", 0),
        ("m f=1.0 \u0663", 0),  # a non-ASCII digit
        ("m f=1.0 -", 0),
        ("m f=1.0 ", 0),
        ("no-spaces", 0),
    ],
)
def test_time_key(line: str, key: int) -> None:
    assert time_key(line) == key


def test_same_line_is_one_point_whatever_its_time_key(spool: Spool) -> None:
    odd = [("d", None, "m f=1.0 x"), ("d", None, "n f=1.0 x"), ("d", None, "m f=1.0 x")]
    assert spool.append(odd) == 2
    assert spool.append([("d", 1, "m f=1.0 7"), ("d", 1, "m f=2.0 7")]) == 2


def test_mark_written_takes_any_ids_in_any_order(spool: Spool) -> None:
    spool.append(points(0, 10))
    ids = [i for i, _ in spool.pending(10)]
    chosen = [ids[7], ids[0], ids[1], ids[2], ids[5], ids[1], ids[9]]
    assert spool.mark_written(chosen) == 6
    assert [i for i, _ in spool.pending(10)] == [ids[3], ids[4], ids[6], ids[8]]
    assert spool.mark_written(iter([ids[3], ids[9]])) == 1
    assert spool.backlog()[0] == 3
