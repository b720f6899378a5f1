"""The keyed audit trail (issue 7): every tampering kind is named at its record, a chain
recomputed with SHA-256 or re-sealed with a stolen current key fails, a rollback is found
against a published checkpoint, a torn line is not tampering, rotation keeps one chain. (The
export bundle, whose summary PDF needs Qt, is tested in ``tests/qt/test_audit_bundle.py``.)"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.audit import verify_path
from station.config.credentials import SERVICE, use_memory_keyring
from station.domain.audit.chain import encode_line, record_hash
from station.domain.audit.keyed import CHECKPOINT_ACTION, Published, seal
from station.domain.vouchers.keys import key_id
from station.services.audit.checkpoints import BrokerCheckpointCheck
from station.services.audit.keys import AuditKeyError, station_key
from station.services.audit.trail_files import HEAD_FILE
from station.services.audit.writer import AuditWriter
from tests.fakes import FakeClock

T0 = 1_790_000_000.0  # 2026-09-21
KEY = Ed25519PrivateKey.generate()


def ticking(start: float = T0) -> FakeClock:
    """A clock that moves 1 s per reading, so every record has its own time; the first reading
    is ``start + 1``."""
    return FakeClock(start + 1.0, tick=1.0)


def writer(directory: Path, **kwargs: Any) -> AuditWriter:
    kwargs.setdefault("clock", ticking())
    kwargs.setdefault("checkpoint_every", 5)
    return AuditWriter(directory, station_key=KEY, station="ward-7", where="ward-7@nuc", **kwargs)


def write(directory: Path, count: int, **kwargs: Any) -> list[Published]:
    published: list[Published] = []
    w = writer(directory, on_checkpoint=published.append, **kwargs)
    w.start()
    for i in range(count):
        w.record("alarm.raise", actor="station", target=f"Bed {i % 4 + 1}", details={"i": i})
    assert w.close() is True
    return published


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    folder = tmp_path / "audit"
    write(folder, 20)
    return folder


def lines_of(folder: Path) -> list[bytes]:
    return (folder / "audit.jsonl").read_bytes().splitlines(keepends=True)


def put(folder: Path, lines: list[bytes]) -> None:
    (folder / "audit.jsonl").write_bytes(b"".join(lines))


def fail(folder: Path, kind: str, line: int, **kwargs: Any) -> str:
    code, text = verify_path(folder, **kwargs)
    assert code == 1, text
    assert text.startswith(f"FAIL line {line} "), text
    assert f": {kind}: " in text, text
    return text


def recomputed(lines: list[bytes], at: int, change: dict[str, Any]) -> list[bytes]:
    """What a script with write access does: edit record ``at`` (0-based), then recompute every
    later ``prev`` and SHA-256 ``hash`` so the chain holds again."""
    out, prev = [], None
    for i, line in enumerate(lines):
        record = json.loads(line)
        if i == at:
            record.update(change)
        if i >= at:
            record["prev"] = prev if prev is not None else record["prev"]
            record["hash"] = record_hash(record)
        prev = record["hash"]
        out.append(encode_line(record))
    return out


def rewrite_head(folder: Path, lines: list[bytes]) -> None:
    last = json.loads(lines[-1])
    head = {"seq": last["seq"], "hash": last["hash"], "epoch": last["epoch"]}
    (folder / HEAD_FILE).write_text(json.dumps(head))


def test_written_trail_is_keyed_and_verifies(trail: Path) -> None:
    records = [json.loads(line) for line in lines_of(trail)]
    checkpoints = [r for r in records if r["action"] == CHECKPOINT_ACTION]
    # start, one per 5 records, stop: every record outside a checkpoint is sealed
    assert [c["details"]["reason"] for c in checkpoints] == ["start"] + ["count"] * 4 + ["stop"]
    assert all("seal" in r for r in records if r["action"] != CHECKPOINT_ACTION)
    assert all(r["where"] == "ward-7@nuc" for r in records)
    code, text = verify_path(trail)
    assert code == 0, text
    assert text.startswith(f"OK {len(records)} records, chain intact, sealed")


def test_edited_record_is_named(trail: Path) -> None:
    lines = lines_of(trail)
    lines[7] = lines[7].replace(b"Bed ", b"Bad ", 1)
    put(trail, lines)
    fail(trail, "edited", 8)


def test_deleted_record_is_named(trail: Path) -> None:
    lines = lines_of(trail)
    del lines[7]
    put(trail, lines)
    fail(trail, "deleted", 8)


def test_inserted_record_is_named(trail: Path) -> None:
    lines = lines_of(trail)
    lines.insert(7, lines[3])  # a replay of an earlier, validly sealed record
    put(trail, lines)
    fail(trail, "inserted", 8)


def test_reordered_records_are_named(trail: Path) -> None:
    lines = lines_of(trail)
    lines[7], lines[8] = lines[8], lines[7]
    put(trail, lines)
    fail(trail, "reordered", 8)


def test_truncated_tail_is_named(trail: Path) -> None:
    lines = lines_of(trail)
    put(trail, lines[:-3])
    fail(trail, "truncated", len(lines) - 2)


def test_torn_last_line_is_not_tampering(trail: Path) -> None:
    lines = lines_of(trail)
    put(trail, [*lines[:-1], lines[-1][:30]])  # a power cut in the middle of the last write
    rewrite_head(trail, lines[:-1])  # which was never fsynced, so the head is one behind
    text = fail(trail, "torn_tail", len(lines))
    assert "recomputed" not in text


def test_chain_recomputed_with_sha256_fails_at_the_edited_record(trail: Path) -> None:
    lines = recomputed(lines_of(trail), 7, {"actor": "someone-else"})
    put(trail, lines)
    rewrite_head(trail, lines)
    assert verify_path(trail)[1].count("FAIL") == 1
    fail(trail, "recomputed", 8)


def test_reseal_with_the_stolen_current_key_fails(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    w = writer(folder)
    w.start()
    for i in range(12):
        w.record("alarm.raise", target=f"Bed {i}")
    w.close()
    stolen = w._chain.epoch_key  # the attacker's loot: the open epoch's key
    assert stolen is None  # dropped at stop: nothing left to steal after a clean stop
    w2 = writer(folder)
    w2.start()
    w2.record("alarm.raise", target="Bed 99")
    deadline = time.monotonic() + 5
    while w2.written < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stolen = w2._chain.epoch_key  # stolen while the station runs
    current = w2._chain.epoch
    assert stolen is not None
    lines = (folder / "audit.jsonl").read_bytes().splitlines(keepends=True)
    forged, prev = [], None
    for i, record in enumerate(json.loads(line) for line in lines):
        if i == 4:
            record["actor"] = "x"
        if i >= 4:  # recompute the chain and re-seal every record with the stolen key
            record["prev"] = prev
            if record["action"] != CHECKPOINT_ACTION:
                record["epoch"] = current
            record["hash"] = record_hash(record)
            if record["action"] != CHECKPOINT_ACTION:
                seal(record, stolen)
        prev = record["hash"]
        forged.append(encode_line(record))
    w2.close()
    put(folder, forged)
    rewrite_head(folder, forged)
    fail(folder, "recomputed", 5)


def test_rollback_to_an_older_copy_is_found_against_the_published_checkpoint(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "audit"
    write(folder, 6)
    old = tmp_path / "old-copy"
    shutil.copytree(folder, old)
    published = write(folder, 6)
    assert published[-1].verifies(KEY.public_key())
    shutil.rmtree(folder)
    shutil.copytree(old, folder)  # the whole folder, head and all, put back
    assert verify_path(folder)[0] == 0  # on its own it is a consistent, older trail
    kept = tmp_path / "checkpoint.json"
    kept.write_text(published[-1].to_json())
    text = fail(folder, "rolled_back", len(lines_of(folder)) + 1, checkpoints=[kept])
    assert f"seq {published[-1].seq}" in text
    # The station finds it too, at its next start, from the checkpoint kept in the keyring.
    w = writer(folder)
    w.start(published=[published[-1]])
    w.close()
    assert "rolled back" in str(w.fault)
    records = [json.loads(line) for line in lines_of(folder)]
    assert any(
        r["action"] == "audit.verify" and r["details"].get("kind") == "rolled_back" for r in records
    )


def test_a_broker_checkpoint_check_that_fails_is_logged_not_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The check runs as a Qt slot on the mqtt thread, where an exception would only reach
    stderr: it must land in the station's log instead."""
    published = write(tmp_path / "audit", 2)

    class BrokenTrail:
        def check_published(self, checkpoint: Published) -> str | None:
            raise OSError("the disk went away")

    check = BrokerCheckpointCheck(BrokenTrail(), KEY)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="station.services.audit.checkpoints"):
        check.check(published[-1].to_json().encode())
    assert "checking the audit checkpoint on the broker failed" in caplog.text
    assert "the disk went away" in caplog.text


