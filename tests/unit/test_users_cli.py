"""``station users`` changes are audited as shell commands: in the trail when no station runs,
through the running station's inbox otherwise, and before any trail exists, in the inbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from station.cli.main import main
from station.services.audit.inbox import INBOX_FILE
from station.services.audit.keys import station_key
from station.services.audit.writer import AuditWriter
from station.services.storage.instance_lock import InstanceLock

STATION = "ward-users"
PASSWORD = "correct horse battery"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STATION_NEW_PASSWORD", PASSWORD)
    path = tmp_path / "station.toml"
    path.write_text(f'[station]\nid = "{STATION}"\ndata_dir = "{tmp_path / "data"}"\n')
    return path


def users(config: Path, *args: str) -> int:
    return main(["--config", str(config), "users", *args])


def trail(data: Path) -> list[dict[str, object]]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_the_first_admin_waits_in_the_inbox_for_the_first_trail(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert users(config, "add", "boss", "--role", "admin") == 0
    waiting = json.loads((tmp_path / "data" / INBOX_FILE).read_text())
    assert waiting["action"] == "user.create"
    assert waiting["target"] == "boss"
    assert waiting["details"] == {"role": "admin", "pin": False}
    assert waiting["actor"].startswith("shell:")
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err


def test_each_change_is_in_the_trail_with_the_shell_user(config: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    writer = AuditWriter(data / "audit", station_key=station_key(STATION), station=STATION)
    writer.start()
    assert writer.close()
    assert users(config, "add", "boss", "--role", "admin") == 0
    assert users(config, "add", "nina", "--role", "nurse") == 0
    assert users(config, "passwd", "nina") == 0
    assert users(config, "unlock", "nina") == 0
    records = [r for r in trail(data) if str(r["action"]).startswith("user.")]
    assert [(r["action"], r["target"]) for r in records] == [
        ("user.create", "boss"),
        ("user.create", "nina"),
        ("user.password_reset", "nina"),
        ("user.unlock", "nina"),
    ]
    assert {r["role"] for r in records} == {"shell"}
    assert all(str(r["actor"]).startswith("shell:") for r in records)
    assert PASSWORD not in (data / "audit" / "audit.jsonl").read_text()


def test_beside_a_running_station_the_change_goes_through_its_inbox(
    config: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    writer = AuditWriter(data / "audit", station_key=station_key(STATION), station=STATION)
    writer.start()
    assert writer.close()
    assert users(config, "add", "boss", "--role", "admin") == 0
    lock = InstanceLock(data)
    lock.acquire()  # a station runs
    try:
        assert users(config, "add", "otto", "--role", "ward_staff") == 0
    finally:
        lock.release()
    waiting = json.loads((data / INBOX_FILE).read_text())
    assert (waiting["action"], waiting["target"]) == ("user.create", "otto")


def test_a_refused_change_is_not_recorded(config: Path, tmp_path: Path) -> None:
    assert users(config, "unlock", "nobody") == 2
    assert not (tmp_path / "data" / INBOX_FILE).exists()
