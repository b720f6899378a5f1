"""``station keys`` (issue 16): keys for an unattended service in the very format the station
reads, never over a trail or patient table they would orphan; an encrypted export that only the
passphrase opens, imported into the keyring or a new environment file; owner-only files, nothing
secret on the terminal or in the log, and both directions audited."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import date
from pathlib import Path

import pytest

from station.cli.main import main
from station.config import credentials
from station.config.credentials import MemoryKeyring
from station.domain.patients.table import PatientTable
from station.domain.vouchers.keys import key_id
from station.services.audit.inbox import INBOX_FILE
from station.services.audit.keys import decode_station_key, station_key
from station.services.audit.writer import AuditWriter
from station.services.backup import key_envelope
from station.services.storage.instance_lock import InstanceLock
from station.services.storage.patient_store import PatientStore

STATION = "ward-7"
PASSPHRASE = "a long enough passphrase"
AUDIT = "STATION_AUDIT_KEY"
PATIENTS = "STATION_PATIENT_KEY"


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lowest cost an import accepts: tests derive many keys on a shared machine."""
    monkeypatch.setattr(key_envelope, "SCRYPT_N", key_envelope.MIN_N)
    monkeypatch.setenv("STATION_KEYS_PASSPHRASE", PASSPHRASE)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(f'[station]\nid = "{STATION}"\ndata_dir = "{tmp_path / "data"}"\n')
    return path


def keys_cmd(config: Path, *args: str) -> int:
    return main(["--config", str(config), "keys", *args])


def env_lines(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs if not name.startswith("#")}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def no_secret_shown(texts: list[str], secrets: list[str]) -> None:
    for secret in secrets:
        assert secret
        for text in texts:
            assert secret not in text


