"""Unit tests of the quarantine store: the bound, a reopen, filters, counts, texts made safe, reads
from another thread while the core writes, and failures (a full disk, a path that cannot be made)
that raise cleanly and lose nothing staged.

Real SQLite files in ``tmp_path``; no Qt.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.domain import ingest
from station.domain.messages import Rejection
from station.services.storage.quarantine_store import (
    DEVICE_CHARS,
    FLUSH_ROWS,
    NO_DEVICE,
    TOPIC_CHARS,
    QuarantineStore,
)
from tests.payloads import FILTERS

T0 = 1_738_411_200.0


def rejection(
    i: int, reason: str = "schema", device: str | None = "mon-1", excerpt: str = "{}"
) -> Rejection:
    return Rejection(
        reason=reason,
        detail=f"message {i}",
        topic=f"healthcare/devices/{device or 'x'}/vitals",
        received_at=T0 + i,
        device_id=device,
        excerpt=excerpt,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QuarantineStore]:
    kept = QuarantineStore(tmp_path / "data" / "quarantine.sqlite", max_rows=50)
    kept.open()
    yield kept
    kept.close()


def add(store: QuarantineStore, *rejections: Rejection) -> None:
    for rej in rejections:
        store.stage(rej)
    store.flush()


def test_the_file_is_owner_only_and_nothing_is_written_until_a_flush(
    store: QuarantineStore,
) -> None:
    assert store.path.stat().st_mode & 0o777 == 0o600
    store.stage(rejection(1))
    assert store.staged == 1
    assert store.query() == ()  # staged in memory only: no write per rejection
    assert store.flush() == 1
    assert store.staged == 0
    assert [r.detail for r in store.query()] == ["message 1"]
    assert store.flush() == 0


def test_an_existing_file_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.sqlite"
    path.touch(mode=0o644)
    path.chmod(0o644)
    store = QuarantineStore(path)
    store.open()
    store.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_staging_asks_for_a_flush_once_a_batch_is_queued(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q.sqlite")
    store.open()
    wants = [store.stage(rejection(i)) for i in range(FLUSH_ROWS)]
    assert wants == [False] * (FLUSH_ROWS - 1) + [True]
    store.close()


def test_the_bound_keeps_the_newest_rows(store: QuarantineStore) -> None:
    add(store, *(rejection(i) for i in range(30)))
    add(store, *(rejection(i) for i in range(30, 80)))
    add(store, *(rejection(i) for i in range(80, 200)))  # one batch larger than the bound
    rows = store.query(limit=1000)
    assert len(rows) == 50 == store.counts().kept
    assert [r.detail for r in rows] == [f"message {i}" for i in range(199, 149, -1)]


def test_what_is_kept_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.sqlite"
    first = QuarantineStore(path)
    first.open()
    add(first, rejection(1, "json", None), rejection(2, "spoofed", "rogue"))
    first.close()
    assert [r.reason for r in QuarantineStore(path).query()] == ["spoofed", "json"]  # closed
    again = QuarantineStore(path)
    again.open()
    add(again, rejection(3))
    got = again.query()
    assert [(r.reason, r.device_id) for r in got] == [
        ("schema", "mon-1"),
        ("spoofed", "rogue"),
        ("json", None),
    ]
    assert got[2] == rejection(1, "json", None)
    again.close()


def test_filters_by_reason_and_device_and_the_limit(store: QuarantineStore) -> None:
    add(
        store,
        rejection(1, "schema", "mon-1"),
        rejection(2, "json", None),
        rejection(3, "schema", "mon-2"),
        rejection(4, "spoofed", "mon-1"),
        rejection(5, "schema", "mon-1"),
    )
    assert [r.detail for r in store.query(reason="schema")] == [
        "message 5",
        "message 3",
        "message 1",
    ]
    assert [r.detail for r in store.query(device="mon-1")] == [
        "message 5",
        "message 4",
        "message 1",
    ]
    assert [r.detail for r in store.query("schema", "mon-1")] == ["message 5", "message 1"]
    assert [r.detail for r in store.query(device=NO_DEVICE)] == ["message 2"]
    assert [r.detail for r in store.query(limit=2)] == ["message 5", "message 4"]
    assert store.query(reason="oversize") == ()


def test_counts_by_reason_and_by_device(store: QuarantineStore) -> None:
    add(
        store,
        rejection(1, "schema", "mon-1"),
        rejection(2, "json", None),
        rejection(3, "schema", "mon-2"),
        rejection(4, "spoofed", "mon-1"),
        rejection(5, "schema", "mon-1"),
    )
    counts = store.counts()
    assert counts.kept == 5
    assert counts.by_reason == (("schema", 3), ("json", 1), ("spoofed", 1))
    assert counts.by_device == (("mon-1", 3), ("", 1), ("mon-2", 1))
    assert store.counts(top=1).by_device == (("mon-1", 3),)


def test_a_store_not_yet_written_answers_empty(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "never.sqlite")
    assert store.query() == ()
    assert store.counts().kept == 0
    assert not store.path.exists()  # reading never creates the file


def test_every_text_is_printable_and_clipped_and_no_payload_is_kept(
    store: QuarantineStore,
) -> None:
    payload = b'{"device_id": "' + b"A" * 5000 + b'", "heartrate": "<b>72</b>"}'
    rej = ingest.parse("healthcare/devices/" + "t" * 1000 + "/vitals", payload, T0, FILTERS)
    assert isinstance(rej, Rejection)
    assert rej.reason == "spoofed"  # the topic names one device, the payload claims another
    forged = Rejection("schema<i>", "line\nbreak\x00", "topic\r\n", T0, "dev\x1b[31m", "x\u202e")
    add(store, rej, forged)
    newest, first = store.query()
    assert newest.reason == "schema<i>"  # kept as text: the view shows it as plain text
    assert newest.detail == "line\ufffdbreak\ufffd"
    assert newest.topic == "topic\ufffd\ufffd"
    assert newest.device_id == "dev\ufffd[31m"
    assert newest.excerpt == "x\ufffd"  # a bidirectional override could disguise the row
    assert first.device_id is not None
    assert len(first.device_id) == DEVICE_CHARS
    assert first.device_id.endswith("…")
    assert len(first.topic) == TOPIC_CHARS
    assert len(first.excerpt) <= ingest.EXCERPT_CHARS + 1
    with sqlite3.connect(store.path) as conn:
        stored = " ".join(str(v) for row in conn.execute("SELECT * FROM rejection") for v in row)
    assert "A" * 200 not in stored


def test_reads_from_another_thread_while_the_core_writes(store: QuarantineStore) -> None:
    done = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not done.is_set():
                assert store.counts().kept <= store.max_rows
                store.query(reason="schema")
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    reader = threading.Thread(target=read, name="test-quarantine-reader")
    reader.start()
    try:
        for batch in range(20):
            add(store, *(rejection(batch * 10 + i) for i in range(10)))
    finally:
        done.set()
        reader.join(5.0)
    assert not reader.is_alive()
    assert errors == []
    assert store.counts().kept == 50


def test_a_full_disk_raises_and_keeps_the_rows_staged(store: QuarantineStore) -> None:
    add(store, rejection(0))
    conn = store._conn
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from now on
    big = "x" * 120
    for i in range(1, 40):
        store.stage(rejection(i, excerpt=big))
    with pytest.raises(sqlite3.Error, match="full"):
        store.flush()
    assert store.staged == 39  # nothing lost: written once there is room again
    assert not conn.in_transaction
    assert store.counts().kept == 1
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.flush() == 39
    assert store.counts().kept == 40


def test_staged_rows_stay_bounded_while_writes_fail(store: QuarantineStore) -> None:
    store.close()
    for i in range(500):
        store.stage(rejection(i))
    assert store.staged == store.max_rows == 50
    with pytest.raises(RuntimeError, match="not open"):
        store.flush()


def test_a_path_that_cannot_be_made_raises_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    store = QuarantineStore(blocker / "quarantine.sqlite")
    with pytest.raises((FileExistsError, NotADirectoryError)):  # both OSError
        store.open()
    assert store._conn is None
    directory = tmp_path / "a-folder.sqlite"
    directory.mkdir()
    with pytest.raises(IsADirectoryError):
        QuarantineStore(directory).open()


def test_a_file_that_is_not_a_database_raises_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.sqlite"
    path.write_bytes(b"this is not an SQLite file at all, not even its header" * 100)
    store = QuarantineStore(path)
    with pytest.raises(sqlite3.Error):
        store.open()
    assert store._conn is None


def test_max_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        QuarantineStore(tmp_path / "q.sqlite", max_rows=0)
