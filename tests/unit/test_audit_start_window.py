"""The station's start check covers the last checkpoint kept outside whatever the live file's first
``seq`` (hardening, "audit edges"). It used to verify the live file's hash chain alone, from its
first record: a checkpoint in a rotated file was passed over ("in a rotated file this check does
not read"), rotated files were never looked at, and no seal or signature was checked. Now it
reads back to the rotated file holding the checkpoint, looks an older one up by its ``seq``, and
checks every checkpoint's signature, the signed head, and then every seal."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.domain.audit.chain import encode_line, record_hash
from station.domain.audit.keyed import Published
from station.services.audit.trail_files import WINDOW_FILES, rotated_files
from tests.unit.test_audit_keyed import write, writer

ROTATE = 3000  # seven records a file


def rotated_trail(folder: Path) -> list[Published]:
    published = write(folder, 60, rotate_bytes=ROTATE)
    assert len(rotated_files(folder)) > WINDOW_FILES + 2
    return published


def holding(folder: Path, seq: int) -> Path:
    return [path for first, path in rotated_files(folder) if first <= seq][-1]


def start_with(folder: Path, published: list[Published]) -> str | None:
    w = writer(folder, rotate_bytes=ROTATE)
    w.start(published=published)
    w.record("station.start")
    assert w.close() is True
    return w.fault


def recomputed_from(path: Path, seq: int) -> None:
    """Edit the record at ``seq`` in ``path`` and recompute the hashes after it in that file,
    as someone without the key would (no seal or signature can be redone)."""
    out, prev = [], None
    for line in path.read_bytes().splitlines(keepends=True):
        record = json.loads(line)
        if record["seq"] == seq:
            record["actor"] = "mallory"
        if record["seq"] >= seq:
            record["prev"] = prev if prev is not None else record["prev"]
            record["hash"] = record_hash(record)
        prev = record["hash"]
        out.append(encode_line(record))
    path.write_bytes(b"".join(out))


def test_the_anchor_in_a_rotated_file_is_checked_though_the_live_file_starts_after_it(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "audit"
    published = rotated_trail(folder)
    live_first = json.loads((folder / "audit.jsonl").read_bytes().splitlines()[0])["seq"]
    anchor = max((c for c in published if c.seq < live_first), key=lambda c: c.seq)
    assert start_with(folder, [anchor]) is None  # intact: no fault
    recomputed_from(holding(folder, anchor.seq), anchor.seq - 1)
    fault = start_with(folder, [anchor])
    assert fault is not None
    assert "audit trail failed verification" in fault
    assert holding(folder, anchor.seq).name in fault  # the file is named


def test_a_deleted_rotated_file_holding_the_anchor_is_found_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    published = rotated_trail(folder)
    live_first = json.loads((folder / "audit.jsonl").read_bytes().splitlines()[0])["seq"]
    anchor = max((c for c in published if c.seq < live_first), key=lambda c: c.seq)
    holding(folder, anchor.seq).unlink()
    fault = str(start_with(folder, [anchor]))
    assert " deleted [audit.jsonl line 1]" in fault, fault
    assert f"does not hold the checkpoint published at seq {anchor.seq}" in fault


def test_an_anchor_beyond_the_window_is_looked_up_by_its_seq(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    published = rotated_trail(folder)
    oldest = published[1]  # in the first rotated file, more than WINDOW_FILES files back
    assert oldest.seq < rotated_files(folder)[-WINDOW_FILES][0]
    assert start_with(folder, [oldest]) is None
    path = holding(folder, oldest.seq)
    lines = path.read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if json.loads(line)["seq"] == oldest.seq)
    record = json.loads(lines[at])
    record["details"]["reason"] = "edited"
    record["hash"] = record_hash(record)
    lines[at] = encode_line(record)
    path.write_bytes(b"".join(lines))
    fault = str(start_with(folder, [oldest]))
    assert "rolled back" in fault
    assert f"published at seq {oldest.seq}" in fault
    # The broker's retained checkpoint, compared later on the mqtt thread, is looked up too.
    w = writer(folder, rotate_bytes=ROTATE)
    w.start()
    assert w.check_published(oldest) is not None
    assert w.close() is True


def test_every_seal_is_checked_after_the_start(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 12)
    path = folder / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[3])
    assert "seal" in record
    forged = Ed25519PrivateKey.generate().sign(b"station-audit-seal/1\n" + record["hash"].encode())
    record["seal"] = base64.b64encode(forged).decode()  # the hash and chain are untouched
    lines[3] = encode_line(record)
    path.write_bytes(b"".join(lines))
    fault = start_with(folder, [])
    assert fault is not None
    assert "line 4 (seq 4)" in fault
    assert "seal does not match" in fault
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    (found,) = [r for r in records if r["action"] == "audit.verify"]
    assert found["details"] == {"kind": "recomputed", "line": 4, "seq": 4}


def test_rotated_files_archived_away_raise_no_false_alarm(tmp_path: Path) -> None:
    """An admin who moved old rotated files to an archive leaves a live file whose first
    records belong to an epoch opened in a file no longer here: their seals cannot be checked,
    which is not tampering."""
    folder = tmp_path / "audit"
    rotated_trail(folder)
    for _, path in rotated_files(folder):
        path.unlink()
    assert start_with(folder, []) is None
