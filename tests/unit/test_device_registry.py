"""The device registry file and ``station devices``: onboard, list, reassign, revoke, replay
refused, a damaged file never read as an empty registry, owner-only permissions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from station.cli.main import main
from station.config.key_files import save_public_key
from station.domain.devices import DeviceBook, RegistryError
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import load_trust
from station.domain.vouchers.model import VoucherCheck
from station.services.audit.inbox import INBOX_FILE
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.instance_lock import InstanceLock
from tests.device_kit import trusted_maker, voucher_for


def _check(trust: Path, text: str, book: DeviceBook) -> VoucherCheck:
    return check_voucher(
        text, load_trust(trust), now=time.time(), used=book.used_vouchers, revoked=book.revoked
    )


def test_onboard_reassign_revoke_and_replay(tmp_path: Path) -> None:
    maker = trusted_maker(tmp_path / "trust")
    registry = DeviceRegistry(tmp_path / "devices.json")
    text, _ = voucher_for(maker, "mon-1")
    check = _check(tmp_path / "trust", text, registry.load())
    rec = registry.onboard(check, bed="Bed 1", signing=True, by="admin", at=1.0)
    assert rec.device_id == "mon-1"
    assert (registry.path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(RegistryError, match="already onboarded"):
        registry.onboard(check, bed="Bed 2", signing=True, by="admin", at=2.0)
    other, _ = voucher_for(maker, "mon-2")
    check2 = _check(tmp_path / "trust", other, registry.load())
    with pytest.raises(RegistryError, match="Bed 1 is fed by mon-1"):
        registry.onboard(check2, bed="Bed 1", signing=False, by="admin", at=2.0)
    registry.reassign("mon-1", "Bed 3", by="admin", at=3.0)
    registry.revoke("mon-1", by="admin", at=4.0)
    book = registry.load()
    gone = book.get("mon-1")
    assert gone is not None
    assert not gone.active
    assert gone.bed == ""
    assert book.revoked == {"mon-1"}
    # After revocation the same voucher is refused by the voucher check, naming the device.
    again = _check(tmp_path / "trust", text, book)
    assert not again.ok
    assert "mon-1" in again.reason


def test_a_damaged_registry_is_an_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "devices.json"
    path.write_text('{"format": 1, "devices": [{"device_id": "x"}]}')
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="wrong fields"):
        DeviceRegistry(path).load()
    with pytest.raises(RegistryError):
        DeviceRegistry(path).revoke("x", by="a", at=1.0)
    assert path.read_bytes() == before
    path.write_text("not json")
    with pytest.raises(RegistryError, match="not JSON"):
        DeviceRegistry(path).load()


def test_station_devices_scripts_a_ward(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n[ward]\nbeds = 4\n')
    keys = tmp_path / "keys"
    keys.mkdir()
    assert main(["--config", str(config), "devices", "keygen", "--out", str(keys / "maker")]) == 0
    assert main(["--config", str(config), "devices", "trust", str(keys / "maker.pub")]) == 0
    assert main(["--config", str(config), "devices", "keygen", "--out", str(keys / "mon-7")]) == 0
    voucher = tmp_path / "mon-7.json"
    args = ["--key", str(keys / "maker.key"), "--device-id", "mon-7", "--model", "VM-7"]
    args += ["--serial", "7", "--device-key", str(keys / "mon-7.pub")]
    args += ["--manufacturer", "Acme", "--out", str(voucher)]
    assert main(["--config", str(config), "devices", "voucher", *args]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "devices", "onboard", str(voucher), "--bed", "3"]) == 0
    out = capsys.readouterr().out
    assert "mon-7 onboarded to Bed 3 (signing)" in out
    assert "mon-7:$7$101$" in out
    password = out.split("broker password (shown once, not kept): ")[1].split()[0]
    for path in data.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    # A replay is refused with its reason and exit 2.
    assert main(["--config", str(config), "devices", "onboard", str(voucher), "--bed", "4"]) == 2
    assert "already" in capsys.readouterr().err
    assert main(["--config", str(config), "devices", "reassign", "mon-7", "2"]) == 0
    assert main(["--config", str(config), "devices", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("mon-7\tBed 2\tsigning\tactive")
    assert main(["--config", str(config), "devices", "reassign", "mon-7", "9"]) == 2
    assert main(["--config", str(config), "devices", "revoke", "mon-7"]) == 0
    doc = json.loads((data / "devices.json").read_text())
    assert doc["devices"][0]["revoked_by"].endswith("(shell)")
    assert main(["--config", str(config), "devices", "revoke", "mon-7"]) == 2
    # No station ran: each change waits in the audit inbox for its first start (no trail yet).
    waiting = [json.loads(line) for line in (data / INBOX_FILE).read_text().splitlines()]
    assert [(w["action"], w["role"]) for w in waiting] == [
        ("device.trust", "shell"),
        ("device.onboard", "shell"),
        ("device.reassign", "shell"),
        ("device.revoke", "shell"),
    ]
    assert waiting[1]["target"] == "mon-7"
    assert waiting[1]["details"] == {"bed": "Bed 3", "signing": True}
    assert password not in (data / INBOX_FILE).read_text()


def test_beside_a_running_station_a_trusted_key_goes_through_its_inbox(tmp_path: Path) -> None:
    """The running station audits registry changes itself (from the registry, within a second);
    the trust folder it does not watch, so the shell records that change."""
    data = tmp_path / "data"
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n[ward]\nbeds = 4\n')
    keys = tmp_path / "keys"
    keys.mkdir()
    assert main(["--config", str(config), "devices", "keygen", "--out", str(keys / "maker")]) == 0
    lock = InstanceLock(data)
    lock.acquire()  # a station runs on the folder
    try:
        assert main(["--config", str(config), "devices", "trust", str(keys / "maker.pub")]) == 0
    finally:
        lock.release()
    waiting = [json.loads(line) for line in (data / INBOX_FILE).read_text().splitlines()]
    assert [w["action"] for w in waiting] == ["device.trust"]


def test_a_forged_trust_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n')
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    assert main(["--config", str(config), "devices", "trust", str(bad)]) == 2
    assert "bad.pub" in capsys.readouterr().err
    maker = trusted_maker(tmp_path / "elsewhere")
    save_public_key(tmp_path / "ok.pub", maker.public_key())
    assert main(["--config", str(config), "devices", "trust", str(tmp_path / "ok.pub")]) == 0