def test_a_forged_published_checkpoint_is_refused(trail: Path, tmp_path: Path) -> None:
    published = write(tmp_path / "other", 2)
    forged = Published("ward-7", {**published[-1].record, "seq": 999})
    path = tmp_path / "forged.json"
    path.write_text(forged.to_json())
    code, text = verify_path(trail, checkpoints=[path])
    assert code == 2
    assert "not signed" in text


def test_untrusted_text_cannot_forge_a_line(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    w = writer(folder)
    w.start()
    evil = 'mon-1"}\n{"seq":99,"action":"alarm.acknowledge"}\u2028x'
    w.record("device.spoofed", actor=evil, target=evil, details={"device_id": evil})
    w.close()
    lines = lines_of(folder)
    assert len(lines) == 3  # start checkpoint, the record, stop checkpoint
    assert json.loads(lines[1])["actor"] == evil
    assert verify_path(folder)[0] == 0


def test_rotation_by_size_keeps_one_chain_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 40, rotate_bytes=2000)
    files = sorted(folder.glob("*.jsonl"))
    assert len(files) > 3
    assert files[-1].name == "audit.jsonl"
    code, text = verify_path(folder)
    assert code == 0, text
    files[1].unlink()  # a whole middle file removed
    code, text = verify_path(folder)
    assert code == 1
    assert ": deleted: " in text
    assert text.endswith(f"[{files[2].name} line 1]")


