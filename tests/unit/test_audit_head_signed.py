"""The audit head is signed (hardening, "audit edges"): after an unclean stop, records after the
last checkpoint cut off and ``audit.head`` rewritten to match, without the station key, used to
pass both ``station audit verify`` and the station's start check. Now the head the writer leaves
carries the station key's signature, and a head that does not (rewritten, deleted, unreadable,
nested ten thousand deep) vouches for nothing: unless a stop checkpoint ends the trail, that is a
``FAIL`` and a fault at start, and the station still starts."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.audit import verify_path
from station.domain.audit.head import Head, parse_head, signed_head
from station.services.audit.trail_files import HEAD_FILE, load_head
from tests.unit.audit_cases import crashed, cut_tail, forged_head
from tests.unit.test_audit_keyed import KEY, lines_of, write, writer


def start_fault(folder: Path) -> str | None:
    """What the writer's start check finds (it starts, appends, closes whatever it finds)."""
    w = writer(folder)
    w.start()
    w.record("station.start")
    assert w.close() is True
    return w.fault


def test_the_writer_signs_its_head_with_the_station_key(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 7)
    head = load_head(folder)
    assert isinstance(head, Head)
    last = json.loads(lines_of(folder)[-1])
    assert head.point == (last["seq"], last["hash"])
    assert head.signed_by(KEY.public_key())
    assert not head.signed_by(Ed25519PrivateKey.generate().public_key())
    code, text = verify_path(folder)
    assert code == 0, text
    assert f"head signed at seq {last['seq']}" in text


def test_a_cut_tail_with_a_rewritten_head_fails_verify_and_the_start_check(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "audit"
    write(folder, 12)
    lines = crashed(folder)  # killed after a batch: records after the last checkpoint
    assert verify_path(folder)[0] == 0
    cut_tail(folder, lines, 2)  # two records gone, the head rewritten to the new end
    code, text = verify_path(folder)
    assert code == 1, text
    assert text.startswith(f"FAIL line {len(lines) - 1} (seq {len(lines) - 1}): unsigned_head: ")
    assert "audit.head is not signed" in text
    assert "may have been cut off" in text
    fault = start_fault(folder)
    assert fault is not None
    assert "unsigned_head" not in fault  # a sentence for a person, naming the problem
    assert "audit.head is not signed" in fault


def test_a_head_signed_by_another_key_vouches_for_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 12)
    lines = crashed(folder)
    kept = lines[:-2]
    (folder / "audit.jsonl").write_bytes(b"".join(kept))
    last = json.loads(kept[-1])
    other = signed_head(last["seq"], last["hash"], last["epoch"], Ed25519PrivateKey.generate())
    forged_head(folder, last, sig=other.sig)
    code, text = verify_path(folder)
    assert (code, ": unsigned_head: " in text) == (1, True), text
    assert "does not verify" in text
    assert "does not verify" in str(start_fault(folder))


def test_a_deleted_head_after_an_unclean_stop_is_a_fault_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 12)
    lines = crashed(folder)
    (folder / "audit.jsonl").write_bytes(b"".join(lines[:-3]))
    (folder / HEAD_FILE).unlink()
    assert "there is no audit.head" in str(start_fault(folder))


def test_an_unsigned_head_at_a_stop_checkpoint_is_the_previous_release_and_verifies(
    tmp_path: Path,
) -> None:
    """v0.1.0 wrote its head unsigned; after its clean stop the stop checkpoint, signed, ends
    the trail, so nothing is left for the head to vouch for."""
    folder = tmp_path / "audit"
    write(folder, 6)
    forged_head(folder, json.loads(lines_of(folder)[-1]))
    code, text = verify_path(folder)
    assert code == 0, text
    assert start_fault(folder) is None


def test_an_unsigned_head_cannot_pass_a_cut_back_to_an_earlier_checkpoint(tmp_path: Path) -> None:
    """Cutting back exactly to a checkpoint that opens an epoch is cutting records too."""
    folder = tmp_path / "audit"
    write(folder, 12)
    lines = crashed(folder)
    at = max(i for i, line in enumerate(lines) if b'"audit.checkpoint"' in line)
    cut_tail(folder, lines, len(lines) - at - 1)
    code, text = verify_path(folder)
    assert (code, ": unsigned_head: " in text) == (1, True), text


def test_a_hostile_head_never_stops_the_start(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 4)
    for body in (
        b"[" * 100_000,
        b'{"seq": Infinity, "hash": "x", "epoch": 1}',
        b'{"seq": 1e999, "hash": "x", "epoch": 1}',
        b'{"seq": ' + b"9" * 5000 + b', "hash": "x", "epoch": 1}',
        b'{"seq": 3, "seq": 4, "hash": "x", "epoch": 1}',
        b"\xff\xfe",
        b'{"seq": true, "hash": "x", "epoch": 1}',
        b" " * 70_000,
    ):
        (folder / HEAD_FILE).write_bytes(body)
        assert isinstance(parse_head(body), str)
        code, text = verify_path(folder)
        assert code == 1, (body[:20], text)
        fault = start_fault(folder)
        assert "audit.head" in str(fault), (body[:20], fault)
