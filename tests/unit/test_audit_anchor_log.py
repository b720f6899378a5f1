"""Without a keyring, a second guard against a rolled-back audit folder (hardening, "audit
edges"): an unattended service kept its last checkpoint only on the broker, so a folder copied
back while the broker was away, or after its retained message was cleared, passed the start
check. With ``STATION_AUDIT_ANCHOR_LOG`` every checkpoint is appended to a log outside the data
folder, and the start compares the trail with the newest line the station key signed.

This module installs no memory keyring: as on a service, there is no secure keyring at all, and
the station key comes from ``STATION_AUDIT_KEY`` (set for every test)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.audit import verify_path
from station.config import credentials
from station.config.credentials import use_memory_keyring  # noqa: F401 - no memory keyring here
from station.domain.audit.keyed import Published
from station.services.audit import anchor_log
from station.services.audit.keys import decode_station_key, read_anchor, write_anchor
from station.services.audit.writer import AuditWriter
from tests.fakes import FakeClock
from tests.unit.audit_cases import re_signed
from tests.unit.test_audit_keyed import lines_of

T0 = 1_790_000_000.0


def station_writer(folder: Path, start: float) -> AuditWriter:
    key = decode_station_key(os.environ["STATION_AUDIT_KEY"])
    return AuditWriter(
        folder,
        FakeClock(start, tick=1.0),
        station_key=key,
        station="ward-7",
        checkpoint_every=5,
        on_checkpoint=write_anchor,  # what the station's publisher does besides the broker
    )


def run(folder: Path, count: int, start: float) -> str | None:
    w = station_writer(folder, start)
    w.start(published=[anchor] if (anchor := read_anchor("ward-7")) is not None else [])
    for i in range(count):
        w.record("alarm.raise", target=f"Bed {i % 4 + 1}")
    assert w.close() is True
    return w.fault


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "outside" / "anchors.jsonl"
    path.parent.mkdir()
    monkeypatch.setenv(anchor_log.ENV, str(path))
    monkeypatch.delenv("STATION_AUDIT_ANCHOR", raising=False)
    assert not credentials.backend_status().ok  # the unattended case: no keyring
    return path


def test_a_rolled_back_folder_is_found_without_keyring_or_broker(log: Path, tmp_path: Path) -> None:
    data = tmp_path / "audit"
    assert run(data, 6, T0) is None
    older = tmp_path / "older"
    shutil.copytree(data, older)
    assert run(data, 6, T0 + 100) is None
    newest = read_anchor("ward-7")
    assert newest is not None
    assert newest.record["details"]["reason"] == "stop"
    shutil.rmtree(data)
    shutil.copytree(older, data)  # the whole folder put back, head and key file included
    fault = run(data, 1, T0 + 200)
    assert fault is not None
    assert "rolled back" in fault
    assert f"seq {newest.seq}" in fault


def test_lines_not_signed_by_the_station_key_are_passed_over(log: Path, tmp_path: Path) -> None:
    data = tmp_path / "audit"
    assert run(data, 3, T0) is None
    genuine = read_anchor("ward-7")
    assert genuine is not None
    other = Ed25519PrivateKey.generate()
    forged = dict(genuine.record, seq=genuine.seq + 1000)
    forged["sig"] = "A" * 88
    with log.open("ab") as handle:
        handle.write(Published("ward-7", forged).to_json().encode() + b"\n")
        handle.write(b'{"station": "ward-7", "record": ' + b"[" * 50_000 + b"\n")
        handle.write(b"torn, no newline")
    assert read_anchor("ward-7") == genuine
    assert anchor_log.newest(log, "ward-7", other.public_key()) is None
    assert run(data, 1, T0 + 50) is None  # the forged line raises no false alarm
    assert read_anchor("ward-7") != genuine  # and the next checkpoint is appended after it


def test_a_relative_log_path_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(anchor_log.ENV, "anchors.jsonl")
    assert anchor_log.log_path() is None


def test_a_trail_rewritten_with_the_station_key_still_contradicts_the_log(
    log: Path, tmp_path: Path
) -> None:
    """Whoever holds the station key can re-sign a rewritten trail, and append its checkpoint
    to the log; the checkpoints the station appended before stay, and the auditor's verify
    holds the trail to every one of them."""
    data = tmp_path / "audit"
    assert run(data, 8, T0) is None
    key = decode_station_key(os.environ["STATION_AUDIT_KEY"])
    assert verify_path(data, use_anchor=True)[0] == 0
    re_signed(data, key)  # every record's actor rewritten, re-sealed, re-signed, head too
    forged_last = Published("ward-7", json.loads(lines_of(data)[-1]))
    anchor_log.append(log, forged_last)  # the log's newest line is now the forger's
    assert read_anchor("ward-7") == forged_last
    code, text = verify_path(data)
    assert code == 0, text  # in itself the rewritten trail is intact under the key
    code, text = verify_path(data, use_anchor=True)
    assert code == 1, text
    assert ": rolled_back: " in text
    assert "does not hold the checkpoint published at seq 1 " in text
