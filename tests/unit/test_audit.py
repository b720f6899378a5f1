"""Unit tests of the audit trail (CONTRACT §6): records, chain verification, writer, CLI verdict.

A trail of 20 records is written once by the real :class:`AuditWriter`; each test damages a copy
of its lines the way an intruder or a crash would and checks that verification names exactly the
line, seq and kind of the first bad record, at every position (first, middle and last included).
No Qt, no network; ``tests/conftest.py`` fails a test that leaves the ``audit`` thread running.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from station.domain.audit.chain import (
    GENESIS,
    canonical_json,
    last_chain_state,
    make_record,
    record_hash,
    verify_lines,
)
from station.services.audit import live_file
from station.services.audit.trail_files import read_head
from station.services.audit.writer import AuditWriter
from tests.fakes import FakeClock
from tests.waiting import wait_until

N = 20
T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z
TICK = 0.25  # the fake clock moves 250 ms per reading, so every record has its own time


def write_trail(directory: Path, count: int, clock: Callable[[], float] | None = None) -> None:
    writer = AuditWriter(directory, clock=clock or FakeClock(T0, tick=TICK))
    writer.start()
    for i in range(count):
        writer.record(
            "alarm.acknowledge",
            actor=f"nurse{i % 3}",
            role="nurse",
            target=f"bed-{i}",
            details={"alarm_id": i},
        )
    assert writer.close() is True
    assert writer.fault is None


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "audit"
    write_trail(directory, N)
    return directory


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[bytes, ...], tuple[int, str]]:
    """One trail written once; each test damages its own copy of the lines."""
    directory = tmp_path_factory.mktemp("pristine")
    write_trail(directory, N)
    found = read_head(directory)
    assert found is not None
    with (directory / "audit.jsonl").open("rb") as fh:
        return tuple(fh), found


@pytest.fixture
def lines(pristine: tuple[tuple[bytes, ...], tuple[int, str]]) -> list[bytes]:
    return list(pristine[0])


@pytest.fixture
def head(pristine: tuple[tuple[bytes, ...], tuple[int, str]]) -> tuple[int, str]:
    return pristine[1]


def load(line: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(line)
    return doc


def dump(record: dict[str, Any]) -> bytes:
    return canonical_json(record) + b"\n"


def rehashed(record: dict[str, Any], **changes: Any) -> bytes:
    """``record`` changed and given a correct hash of its own, as a forger with write access."""
    forged = {**record, **changes}
    forged["hash"] = record_hash(forged)
    return dump(forged)


def check(found: Any, line: int | None, seq: int | None, kind: str) -> None:
    assert found.ok is False
    assert (found.kind, found.line, found.seq) == (kind, line, seq), found.message
    assert f"line {line} " in found.message
    assert "\n" not in found.message


POSITIONS = range(1, N + 1)  # every line, the first, middle and last among them


def test_written_trail_verifies(lines: list[bytes], head: tuple[int, str]) -> None:
    result = verify_lines(lines, head=head)
    assert result.ok is True
    assert result.records == N
    assert (result.line, result.seq, result.kind) == (None, None, None)
    assert head == last_chain_state(lines)
    records = [load(line) for line in lines]
    assert [r["seq"] for r in records] == list(range(1, N + 1))
    assert records[0]["prev"] == GENESIS
    assert all(r["prev"] == p["hash"] for p, r in itertools.pairwise(records))
    assert records[0]["ts"] == "2024-05-01T12:00:00.000Z"
    assert records[1]["ts"] == "2024-05-01T12:00:00.250Z"
    assert records[0]["outcome"] == "success"
    assert all(line == dump(load(line)) for line in lines), "lines are canonical JSON"


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": 'é\n"'}) == '{"a":"é\\n\\"","b":1}'.encode()
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"x": float("nan")})


def test_text_lines_verify_like_bytes(lines: list[bytes], head: tuple[int, str]) -> None:
    text = [line.decode("utf-8") for line in lines]
    assert verify_lines(text, head=head).ok is True
    del text[4]
    check(verify_lines(text, head=head), 5, 6, "deleted")


def test_empty_trail_is_intact() -> None:
    result = verify_lines([])
    assert (result.ok, result.records) == (True, 0)
    assert verify_lines([b""]).ok is True


@pytest.mark.parametrize("k", POSITIONS)
def test_edited_field_is_found(lines: list[bytes], head: tuple[int, str], k: int) -> None:
    record = load(lines[k - 1])
    record["actor"] = "someone-else"
    lines[k - 1] = dump(record)
    check(verify_lines(lines, head=head), k, k, "edited")


@pytest.mark.parametrize("k", POSITIONS)
def test_edited_and_rehashed_is_found(lines: list[bytes], head: tuple[int, str], k: int) -> None:
    lines[k - 1] = rehashed(load(lines[k - 1]), outcome="denied")
    check(verify_lines(lines, head=head), k, k, "edited")


@pytest.mark.parametrize("k", POSITIONS)
def test_deleted_line_is_found(lines: list[bytes], head: tuple[int, str], k: int) -> None:
    del lines[k - 1]
    # The gap shows on line k, which now holds seq k+1; the last record's loss shows one past
    # the end, where the head says seq N should be.
    expected_seq = k + 1 if k < N else N
    result = verify_lines(lines, head=head)
    check(result, k, expected_seq, "deleted" if k < N else "truncated")
    assert result.records == k - 1


def test_deleted_tail_needs_the_head(lines: list[bytes], head: tuple[int, str]) -> None:
    """A bare chain cannot see its end cut off; this is what the head file is for."""
    assert verify_lines(lines[:-2]).ok is True
    check(verify_lines(lines[:-2], head=head), N - 1, N - 1, "truncated")
    check(verify_lines([], head=head), 1, 1, "truncated")


def test_records_after_the_head_are_accepted(lines: list[bytes], head: tuple[int, str]) -> None:
    """A crash between the fsync of a batch and the head update leaves the file ahead of it."""
    last = load(lines[-1])
    lines.append(rehashed(last, seq=N + 1, prev=last["hash"], action="station.stop"))
    assert verify_lines(lines, head=head).ok is True
    lines.append(rehashed(last, action="station.stop"))  # a twin of seq N+1's predecessor
    check(verify_lines(lines, head=head), N + 2, N, "inserted")


@pytest.mark.parametrize("k", POSITIONS)
@pytest.mark.parametrize("style", ["copy", "stranger", "replay"])
def test_inserted_forged_line_is_found(
    lines: list[bytes], head: tuple[int, str], k: int, style: str
) -> None:
    displaced = load(lines[k - 1])
    if style == "copy":  # a twin of line k that chains to line k-1: the hardest to tell apart
        forged = rehashed(displaced, actor="intruder", details={"alarm_id": 999})
    elif style == "stranger":  # its own seq and prev
        forged = rehashed(displaced, seq=k + 5, prev="f" * 64, action="config.change")
    else:  # an exact copy of the record before, replayed
        forged = lines[k - 2] if k > 1 else rehashed(displaced, target="bed-x")
    lines.insert(k - 1, forged)
    result = verify_lines(lines, head=head)
    check(result, k, load(forged)["seq"], "inserted")


@pytest.mark.parametrize("at", [1, N // 2, N + 1])
def test_replayed_old_record_is_found(lines: list[bytes], head: tuple[int, str], at: int) -> None:
    lines.insert(at - 1, lines[2] if at > 3 else lines[N - 1])
    seq = 3 if at > 3 else N
    check(verify_lines(lines, head=head), at, seq, "inserted")
    check(verify_lines(lines), at, seq, "inserted")


@pytest.mark.parametrize("k", range(1, N))
def test_swapped_lines_are_found(lines: list[bytes], head: tuple[int, str], k: int) -> None:
    lines[k - 1], lines[k] = lines[k], lines[k - 1]
    check(verify_lines(lines, head=head), k, k + 1, "reordered")
    check(verify_lines(lines), k, k + 1, "reordered")


@pytest.mark.parametrize("k", [1, N // 2])
def test_verdict_in_the_chain_does_not_need_the_head(lines: list[bytes], k: int) -> None:
    edited, deleted, inserted = list(lines), list(lines), list(lines)
    edited[k - 1] = edited[k - 1].replace(b"nurse", b"admin")
    del deleted[k - 1]
    inserted.insert(k - 1, rehashed(load(lines[k - 1]), actor="intruder"))
    check(verify_lines(edited), k, k, "edited")
    check(verify_lines(deleted), k, k + 1, "deleted")
    check(verify_lines(inserted), k, k, "inserted")


def test_torn_tail_is_not_tampering_but_not_intact(lines: list[bytes]) -> None:
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    result = verify_lines(lines)
    check(result, N, None, "torn_tail")
    assert result.records == N - 1


@pytest.mark.parametrize(
    ("bad", "seq"),
    [
        (b"not json\n", None),
        (b"[1,2]\n", None),
        (b'{"seq":5}\n', 5),  # the seq it claims is reported, though the record is no record
        (b"\n", None),
        (b"\xff\xfe\n", None),
        (b'{"seq":5,"hash":"x",' + b"[" * 100_000 + b"\n", None),
    ],
)
def test_malformed_line_is_found(lines: list[bytes], bad: bytes, seq: int | None) -> None:
    lines[4] = bad
    check(verify_lines(lines), 5, seq, "malformed")


def test_duplicate_keys_are_malformed(lines: list[bytes]) -> None:
    # A reader keeping the first "actor" would see "admin"; json.loads keeps the last.
    lines[2] = lines[2].replace(b'{"action"', b'{"actor":"admin","action"', 1)
    check(verify_lines(lines), 3, None, "malformed")


def test_untrusted_text_stays_on_one_line(tmp_path: Path) -> None:
    hostile = 'eve"\n{"seq":1,"actor":"admin"}\u2028\r\\'
    writer = AuditWriter(tmp_path, clock=FakeClock(T0, tick=TICK))
    writer.start()
    writer.record("user.login", actor=hostile, target=hostile, details={hostile: hostile})
    writer.record("user.logout", actor="bob\ud800", outcome="failure")
    assert writer.close() is True
    raw = writer.path.read_bytes()
    assert raw.count(b"\n") == 2
    assert len(raw.decode("utf-8").splitlines()) == 2, "no Unicode line break survives raw"
    first, second = (json.loads(line) for line in raw.splitlines())
    assert first["actor"] == first["target"] == hostile
    assert first["details"] == {hostile: hostile}
    assert second["actor"] == "bob?"
    assert verify_lines(raw.splitlines(keepends=True)).ok is True


def test_make_record_refuses_programming_errors() -> None:
    with pytest.raises(ValueError, match="outcome"):
        make_record(1, T0, "a", "r", "x.y", "", "maybe", None, GENESIS)
    with pytest.raises(ValueError, match="seq"):
        make_record(0, T0, "a", "r", "x.y", "", "success", None, GENESIS)
    writer = AuditWriter(Path("unused"))
    with pytest.raises(ValueError, match="outcome"):
        writer.record("x.y", outcome="ok")
    assert writer.close() is True


def test_writer_resumes_the_chain(audit_dir: Path) -> None:
    write_trail(audit_dir, 3, clock=FakeClock(T0 + 3600, tick=TICK))
    with (audit_dir / "audit.jsonl").open("rb") as fh:
        lines = list(fh)
    assert [load(line)["seq"] for line in lines] == list(range(1, N + 4))
    assert verify_lines(lines, head=read_head(audit_dir)).ok is True


def test_writer_close_stops_its_thread(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path / "a", clock=FakeClock(T0, tick=TICK))
    writer.start()
    (thread,) = [t for t in threading.enumerate() if t.name == "audit"]
    assert thread.daemon is False
    writer.record("station.start")
    assert writer.close(timeout=5.0) is True
    assert not thread.is_alive()
    assert writer.written == 1
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700
    writer.record("after.close")  # dropped with a log, never raised
    assert writer.close() is True


def test_records_from_many_threads_form_one_chain(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path)
    writer.start()

    def burst(n: int) -> None:
        for i in range(50):
            writer.record("vitals.view", actor=f"user{n}", target=str(i))

    workers = [threading.Thread(target=burst, args=(n,), name=f"burst{n}") for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert writer.close() is True
    assert writer.written == 200
    result = verify_lines(
        writer.path.read_bytes().splitlines(keepends=True), head=read_head(tmp_path)
    )
    assert (result.ok, result.records) == (True, 200)


def test_write_error_keeps_records_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = live_file._write_all
    failing = threading.Event()
    failing.set()

    def full_disk(fd: int, data: bytes) -> None:
        if failing.is_set():
            real(fd, data[:7])  # a partial line, which must not stay in the file
            raise OSError(28, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(live_file, "_write_all", full_disk)
    writer = AuditWriter(tmp_path, clock=FakeClock(T0, tick=TICK))
    writer.start()
    writer.record("alarm.silence", actor="nurse")
    wait_until(lambda: writer.fault is not None, 5.0, "the writer to report the fault")
    assert "No space left" in str(writer.fault)
    assert writer.written == 0
    failing.clear()
    writer.record("alarm.acknowledge", actor="nurse")
    wait_until(lambda: writer.written == 2, 5.0, "the writer to write both records")
    assert writer.fault is None
    assert writer.close() is True
    chain = verify_lines(
        writer.path.read_bytes().splitlines(keepends=True), head=read_head(tmp_path)
    )
    assert chain.ok is True
    assert [load(line)["action"] for line in writer.path.read_bytes().splitlines()] == [
        "alarm.silence",
        "alarm.acknowledge",
    ]


def test_writer_moves_a_torn_tail_aside(audit_dir: Path) -> None:
    path = audit_dir / "audit.jsonl"
    with path.open("ab") as fh:
        fh.write(b'{"seq":21,"ts":"2024-05-')
    write_trail(audit_dir, 1)
    (torn,) = audit_dir.glob("audit.jsonl.torn-*")
    assert torn.read_bytes() == b'{"seq":21,"ts":"2024-05-'
    records = [load(line) for line in path.read_bytes().splitlines()]
    assert [r["action"] for r in records[-2:]] == ["audit.repair_tail", "alarm.acknowledge"]
    chain = verify_lines(path.read_bytes().splitlines(keepends=True), head=read_head(audit_dir))
    assert (chain.ok, chain.records) == (True, N + 2)


def test_writer_reports_a_tampered_trail_and_goes_on(audit_dir: Path) -> None:
    path = audit_dir / "audit.jsonl"
    path.write_bytes(path.read_bytes().replace(b"bed-4", b"bed-9", 1))
    writer = AuditWriter(audit_dir, clock=FakeClock(T0, tick=TICK))
    writer.start()
    writer.record("station.start")
    assert writer.close() is True
    assert writer.fault is not None
    assert "line 5 (seq 5)" in writer.fault
    last = [load(line) for line in path.read_bytes().splitlines()][-2:]
    assert last[0]["action"] == "audit.verify"
    assert last[0]["outcome"] == "failure"
    assert last[0]["details"] == {"kind": "edited", "line": 5, "seq": 5}
    assert last[1]["seq"] == N + 2
