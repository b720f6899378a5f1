"""A data folder and config written by the previous release start this one without an error.

The previous release is the git tag ``v0.1.0``: its ``station`` package as ``git archive`` gave it,
kept in ``tests/data/releases`` (a clone need not carry the tag: CI's does not) and run as it
was: its demo
writes the stores and the audit trail, its settings code writes the config its own settings
dialog would, its ``users add`` the accounts, its limits file a bed's limits. Then this release
starts on that folder with that file, against a real Mosquitto.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.services.storage import alarm_store, quarantine_store, trends
from tests.integration.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PREVIOUS = "v0.1.0"
# Made with `git archive --format=tar v0.1.0 station | xz -9e` (commit 5ed5c88).
PREVIOUS_ARCHIVE = REPO / "tests" / "data" / "releases" / f"station-{PREVIOUS}.tar.xz"
PREVIOUS_SHA256 = "8adad4b7c6e53aca00e51a4c715ea5825132276ab824667a2d62d80aeaa32a2e"

WRITE_CONFIG = """
import sys
from pathlib import Path
from station.config.settings import from_mapping
from station.config.settings_file import write_settings
data = {
    "station": {"data_dir": sys.argv[2]},
    "mqtt": {"host": "127.0.0.1", "port": int(sys.argv[3]), "tls": False, "username": "station"},
    "devices": {"admission": "open"},
}
write_settings(from_mapping(data), Path(sys.argv[1]))
"""

WRITE_LIMITS = """
import sys, time
from pathlib import Path
from station.domain.alarms import AlarmLimits, Priority
from station.domain.bed_limits import SavedLimits
from station.services.storage.bed_limits_file import BedLimitsFile
limits = {"heartrate": AlarmLimits(low=45, high=130, priority=Priority.HIGH)}
saved = SavedLimits(bed="Bed 8", limits=limits, profile="adult", by="nurse1", at=time.time())
BedLimitsFile(Path(sys.argv[1])).save({"bed:Bed 8": saved})
"""


def _previous_release(into: Path) -> Path:
    """The previous release's ``station`` package, extracted from its kept archive."""
    packed = PREVIOUS_ARCHIVE.read_bytes()
    assert hashlib.sha256(packed).hexdigest() == PREVIOUS_SHA256, f"{PREVIOUS_ARCHIVE} changed"
    with tarfile.open(fileobj=BytesIO(packed), mode="r:xz") as tar:
        tar.extractall(into, filter="data")
    return into


def _keys() -> dict[str, str]:
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return {
        "STATION_AUDIT_KEY": base64.b64encode(raw).decode("ascii"),
        "STATION_PATIENT_KEY": base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
    }


def _run(
    code_root: Path | None, env: dict[str, str], *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, QT_QPA_PLATFORM="offscreen", **env)
    full.pop("PYTHONPATH", None)
    cwd = str(code_root) if code_root is not None else str(REPO)
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        cwd=cwd,  # the old release's package shadows the installed one from its own folder
        check=False,
    )


def _schema_versions(data: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for store in sorted(data.glob("*.sqlite")):
        conn = sqlite3.connect(store)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        out[store.name] = row[0]
        conn.close()
    return out


def test_previous_release_data_and_config_start_this_release(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    old = _previous_release(tmp_path / "v0.1.0")
    env = _keys()

    demo = _run(
        old,
        env,
        "-m",
        "station",
        "--demo",
        "--screenshot",
        str(tmp_path / "old.png"),
        "--screenshot-after",
        "10",
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    found = re.search(r"demo data folder \(audit trail\): (\S+)", demo.stderr)
    assert found, demo.stderr[-2000:]
    data = tmp_path / "data"
    Path(found.group(1)).rename(data)
    config = tmp_path / "station.toml"
    port = str(mosquitto.plain_port)
    made = _run(old, env, "-c", WRITE_CONFIG, str(config), str(data), port)
    assert made.returncode == 0, made.stderr
    assert "\nkeepalive = 30\n" in config.read_text(encoding="utf-8")  # the old spelling
    users = _run(
        old,
        {**env, "STATION_NEW_PASSWORD": "admin-pass-1234"},
        "-m",
        "station",
        "--config",
        str(config),
        "users",
        "add",
        "admin",
        "--role",
        "admin",
    )
    assert users.returncode == 0, users.stderr
    limits = _run(old, env, "-c", WRITE_LIMITS, str(data / "bed_limits.json"))
    assert limits.returncode == 0, limits.stderr
    trend_rows = (
        sqlite3.connect(data / "trends.sqlite").execute("SELECT count(*) FROM raw").fetchone()[0]
    )
    assert trend_rows > 0
    old_audit = (data / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()

    env["STATION_MQTT_PASSWORD"] = mosquitto.passwords["station"]
    new = _run(
        None,
        env,
        "-m",
        "station",
        "--config",
        str(config),
        "--screenshot",
        str(tmp_path / "new.png"),
        "--screenshot-after",
        "4",
    )
    assert new.returncode == 0, new.stderr[-3000:]
    assert "[mqtt] keepalive is now mqtt.keepalive_s" in new.stderr
    assert " ERROR " not in new.stderr, new.stderr[-3000:]
    assert "Traceback" not in new.stderr, new.stderr[-3000:]

    # The trail goes on from where the old release left it, and verifies as one chain.
    trail = (data / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert trail[: len(old_audit)] == old_audit
    verified = _run(None, env, "-m", "station", "audit", "verify", str(data))  # its key
    assert verified.returncode == 0, verified.stdout + verified.stderr
    added = [json.loads(line) for line in trail[len(old_audit) :]]
    raised = [r for r in added if r.get("action") == "alarm.raise"]
    technical = [r["details"] for r in raised if r["details"].get("kind") == "technical"]
    problems = [t["message"] for t in technical if t.get("parameter") != "sound"]
    assert problems == [], problems  # only this machine's missing audio device

    # The old stores are this release's now, rows kept; accounts and limits read.
    assert _schema_versions(data) == {
        "alarms.sqlite": alarm_store.SCHEMA_VERSION,
        "quarantine.sqlite": quarantine_store.SCHEMA_VERSION,
        "trends.sqlite": trends.SCHEMA_VERSION,
    }
    assert (
        sqlite3.connect(data / "trends.sqlite").execute("SELECT count(*) FROM raw").fetchone()[0]
        >= trend_rows
    )
    listed = _run(None, env, "-m", "station", "--config", str(config), "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("admin\tadmin")