def test_rotation_at_a_new_day(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    clock = ticking(1_790_035_170.0)  # 23:59:30 UTC: within 30 records it is tomorrow
    write(folder, 60, clock=clock)
    days = {
        json.loads(f.read_bytes().splitlines()[0])["ts"][:10]: f.name
        for f in sorted(folder.glob("*.jsonl"))
    }
    assert len(days) == 2, days
    assert verify_path(folder)[0] == 0


def test_unkeyed_records_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 3)
    plain = AuditWriter(folder, clock=ticking(T0 + 100))  # a start without the station key
    plain.start()
    plain.record("alarm.raise", target="Bed 1")
    plain.close()
    fail(folder, "unkeyed", len(lines_of(folder)))


# -- review fixes -------------------------------------------------------------------------------


def test_a_clean_restart_finds_its_own_stop_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    published = write(folder, 3)
    assert published[-1].record["details"]["reason"] == "stop"
    w = writer(folder)
    w.start(published=[published[-1]])  # what the keyring kept: the stop checkpoint
    w.close()
    assert w.fault is None


def test_an_unreadable_keyring_never_replaces_the_station_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STATION_AUDIT_KEY", raising=False)
    with use_memory_keyring() as ring:
        first = station_key("ward-7")
        stored = ring.get_password(SERVICE, "audit:ward-7")

        def locked(_service: str, _user: str) -> str | None:
            raise RuntimeError("keyring locked")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ring, "get_password", locked)
            with pytest.raises(AuditKeyError, match="cannot be read"):
                station_key("ward-7")
        assert ring.get_password(SERVICE, "audit:ward-7") == stored
        assert key_id(station_key("ward-7").public_key()) == key_id(first.public_key())


def test_a_cut_tail_with_its_head_deleted_is_still_found(trail: Path) -> None:
    lines = lines_of(trail)
    put(trail, lines[:-5])
    (trail / HEAD_FILE).unlink()
    fail(trail, "truncated", len(lines) - 4)


def test_a_cut_in_the_middle_of_a_line_before_the_head_is_truncation(trail: Path) -> None:
    lines = lines_of(trail)
    put(trail, [*lines[:5], lines[5][:40]])
    fail(trail, "truncated", 6)


def test_an_empty_live_file_after_rotation_is_no_fault(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 10)
    (folder / "audit.jsonl").rename(folder / "audit-000000000001.jsonl")
    (folder / "audit.jsonl").touch()  # the crash came between the rename and the first write
    w = writer(folder)
    w.start()
    w.record("alarm.raise", target="Bed 1")
    w.close()
    assert w.fault is None
    assert verify_path(folder)[0] == 0


def test_absurdly_nested_line_is_malformed_not_a_crash(trail: Path) -> None:
    lines = lines_of(trail)
    record = json.loads(lines[3])
    record["details"] = json.loads("[" * 900 + "]" * 900)
    put(trail, [*lines[:3], json.dumps(record).encode() + b"\n", *lines[4:]])
    code, text = verify_path(trail)
    assert code == 1
    assert text.startswith("FAIL line 4 ")
    w = writer(trail)
    w.start()  # the station still starts, and says why the trail is not intact
    w.close()
    assert "line 4" in str(w.fault)
