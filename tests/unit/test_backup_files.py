"""``station backup`` and ``station restore`` on a data folder (issue 16), without a broker: one
owner-only tar with a signed manifest and no key; every store read back by its own reader after
a restore into a new folder, whose trail verifies and says what the restore lost; a changed byte,
a running station and a folder with data (without ``--replace``) refused, nothing deleted.
The backup of a station that runs and ingests is in ``tests/integration/test_backup_restore.py``.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from station.cli.audit import verify_path
from station.cli.main import main
from station.config import credentials
from station.domain.patients.table import PatientTable
from station.domain.roles import Role
from station.services.audit.inbox import INBOX_FILE
from station.services.audit.keys import read_anchor, station_key, write_anchor
from station.services.audit.writer import AuditWriter
from station.services.storage.accounts import Accounts
from station.services.storage.instance_lock import InstanceLock
from station.services.storage.patient_store import PatientStore
from station.services.storage.trends import TrendSample, TrendStore

STATION = "ward-7"
T0 = 1_790_000_000.0


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(f'[station]\nid = "{STATION}"\ndata_dir = "{tmp_path / "data"}"\n')
    return path


def run(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def trail(data: Path) -> list[dict[str, Any]]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def table() -> PatientTable:
    patients = PatientTable()
    patients.admit(
        "Bed 2", name="Zoë Ñúñez", mrn="ZX-1", birth_date=date(1988, 7, 2), by="n", at=T0
    )
    return patients


def make_station_folder(data: Path) -> None:
    """A data folder as a station leaves it: trail, stores, patients, registry, accounts."""
    writer = AuditWriter(
        data / "audit",
        station_key=station_key(STATION),
        station=STATION,
        on_checkpoint=write_anchor,
    )
    writer.start()
    writer.record("alarm.raise", target="Bed 2")
    assert writer.close()
    trends = TrendStore(data / "trends.sqlite", clock=lambda: T0 + 60)
    trends.open()
    trends.add(
        [
            TrendSample("Bed 2", "mon-2", int((T0 + i) * 1000), {"heartrate": 60.0 + i})
            for i in range(30)
        ]
    )
    trends.close()
    PatientStore(data / "patients.enc", STATION).save(table())
    Accounts(data / "users.json", scrypt_n=2**10).create("admin", Role.ADMIN, "admin password 1")
    (data / "devices.json").write_text('{"devices": {}}\n')
    (data / "devices.json.seal").write_text('{"sha256": "its seal"}\n')  # kept beside it
    (data / "trust" / "manufacturers").mkdir(parents=True)
    (data / "trust" / "manufacturers" / "acme.pem").write_text("public key\n")
    (data / "link-elsewhere").symlink_to("/etc/hostname")
    (data / "station.lock").write_text("")
    (data / INBOX_FILE).touch(mode=0o600)


def test_backup_and_restore_into_a_new_folder(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    make_station_folder(data)
    out = tmp_path / "backup.tar"
    assert run(config, "backup", "--out", str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert "data/trends.sqlite" in names
    assert "data/patients.enc" in names
    assert "data/audit/audit.jsonl" in names
    assert "data/trust/manufacturers/acme.pem" in names
    assert "settings/station.toml" in names
    for left_out in ("data/station.lock", f"data/{INBOX_FILE}", "data/link-elsewhere"):
        assert left_out not in names
    assert modes["data/patients.enc"] == 0o600
    assert manifest["station"] == STATION
    assert manifest["audit"]["last"]["seq"] >= 3
    assert {f["path"]: f["kind"] for f in manifest["files"]}["data/trends.sqlite"] == "sqlite"
    blob = out.read_bytes()
    for kind in ("audit", "patients"):  # no key in a backup
        secret = credentials.secret(kind, STATION)
        assert secret
        assert secret.encode() not in blob
    backup_record = next(r for r in trail(data) if r["action"] == "station.backup")
    assert backup_record["role"] == "shell"
    assert backup_record["details"]["audit_head"] == manifest["audit"]["last"]

    new = tmp_path / "new"
    capsys.readouterr()
    assert run(config, "restore", str(out), "--data-dir", str(new)) == 0
    said = capsys.readouterr().out
    assert "lost by this restore" in said
    restored = TrendStore(new / "trends.sqlite", clock=lambda: T0 + 60).query(
        "Bed 2", T0 - 1, T0 + 60
    )
    assert restored.rows == 30
    assert list(restored.mean["heartrate"]) == [60.0 + i for i in range(30)]
    patients = PatientStore(new / "patients.enc", STATION).load()
    assert patients.to_dict() == PatientStore(data / "patients.enc", STATION).load().to_dict()
    assert [p.name for p in patients.all_patients()] == ["Zoë Ñúñez"]
    assert Accounts(new / "users.json").role_of("admin") is Role.ADMIN
    assert (new / "devices.json").read_bytes() == (data / "devices.json").read_bytes()
    assert (new / "devices.json.seal").read_bytes() == (data / "devices.json.seal").read_bytes()
    assert stat.S_IMODE((new / "patients.enc").stat().st_mode) == 0o600
    code, verdict = verify_path(new, use_anchor=True)
    assert code == 0, verdict
    restore = next(r for r in trail(new) if r["action"] == "station.restore")
    assert restore["details"]["backup_head"] == manifest["audit"]["last"]
    assert restore["details"]["backup_time"] == manifest["created"]
    # The station's anchor named the original trail's end (the backup's own record and
    # checkpoints came after the copy): the restore names it as replaced and lost.
    assert restore["details"]["replaced"]["anchor"]["seq"] > manifest["audit"]["last"]["seq"]
    assert "records" in restore["details"]["lost"]
    anchor = read_anchor(STATION)
    assert anchor is not None
    assert anchor.seq == trail(new)[-1]["seq"]  # the restore's last checkpoint


def test_a_changed_byte_is_refused_and_nothing_written(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    make_station_folder(data)
    out = tmp_path / "backup.tar"
    assert run(config, "backup", "--out", str(out)) == 0
    blob = bytearray(out.read_bytes())
    at = blob.index(b"admin")  # in users.json's content
    blob[at] ^= 0x01
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(bytes(blob))
    capsys.readouterr()
    new = tmp_path / "new"
    assert run(config, "restore", str(tampered), "--data-dir", str(new)) == 2
    assert "users.json" in capsys.readouterr().err
    assert not new.exists()


def test_a_running_station_or_a_folder_with_data_is_not_restored_over(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    make_station_folder(data)
    out = tmp_path / "backup.tar"
    assert run(config, "backup", "--out", str(out)) == 0
    before = trail(data)
    lock = InstanceLock(data)
    lock.acquire()
    try:
        capsys.readouterr()
        assert run(config, "restore", str(out), "--replace") == 2
        assert "stop it first" in capsys.readouterr().err
    finally:
        lock.release()
    assert run(config, "restore", str(out)) == 2
    assert "--replace" in capsys.readouterr().err
    assert trail(data) == before
    assert run(config, "restore", str(out), "--replace") == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("data.before-restore-")]
    assert len(aside) == 1
    assert [
        json.loads(line) for line in (aside[0] / "audit" / "audit.jsonl").read_text().splitlines()
    ] == before
    restore = next(r for r in trail(data) if r["action"] == "station.restore")
    assert restore["details"]["moved_aside"] == str(aside[0])
    assert restore["details"]["replaced"]["head"]["seq"] == before[-1]["seq"]
    assert verify_path(data, use_anchor=True)[0] == 0


def test_a_backup_needs_the_station_key(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.delenv(credentials.ENV["audit"])
    assert run(config, "backup", "--out", str(tmp_path / "b.tar")) == 2
    assert not (tmp_path / "b.tar").exists()
    assert os.listdir(tmp_path / "data") == []


def test_a_folder_of_another_user_is_left_to_that_user(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data"
    make_station_folder(data)
    before = trail(data)
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 4242)  # a root shell beside the station
    assert run(config, "backup", "--out", str(tmp_path / "b.tar")) == 2
    assert "run the command as the station's user" in capsys.readouterr().err
    assert run(config, "restore", str(tmp_path / "b.tar"), "--replace") == 2
    assert trail(data) == before
    assert not (tmp_path / "b.tar").exists()
