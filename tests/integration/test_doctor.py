"""``station doctor`` as hospital IT runs it: against a real Mosquitto (TLS, CA, password file)
and a real victoria-metrics, with every secret in the environment of the command, as for an
unattended service on a PC without a secure keyring.

First all green; then one broken thing per run, and only its line turns red: the wrong CA, the
wrong password, a spool budget larger than the disk, the historian gone. No secret value ever
appears in what the command prints.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.doctor.runner import NAMES
from station.domain.vouchers.keys import key_id
from station.services.storage.instance_lock import InstanceLock
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.pki import Pki
from tests.integration.servers.processes import free_port
from tests.integration.servers.victoria import VictoriaMetrics

MIB = 1024 * 1024
# What this machine cannot have: an audio output (a container), and maybe a clock the doctor
# can tell is synchronised (no systemd, no chrony). Those lines may warn; nothing else may.
MACHINE_WARNINGS = {"audio": "NO ALARM SOUND", "clock": "NTP"}


@dataclass(frozen=True)
class Secrets:
    """The secrets of one installation, as the service's environment would hold them."""

    mqtt_password: str
    influx_token: str
    patient_key: str
    audit_key: str

    def env(self) -> dict[str, str]:
        return {
            "STATION_MQTT_PASSWORD": self.mqtt_password,
            "STATION_INFLUX_TOKEN": self.influx_token,
            "STATION_PATIENT_KEY": self.patient_key,
            "STATION_AUDIT_KEY": self.audit_key,
        }

    def audit_key_id(self) -> str:
        private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(self.audit_key))
        return key_id(private.public_key())


@dataclass(frozen=True)
class Report:
    """One run of the command: its exit code, output, and its lines by check."""

    code: int
    stdout: str
    stderr: str
    lines: dict[str, tuple[str, str]]

    def status(self, check: str) -> str:
        return self.lines[check][0]

    def detail(self, check: str) -> str:
        return self.lines[check][1]

    def failed(self) -> list[str]:
        return [name for name, (status, _) in self.lines.items() if status == "FAIL"]

    def warned(self) -> list[str]:
        return [name for name, (status, _) in self.lines.items() if status == "WARN"]