def test_generate_writes_what_the_station_reads_and_shows_only_the_key_id(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv(AUDIT)
    out = tmp_path / "station.env"
    assert keys_cmd(config, "generate", "--out", str(out)) == 0
    assert mode(out) == 0o600
    values = env_lines(out)
    assert set(values) == {AUDIT, PATIENTS}
    shown = capsys.readouterr()
    no_secret_shown([shown.out, shown.err, caplog.text], [values[AUDIT], values[PATIENTS]])
    kid = key_id(decode_station_key(values[AUDIT]).public_key())
    assert kid in shown.out
    # The station, given the file as its environment, uses exactly these keys.
    monkeypatch.setenv(AUDIT, values[AUDIT])
    monkeypatch.setenv(PATIENTS, values[PATIENTS])
    assert key_id(station_key(STATION).public_key()) == kid
    store = PatientStore(tmp_path / "patients.enc", STATION)
    table = PatientTable()
    table.admit("Bed 1", name="Ada", mrn="M-1", birth_date=date(1950, 1, 1), by="n", at=1.0)
    store.save(table)
    assert PatientStore(tmp_path / "patients.enc", STATION).load() == table


def test_generate_never_writes_over_a_file(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(AUDIT)
    out = tmp_path / "station.env"
    out.write_text("the only copy\n")
    assert keys_cmd(config, "generate", "--out", str(out)) == 2
    assert out.read_text() == "the only copy\n"


@pytest.mark.parametrize("made", ["trail", "patients"])
def test_generate_refuses_a_folder_whose_trail_or_patients_new_keys_would_orphan(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    made: str,
) -> None:
    data = tmp_path / "data"
    if made == "trail":
        writer = AuditWriter(data / "audit", station_key=station_key(STATION), station=STATION)
        writer.start()
        assert writer.close()
    else:
        data.mkdir()
        (data / "patients.enc").write_bytes(b"STPT1\n" + b"\0" * 40)
    monkeypatch.delenv(AUDIT)
    out = tmp_path / "station.env"
    assert keys_cmd(config, "generate", "--out", str(out), "--force") == 2
    err = capsys.readouterr().err
    assert "keys export" in err
    assert "keys import" in err
    assert not out.exists()


def test_generate_refuses_when_the_station_has_keys_unless_forced(
    config: Path, tmp_path: Path
) -> None:
    # tests/conftest.py sets STATION_AUDIT_KEY: this station has a key.
    assert keys_cmd(config, "generate", "--out", str(tmp_path / "a.env")) == 2
    assert not (tmp_path / "a.env").exists()
    assert keys_cmd(config, "generate", "--out", str(tmp_path / "a.env"), "--force") == 0


def keyring_with_keys(ring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv(AUDIT)
    values = {
        "audit": base64.b64encode(os.urandom(32)).decode(),
        "patients": base64.b64encode(os.urandom(32)).decode(),
    }
    for kind, value in values.items():
        credentials.store_secret(kind, STATION, value)
    assert ring.accounts()
    return values


def test_export_and_import_round_trip_through_the_keyring(
    config: Path,
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    values = keyring_with_keys(memory_keyring, monkeypatch)
    exported = tmp_path / "keys.json"
    assert keys_cmd(config, "export", "--out", str(exported)) == 0
    assert mode(exported) == 0o600
    text = exported.read_text()
    doc = json.loads(text)
    kid = key_id(decode_station_key(values["audit"]).public_key())
    assert (doc["station"], doc["audit_key_id"], doc["format"]) == (STATION, kid, "station-keys/1")
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["n"] >= 2**15
    no_secret_shown([text], [*values.values(), PASSPHRASE])
    # Audited without a word of the keys: no trail yet, so the station will take it in.
    inbox = (tmp_path / "data" / INBOX_FILE).read_text()
    assert json.loads(inbox)["action"] == "keys.export"
    no_secret_shown([inbox], list(values.values()))

    for kind in values:  # a new machine
        credentials.delete_secret(kind, STATION)
    assert keys_cmd(config, "import", str(exported)) == 0
    assert {kind: credentials.secret(kind, STATION) for kind in values} == values
    shown = capsys.readouterr()
    no_secret_shown([shown.out, shown.err, caplog.text], [*values.values(), PASSPHRASE])
    inbox_lines = (tmp_path / "data" / INBOX_FILE).read_text().splitlines()
    assert [json.loads(line)["action"] for line in inbox_lines] == ["keys.export", "keys.import"]


def test_import_into_a_new_environment_file(
    config: Path,
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = keyring_with_keys(memory_keyring, monkeypatch)
    exported = tmp_path / "keys.json"
    assert keys_cmd(config, "export", "--out", str(exported)) == 0
    env_file = tmp_path / "service.env"
    assert keys_cmd(config, "import", str(exported), "--env-file", str(env_file)) == 0
    assert mode(env_file) == 0o600
    assert env_lines(env_file) == {AUDIT: values["audit"], PATIENTS: values["patients"]}
    assert keys_cmd(config, "import", str(exported), "--env-file", str(env_file)) == 2


def test_a_wrong_passphrase_or_an_edited_file_imports_nothing(
    config: Path,
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = keyring_with_keys(memory_keyring, monkeypatch)
    exported = tmp_path / "keys.json"
    assert keys_cmd(config, "export", "--out", str(exported)) == 0
    for kind in values:
        credentials.delete_secret(kind, STATION)
    capsys.readouterr()
    monkeypatch.setenv("STATION_KEYS_PASSPHRASE", "not the passphrase at all")
    assert keys_cmd(config, "import", str(exported)) == 2
    assert "wrong passphrase" in capsys.readouterr().err
    assert credentials.secret("audit", STATION) is None

    monkeypatch.setenv("STATION_KEYS_PASSPHRASE", PASSPHRASE)
    doc = json.loads(exported.read_text())
    doc["created"] = "2020-01-01T00:00:00.000Z"  # clear, but authenticated
    exported.write_text(json.dumps(doc))
    assert keys_cmd(config, "import", str(exported)) == 2
    assert "altered" in capsys.readouterr().err
    assert credentials.secret("audit", STATION) is None


def test_import_never_replaces_a_different_key_in_use(
    config: Path,
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = keyring_with_keys(memory_keyring, monkeypatch)
    exported = tmp_path / "keys.json"
    assert keys_cmd(config, "export", "--out", str(exported)) == 0
    other = base64.b64encode(os.urandom(32)).decode()
    credentials.store_secret("patients", STATION, other)
    assert keys_cmd(config, "import", str(exported)) == 2
    assert "not replaced" in capsys.readouterr().err
    assert credentials.secret("patients", STATION) == other
    assert credentials.secret("audit", STATION) == values["audit"]


def test_a_short_passphrase_is_refused(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATION_KEYS_PASSPHRASE", "short")
    assert keys_cmd(config, "export", "--out", str(tmp_path / "k.json")) == 2
    assert not (tmp_path / "k.json").exists()


def test_export_is_audited_in_the_trail_or_through_the_running_station(
    config: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    writer = AuditWriter(data / "audit", station_key=station_key(STATION), station=STATION)
    writer.start()
    assert writer.close()
    assert keys_cmd(config, "export", "--out", str(tmp_path / "one.json")) == 0
    trail = [json.loads(line) for line in (data / "audit" / "audit.jsonl").read_text().splitlines()]
    record = next(r for r in trail if r["action"] == "keys.export")
    assert record["role"] == "shell"
    assert record["actor"].startswith("shell:")
    assert record["target"] == str(tmp_path / "one.json")
    assert record["details"]["kinds"] == ["audit"]
    lock = InstanceLock(data)
    lock.acquire()  # a station runs
    try:
        assert keys_cmd(config, "export", "--out", str(tmp_path / "two.json")) == 0
    finally:
        lock.release()
    waiting = json.loads((data / INBOX_FILE).read_text())
    assert waiting["target"] == str(tmp_path / "two.json")


def test_no_key_file_is_written_into_the_data_folder(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(AUDIT)
    inside = tmp_path / "data" / "station.env"
    (tmp_path / "data").mkdir()
    assert keys_cmd(config, "generate", "--out", str(inside)) == 2
    assert not inside.exists()
