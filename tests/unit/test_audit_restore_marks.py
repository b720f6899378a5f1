"""A restore told from a rollback (issue 16): a trail put back from a backup by ``station
restore`` carries a ``station.restore`` record signed by the station key, which accounts for the
checkpoints published before it; a folder copied back by hand has none, a forged one does not
verify, and a copy put back over the restored trail later still misses a newer checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.audit import verify_path
from station.domain.audit.chain import encode_line, last_chain_state, make_record
from station.domain.audit.keyed import Published
from station.services.audit.restore_marks import RESTORE_ACTION, restore_mark, sign_restore
from station.services.audit.trail import read_trail
from station.services.audit.trail_files import head_epoch, write_head
from station.services.audit.writer import AuditWriter
from tests.fakes import FakeClock

KEY = Ed25519PrivateKey.generate()
STATION = "ward-7"
CLOCK = FakeClock(1_790_000_000.0, tick=1.0)  # one clock for all writers: time only goes on


def run(folder: Path, actions: list[str], published: list[Published] | None = None) -> Any:
    """One writer's run: its start-up finding (fault), and the checkpoints it published."""
    made: list[Published] = []
    writer = AuditWriter(folder, CLOCK, station_key=KEY, station=STATION, on_checkpoint=made.append)
    writer.start(published=published or [])
    fault = writer.fault
    for action in actions:
        details = {"backup_time": "then", "replaced": {}} if action == RESTORE_ACTION else {}
        writer.record(action, actor="shell:root", role="shell", details=details)
    assert writer.close()
    return fault, made


def test_the_chain_signs_a_restore_with_the_station_key(tmp_path: Path) -> None:
    run(tmp_path, ["alarm.raise", RESTORE_ACTION])
    records = read_trail(tmp_path).records()
    restore = next(r for r in records if r["action"] == RESTORE_ACTION)
    other = next(r for r in records if r["action"] == "alarm.raise")
    assert "seal" in restore  # like every record
    assert restore_mark(restore, KEY.public_key()) is not None
    assert restore_mark(restore, Ed25519PrivateKey.generate().public_key()) is None
    assert "sig" not in other
    assert verify_path(tmp_path)[0] == 0


def test_a_restore_accounts_for_what_it_replaced_and_a_later_rollback_is_still_found(
    tmp_path: Path,
) -> None:
    live = tmp_path / "audit"
    backup = tmp_path / "backup"
    _, first = run(live, ["alarm.raise"])
    shutil.copytree(live, backup)  # the backup
    _, lost = run(live, ["alarm.raise", "alarm.acknowledge"])  # then the disk dies
    old_anchor = lost[-1]
    assert old_anchor.seq > first[-1].seq

    # By hand, the backup copied back is a rollback:
    by_hand = tmp_path / "by-hand"
    shutil.copytree(backup, by_hand)
    fault, _ = run(by_hand, [], [old_anchor])
    assert fault is not None
    assert "rolled back" in fault

    # `station restore` puts the backup back and signs what it lost:
    restored = tmp_path / "restored"
    shutil.copytree(backup, restored)
    run(restored, [RESTORE_ACTION])
    after_restore = tmp_path / "after-restore"
    shutil.copytree(restored, after_restore)
    fault, made = run(restored, ["alarm.raise"], [old_anchor])  # the next start
    assert fault is None
    kept = tmp_path / "old-anchor.json"
    kept.write_text(old_anchor.to_json())
    assert verify_path(restored, checkpoints=[kept])[0] == 0

    # The restored folder later put back to its state right after the restore: the restore
    # record is in it, but the newer checkpoint is not, and was made after the restore.
    newer = made[-1]
    fault, _ = run(after_restore, [], [newer])
    assert fault is not None
    assert "rolled back" in fault
    newer_file = tmp_path / "newer.json"
    newer_file.write_text(newer.to_json())
    code, text = verify_path(after_restore, checkpoints=[newer_file])
    assert code == 1
    assert ": rolled_back: " in text


def test_a_restore_without_the_station_keys_signature_excuses_nothing(tmp_path: Path) -> None:
    live = tmp_path / "audit"
    run(live, ["alarm.raise"])
    old = tmp_path / "old"
    shutil.copytree(live, old)
    _, lost = run(live, ["alarm.raise"])
    # Someone who can write the folder, but has no station key, appends a "restore" to the old
    # copy: chained and with the head moved on, signed with a key of their own.
    lines = (old / "audit.jsonl").read_bytes().splitlines(keepends=True)
    seq, prev = last_chain_state(lines)
    forged = make_record(
        seq + 1,
        CLOCK(),
        "shell:mallory",
        "shell",
        RESTORE_ACTION,
        "",
        "success",
        {"replaced": {"anchor": {"seq": lost[-1].seq, "hash": lost[-1].hash}}},
        prev,
    )
    sign_restore(forged, Ed25519PrivateKey.generate())
    with (old / "audit.jsonl").open("ab") as handle:
        handle.write(encode_line(forged))
    write_head(old, forged["seq"], forged["hash"], head_epoch(old))
    fault, _ = run(old, [], [lost[-1]])
    assert fault is not None
    assert "rolled back" in fault