def _raw_key(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


@pytest.fixture
def secrets(mosquitto: Mosquitto) -> Secrets:
    return Secrets(
        mqtt_password=mosquitto.passwords["station"],
        influx_token="doctor-token-" + base64.b32encode(os.urandom(15)).decode(),
        patient_key=base64.b64encode(os.urandom(32)).decode(),
        audit_key=base64.b64encode(_raw_key(Ed25519PrivateKey.generate())).decode(),
    )


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(out) + "\n"


def write_config(
    tmp_path: Path, broker: Mosquitto, historian_url: str, **sections: dict[str, Any]
) -> Path:
    """A config for the station user over TLS (the fixture's CA, host name verified) and the
    historian at ``historian_url``; ``sections`` override keys."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    config: dict[str, dict[str, Any]] = {
        "station": {"id": "ward-doc", "data_dir": str(data_dir)},
        "mqtt": {
            "host": "localhost",
            "port": broker.port,
            "tls": True,
            "ca_file": str(broker.ca_file),
            "username": "station",
        },
        "influx": {"enabled": True, "url": historian_url, "org": "ward", "bucket": "vitals"},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path = tmp_path / "station.toml"
    path.write_text(_toml(config))
    return path


def doctor(config: Path, env: dict[str, str], *extra: str) -> Report:
    """``python -m station --config CONFIG doctor`` with exactly these secrets in its
    environment (the suite's own STATION_* variables left out)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STATION_")}
    done = subprocess.run(
        [sys.executable, "-m", "station", "--config", str(config), "doctor", *extra],
        capture_output=True,
        text=True,
        timeout=90,
        env={**clean, "QT_QPA_PLATFORM": "offscreen", **env},
        check=False,
    )
    lines: dict[str, tuple[str, str]] = {}
    if not extra:
        for line in done.stdout.splitlines():
            status, rest = line[:4].strip(), line[6:]
            name, _, detail = rest.partition(": ")
            lines[name] = (status, detail)
        assert list(lines) == list(NAMES), done.stdout + done.stderr
    return Report(done.returncode, done.stdout, done.stderr, lines)


def assert_no_secret(report: Report, *values: str) -> None:
    for value in values:
        assert value not in report.stdout
        assert value not in report.stderr


def assert_machine_warnings_only(report: Report) -> None:
    """WARN only where this machine cannot do better, each saying why."""
    for name in report.warned():
        assert name in MACHINE_WARNINGS, f"{name}: {report.detail(name)}"
        assert MACHINE_WARNINGS[name] in report.detail(name)


@pytest.fixture
def historian(victoria: VictoriaMetrics) -> str:
    return victoria.url


def test_all_green_with_every_secret_from_the_environment(
    mosquitto: Mosquitto, historian: str, secrets: Secrets, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto, historian)
    report = doctor(config, secrets.env())
    print(report.stdout)  # the installer's view, in the test log
    assert report.code == 0, report.stdout + report.stderr
    assert report.failed() == []
    assert_machine_warnings_only(report)
    assert report.detail("config").startswith(f"{config}: valid (station 'ward-doc'")
    secrets_line = report.detail("secrets")
    for env in secrets.env():
        assert f"from {env}" in secrets_line
    assert report.detail("audit key") == (
        f"key id {secrets.audit_key_id()} (no audit trail yet in {tmp_path / 'data' / 'audit'})"
    )
    assert "every secret this config needs comes from the environment" in report.detail("keyring")
    assert report.detail("broker").startswith(
        f"connected to localhost:{mosquitto.port} (MQTT 5, TLS) as user 'station'"
    )
    assert report.detail("historian").endswith("and read it back")
    assert report.detail("data folder").endswith("mode 0700, writable")
    assert report.detail("instance") == f"no station running on {tmp_path / 'data'}"
    assert_no_secret(report, *secrets.env().values())


def test_the_wrong_ca_fails_the_broker_only(
    mosquitto: Mosquitto, historian: str, secrets: Secrets, other_pki: Pki, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto, historian, mqtt={"ca_file": str(other_pki.ca_cert)})
    report = doctor(config, secrets.env())
    assert report.code == 1
    assert report.failed() == ["broker"], report.stdout
    assert report.detail("broker").startswith("TLS: certificate verify failed: ")
    assert "wrong CA? check mqtt.ca_file" in report.detail("broker")
    assert_machine_warnings_only(report)
    assert_no_secret(report, *secrets.env().values())


def test_the_wrong_password_fails_the_broker_only_also_in_json(
    mosquitto: Mosquitto, historian: str, secrets: Secrets, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto, historian)
    wrong = "wrong-" + base64.b32encode(os.urandom(10)).decode()
    env = {**secrets.env(), "STATION_MQTT_PASSWORD": wrong}
    report = doctor(config, env)
    assert report.code == 1
    assert report.failed() == ["broker"], report.stdout
    assert report.detail("broker") == (
        "broker rejected credentials (Not authorized): check mqtt.username and its password "
        "(the password of 'station' came from STATION_MQTT_PASSWORD)"
    )
    assert_machine_warnings_only(report)
    assert_no_secret(report, wrong, *secrets.env().values())
    as_json = doctor(config, env, "--json")
    assert as_json.code == 1
    document = json.loads(as_json.stdout)
    assert document["ok"] is False
    assert [c["check"] for c in document["checks"]] == list(NAMES)
    assert {c["check"]: c["status"] for c in document["checks"]}["broker"] == "FAIL"
    assert_no_secret(as_json, wrong, *secrets.env().values())


def test_a_spool_budget_larger_than_the_disk_fails_the_disk_only(
    mosquitto: Mosquitto, historian: str, secrets: Secrets, tmp_path: Path
) -> None:
    budget_mb = shutil.disk_usage(tmp_path).free // MIB + 1024
    # The schema's largest budget (about 1 TB): a machine with more free disk cannot run this
    # case, and says so rather than passing without it.
    assert budget_mb <= 1_000_000, f"{budget_mb:,} MiB free here: above any accepted budget"
    config = write_config(tmp_path, mosquitto, historian, spool={"budget_mb": float(budget_mb)})
    report = doctor(config, secrets.env())
    assert report.code == 1
    assert report.failed() == ["disk"], report.stdout
    assert report.detail("disk").startswith("only ")
    assert f"for a spool budget of {budget_mb:,} MiB: lower [spool] budget_mb" in report.detail(
        "disk"
    )
    assert_machine_warnings_only(report)
    assert_no_secret(report, *secrets.env().values())


def test_a_historian_that_is_not_there_fails_the_historian_only(
    mosquitto: Mosquitto, secrets: Secrets, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto, f"http://127.0.0.1:{free_port()}")
    report = doctor(config, secrets.env())
    assert report.code == 1
    assert report.failed() == ["historian"], report.stdout
    assert "connection refused" in report.detail("historian")
    assert "check [influx] url" in report.detail("historian")
    assert_machine_warnings_only(report)
    assert_no_secret(report, *secrets.env().values())


def test_beside_a_running_station_the_login_is_not_tried_and_the_lock_not_taken(
    mosquitto: Mosquitto, historian: str, secrets: Secrets, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto, historian)
    lock = InstanceLock(tmp_path / "data")  # this process stands in for the running station
    lock.acquire()
    try:
        report = doctor(config, secrets.env())
    finally:
        lock.release()
    assert report.code == 0, report.stdout + report.stderr
    assert report.failed() == []
    assert_machine_warnings_only(report)
    broker = report.detail("broker")
    assert broker.startswith(f"reached localhost:{mosquitto.port} (MQTT 5, TLS): TLSv1.")
    assert f"login not tried: a station (pid {os.getpid()}) is running" in broker
    assert (
        report.detail("instance") == f"a station (pid {os.getpid()}) is running on this data folder"
    )
    assert_no_secret(report, *secrets.env().values())
