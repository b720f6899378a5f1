"""Backup and restore against a real broker (issue 16): a backup taken while the station ingests,
restored into a new data folder, verifies, holds the trends and patients, records the restore and
starts without a rollback alarm — although the broker still keeps the checkpoint of the trail it
replaced. A folder put back by hand, and the restored folder put back to an older copy of itself,
still raise the alarm. A changed byte, and a restore onto the running station's folder, are
refused."""

from __future__ import annotations

import json
import shutil
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from station.app import Station
from station.cli.audit import verify_path
from station.cli.main import main
from station.config.settings import Settings
from station.domain.patients.table import PatientTable
from station.services.audit.checkpoints import BrokerCheckpointCheck
from station.services.audit.inbox import INBOX_FILE, drain_inbox
from station.services.storage.instance_lock import InstanceLock, holder
from station.services.storage.patient_store import PatientStore
from station.services.storage.trends import TrendStore
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import publish, running_station, station_settings
from tests.integration.test_audit_outside import retained_checkpoint
from tests.payloads import vitals

STATION = "ward-test"  # station_settings' id
T0 = time.time() - 600  # device times: ten minutes ago, one a second


def trail(data: Path) -> list[dict[str, Any]]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def trend_rows(data: Path) -> int:
    path = data / "trends.sqlite"
    if not path.exists():
        return 0
    return TrendStore(path).query("Bed 1", T0 - 1, T0 + 600).rows


@contextmanager
def process_lock(data: Path) -> Iterator[None]:
    """The instance lock ``station`` takes for its process (``running_station`` runs the
    station in this one), unless the station took it itself."""
    lock = InstanceLock(data)
    if holder(data) is None:
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def cli(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def station_on(qtbot: QtBot, broker: Mosquitto, data: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return running_station(qtbot, broker, station_settings(broker, data), monkeypatch)


def assert_rolled_back(station: Station, qtbot: QtBot) -> None:
    qtbot.waitUntil(lambda: "rolled back" in str(station.audit.fault), timeout=15000)
    qtbot.waitUntil(
        lambda: any("Audit trail" in a.message for a in station.window.alarm_list.alarms()),
        timeout=5000,
    )


def test_backup_while_ingesting_then_restore_is_no_rollback_but_a_copy_back_is(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, restored = tmp_path / "data", tmp_path / "restored"
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\nid = "{STATION}"\ndata_dir = "{data}"\n')
    patients = PatientTable()
    patients.admit(
        "Bed 3", name="Ada Lovelace", mrn="M-1", birth_date=date(1951, 3, 14), by="n", at=T0
    )
    PatientStore(data / "patients.enc", STATION).save(patients)
    backup = tmp_path / "ward.tar"

    settings: Settings = station_settings(mosquitto, data)
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station, process_lock(data):
        publish(
            mosquitto,
            "monitor-a",
            [vitals("monitor-a", at=T0 + i, heartrate=70) for i in range(30)],
        )
        qtbot.waitUntil(lambda: trend_rows(data) >= 30, timeout=15000)
        more = threading.Thread(
            target=publish,
            args=(mosquitto, "monitor-a", [vitals("monitor-a", at=T0 + 30 + i) for i in range(60)]),
        )
        more.start()  # the station ingests while the backup copies
        try:
            assert cli(config, "backup", "--out", str(backup)) == 0
        finally:
            more.join(30)
        assert "left in the audit inbox" in capsys.readouterr().out
        drain_inbox(data / INBOX_FILE, station.audit.record)  # the station's audit thread's job
        qtbot.waitUntil(
            lambda: any(r["action"] == "station.backup" for r in trail(data)), timeout=5000
        )
        assert cli(config, "restore", str(backup), "--replace") == 2
        assert "stop it first" in capsys.readouterr().err
    # The station goes on after the backup; a restart publishes a checkpoint on the broker
    # (retained) that the backup does not hold.
    with station_on(qtbot, mosquitto, data, monkeypatch), process_lock(data):
        publish(mosquitto, "monitor-b", [vitals("monitor-b", at=time.time())])
    old_checkpoint = retained_checkpoint(mosquitto, STATION)

    # A byte changed anywhere in the backup: refused before anything is written.
    blob = bytearray(backup.read_bytes())
    blob[blob.index(b"SQLite format 3") + 200] ^= 0x01
    (tmp_path / "tampered.tar").write_bytes(bytes(blob))
    assert cli(config, "restore", str(tmp_path / "tampered.tar"), "--data-dir", str(restored)) == 2
    assert not restored.exists()

    assert cli(config, "restore", str(backup), "--data-dir", str(restored)) == 0
    assert verify_path(restored, use_anchor=True)[0] == 0
    kept = tmp_path / "old-checkpoint.json"
    kept.write_text(old_checkpoint.to_json())
    assert verify_path(restored, checkpoints=[kept])[0] == 0  # the restore accounts for it
    restore = next(r for r in trail(restored) if r["action"] == "station.restore")
    backup_head = restore["details"]["backup_head"]["seq"]
    assert old_checkpoint.seq > backup_head  # the broker's checkpoint is not in the backup
    anchor = restore["details"]["replaced"]["anchor"]["seq"]  # the keyring's: the last stop
    assert anchor > old_checkpoint.seq
    assert restore["details"]["lost"].startswith(f"records {backup_head + 1}..{anchor} ")
    assert trend_rows(restored) >= 30
    loaded = PatientStore(restored / "patients.enc", STATION).load()
    assert [p.name for p in loaded.all_patients()] == ["Ada Lovelace"]
    after_restore = tmp_path / "after-restore"
    shutil.copytree(restored, after_restore)

    # The station on the restored folder: the broker still keeps the replaced trail's
    # checkpoint, and says so first; the signed restore accounts for it.
    seen: list[bytes] = []
    check = BrokerCheckpointCheck.check

    def checked(self: BrokerCheckpointCheck, payload: bytes) -> None:
        check(self, payload)
        seen.append(payload)

    monkeypatch.setattr(BrokerCheckpointCheck, "check", checked)
    with station_on(qtbot, mosquitto, restored, monkeypatch) as station, process_lock(restored):
        qtbot.waitUntil(
            lambda: any(json.loads(p)["record"]["seq"] == old_checkpoint.seq for p in seen),
            timeout=15000,
        )
        assert station.audit.fault is None
        assert not any("Audit trail" in a.message for a in station.window.alarm_list.alarms())
    assert not [r for r in trail(restored) if r["action"] == "audit.verify"]

    # The restored folder put back to its copy right after the restore: the restore record is
    # there, but the checkpoints the station made since are not: a rollback too.
    with (
        station_on(qtbot, mosquitto, after_restore, monkeypatch) as station,
        process_lock(after_restore),
    ):
        assert_rolled_back(station, qtbot)
    # A folder copied back by hand (the backup unpacked, no restore): a rollback.
    by_hand = tmp_path / "by-hand"
    with tarfile.open(backup) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    shutil.copytree(tmp_path / "unpacked" / "data", by_hand)
    with station_on(qtbot, mosquitto, by_hand, monkeypatch) as station, process_lock(by_hand):
        assert_rolled_back(station, qtbot)
