"""The device registry's seal: what the station and its shell write is sealed with the station
key; a hand edit, a missing or foreign seal is found; a crash between the two writes is not a
false alarm; ``station devices accept`` seals a reviewed registry, audited."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.main import main
from station.domain.devices import differences
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import load_trust
from station.services.audit.inbox import INBOX_FILE
from station.services.audit.keys import existing_key
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.registry_seal import seal_path, write_seal
from tests.device_kit import trusted_maker, voucher_for


def _onboarded(tmp_path: Path, key: Ed25519PrivateKey | None) -> DeviceRegistry:
    maker = trusted_maker(tmp_path / "trust")
    registry = DeviceRegistry(tmp_path / "devices.json", key)
    for device, bed in (("mon-1", "Bed 1"), ("mon-2", "Bed 2")):
        text, _ = voucher_for(maker, device)
        book = registry.load()
        check = check_voucher(
            text, load_trust(tmp_path / "trust"), now=time.time(),
            used=book.used_vouchers, revoked=book.revoked,
        )  # fmt: skip
        registry.onboard(check, bed=bed, signing=True, by="admin", at=1.0)
    return registry


def _edit(registry: DeviceRegistry, device: str, **fields: object) -> None:
    doc = json.loads(registry.path.read_text())
    for rec in doc["devices"]:
        if rec["device_id"] == device:
            rec.update(fields)
    registry.path.write_text(json.dumps(doc))


def test_what_the_station_writes_is_sealed_and_owner_only(tmp_path: Path) -> None:
    registry = _onboarded(tmp_path, Ed25519PrivateKey.generate())
    assert registry.check().ok
    registry.reassign("mon-1", "Bed 3", by="admin", at=2.0)
    assert registry.check().ok
    assert (seal_path(registry.path).stat().st_mode & 0o777) == 0o600


def test_a_hand_edit_is_found_with_what_changed(tmp_path: Path) -> None:
    registry = _onboarded(tmp_path, Ed25519PrivateKey.generate())
    _edit(registry, "mon-2", signing=False)  # its forged messages would now be taken
    check = registry.check()
    assert not check.ok
    assert check.problem == "it differs from what the station last wrote"
    assert check.sealed is not None
    changes = differences(check.sealed, registry.load())
    assert changes == [
        {"device": "mon-2", "change": "changed", "fields": {"signing": [True, False]}}
    ]


def test_a_seal_of_another_key_a_missing_or_damaged_seal_are_refused(tmp_path: Path) -> None:
    registry = _onboarded(tmp_path, Ed25519PrivateKey.generate())
    foreign = DeviceRegistry(registry.path, Ed25519PrivateKey.generate())
    assert foreign.check().problem == "its seal is not this station's signature"
    seal = seal_path(registry.path)
    seal.write_text(seal.read_text()[:-20])
    assert registry.check().problem == "its seal is damaged"
    seal.unlink()
    assert registry.check().problem.startswith("it has no seal")
    registry.path.unlink()
    assert registry.check().ok  # no registry and no seal: a fresh station


def test_a_registry_deleted_by_hand_is_found(tmp_path: Path) -> None:
    registry = _onboarded(tmp_path, Ed25519PrivateKey.generate())
    registry.path.unlink()
    check = registry.check()
    assert not check.ok
    assert check.sealed is not None
    assert [c["change"] for c in differences(check.sealed, registry.load())] == ["removed"] * 2


def test_a_crash_between_the_seal_and_the_file_is_not_an_alarm(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    registry = _onboarded(tmp_path, key)
    before = registry.path.read_bytes()
    book = registry.load().reassign("mon-1", "Bed 4", "admin", 2.0)
    after = json.dumps(book.to_dict()).encode()
    # The process dies after the pending seal, before the file: the old registry still holds.
    write_seal(registry.path, after, book, key, pending=True)
    assert registry.path.read_bytes() == before
    assert registry.check().ok


def test_the_previous_registry_copied_back_later_is_found(tmp_path: Path) -> None:
    registry = _onboarded(tmp_path, Ed25519PrivateKey.generate())
    before = registry.path.read_bytes()
    registry.revoke("mon-1", by="admin", at=2.0)
    registry.path.write_bytes(before)  # the revoked device brought back from a copy
    check = registry.check()
    assert not check.ok
    assert check.problem == "it differs from what the station last wrote"


def test_without_a_key_nothing_is_sealed_or_checked(tmp_path: Path) -> None:
    registry = _onboarded(tmp_path, None)
    assert not seal_path(registry.path).exists()
    assert registry.check().ok


def test_the_stamp_follows_the_seal_too(tmp_path: Path) -> None:
    registry = _onboarded(tmp_path, Ed25519PrivateKey.generate())
    before = registry.stamp()
    registry.accept()
    assert registry.stamp() != before


def test_station_devices_accept_seals_a_reviewed_registry_and_audits_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n[ward]\nbeds = 4\n')
    data.mkdir()
    key = existing_key("ward")  # the run's STATION_AUDIT_KEY (tests/conftest.py)
    assert key is not None
    registry = _onboarded(data, key)
    _edit(registry, "mon-1", bed="Bed 4")
    assert not registry.check().ok
    capsys.readouterr()
    assert main(["--config", str(config), "devices", "accept"]) == 0
    out = capsys.readouterr().out
    assert "mon-1: changed" in out
    assert registry.check().ok
    waiting = [json.loads(line) for line in (data / INBOX_FILE).read_text().splitlines()]
    assert [(w["action"], w["role"]) for w in waiting] == [("devices.accept", "shell")]
    assert waiting[0]["details"]["changes"][0]["fields"] == {"bed": ["Bed 1", "Bed 4"]}
    assert main(["--config", str(config), "devices", "accept"]) == 0
    assert "nothing to accept" in capsys.readouterr().out
