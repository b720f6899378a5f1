"""The ``station`` command as an operator runs it: the demo, its screenshot, orderly stop on
SIGTERM/SIGINT, and ``audit verify`` on the trail a demo run leaves (intact, then tampered)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from tests.integration.servers.mosquitto import Mosquitto

STOP_LIMIT_S = 10.0


def station(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-m", "station", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def run_demo_until_signal(sig: signal.Signals, tmp_path: Path) -> tuple[int, float, Path]:
    """Start ``station --demo``, wait until alarms are being audited, send ``sig``; return the
    exit code, the seconds from signal to exit, and the demo's data folder."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "station", "--demo"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        data_dir: Path | None = None
        deadline = time.monotonic() + 30
        while data_dir is None or "alarm.raise" not in _audit_text(data_dir):
            assert time.monotonic() < deadline, f"no alarm audited in 30 s: {stderr[-5:]}"
            assert proc.poll() is None, f"the demo ended early: {stderr[-5:]}"
            found = re.search(r"data folder (\S+)", "".join(stderr))
            if found:
                data_dir = Path(found.group(1))
            time.sleep(0.1)
        sent = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=STOP_LIMIT_S + 5)
        took = time.monotonic() - sent
        reader.join(5)
        return proc.returncode, took, data_dir
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _audit_text(data_dir: Path) -> str:
    path = data_dir / "audit" / "audit.jsonl"
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_in_order_within_ten_seconds(sig: signal.Signals, tmp_path: Path) -> None:
    code, took, data_dir = run_demo_until_signal(sig, tmp_path)
    assert code == 0
    assert took < STOP_LIMIT_S
    records = [json.loads(line) for line in _audit_text(data_dir).splitlines()]
    # The keyed trail opens and closes with a signed checkpoint (issue 7).
    assert [r["action"] for r in records[:2]] == ["audit.checkpoint", "station.start"]
    assert records[0]["details"]["reason"] == "start"
    assert [r["action"] for r in records[-2:]] == ["station.stop", "audit.checkpoint"]
    assert records[-2]["details"] == {"clean": True, "reason": f"signal {sig.value}"}
    assert records[-1]["details"]["reason"] == "stop"
    verdict = station("audit", "verify", str(data_dir))
    assert verdict.returncode == 0, verdict.stdout
    assert verdict.stdout.startswith("OK ")
    # The auditor's bundle, by the command line, verifies on its own in another folder.
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\nid = "demo"\ndata_dir = "{data_dir}"\n')
    out = tmp_path / "bundle"
    exported = station("--config", str(config), "audit", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    moved = tmp_path / "elsewhere"
    out.rename(moved)
    checked = station("audit", "verify", str(moved))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.startswith("OK bundle of demo: ")
    # The export is in the trail: who took it, where (a shell command, no station running).
    after = [json.loads(line) for line in _audit_text(data_dir).splitlines()]
    export = [r for r in after if r["action"] == "audit.export"]
    assert [(r["role"], r["target"]) for r in export] == [("shell", str(out))]
    assert export[0]["actor"].startswith("shell:")
    assert station("audit", "verify", str(data_dir)).returncode == 0


def test_demo_screenshot_is_a_png_of_the_ward(tmp_path: Path) -> None:
    png = tmp_path / "ward.png"
    result = station("--demo", "--screenshot", str(png), "--screenshot-after", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    image = QImage(str(png))
    assert not image.isNull()
    assert image.width() >= 1200
    assert image.height() >= 700
    # It shows patients' names and birth dates: owner-only, and audited.
    assert png.stat().st_mode & 0o777 == 0o600
    folder = result.stderr.rsplit("demo data folder (audit trail): ", 1)[1].split()[0]
    records = [json.loads(line) for line in _audit_text(Path(folder)).splitlines()]
    (shot,) = [r for r in records if r["action"] == "station.screenshot"]
    assert (shot["target"], shot["outcome"], shot["details"]) == (
        str(png),
        "success",
        {"view": "ward"},
    )


def _tamper(lines: list[str], how: str, k: int) -> list[str]:
    out = list(lines)
    if how == "edited":
        record = json.loads(out[k])
        record["actor"] = "mallory"
        out[k] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    elif how == "deleted":
        del out[k]
    elif how == "inserted":
        out.insert(k, out[k - 1])
    elif how == "reordered":
        out[k], out[k + 1] = out[k + 1], out[k]
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of a real demo run (start, connection, alarms, stop)."""
    tmp = tmp_path_factory.mktemp("demo")
    code, _, data_dir = run_demo_until_signal(signal.SIGTERM, tmp)
    assert code == 0
    return data_dir


@pytest.fixture
def demo_trail(demo_run: Path, tmp_path: Path) -> list[str]:
    """The demo's trail lines; the station's public key is copied beside where tests put them."""
    shutil.copy(demo_run / "audit" / "station-audit.pub", tmp_path)
    lines = _audit_text(demo_run).splitlines()
    assert len(lines) >= 4
    return lines


@pytest.mark.parametrize("how", ["edited", "deleted", "inserted", "reordered"])
def test_audit_verify_names_the_tampered_record(
    demo_trail: list[str], how: str, tmp_path: Path
) -> None:
    k = 2
    audit = tmp_path / "audit.jsonl"
    audit.write_text("\n".join(_tamper(demo_trail, how, k)) + "\n")
    result = station("audit", "verify", str(audit))
    assert result.returncode == 1
    assert result.stdout.startswith(f"FAIL line {k + 1} ")
    assert f": {how}:" in result.stdout


def test_audit_verify_ok_on_the_untouched_copy(demo_trail: list[str], tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text("\n".join(demo_trail) + "\n")
    result = station("audit", "verify", str(audit))
    assert result.returncode == 0
    assert result.stdout.startswith(f"OK {len(demo_trail)} records")


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "station.toml"
    bad.write_text('[mqtt]\nhost = "broker.example.org"\n')
    result = station("--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "mqtt" in result.stderr
    assert "tls" in result.stderr


def test_closing_the_window_stops_everything_in_order(qtbot: QtBot, tmp_path: Path) -> None:
    """Closing the window ends the application's event loop, as in ``station``; the stop sequence
    the CLI then runs must end every thread within the limit and close the audit trail."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from station.app import Station
    from station.cli.main import demo_settings
    from station.config.settings import Settings
    from station.services.demo.broker import EmbeddedBroker
    from station.services.demo.ward import DemoOptions

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    broker = EmbeddedBroker()
    port = broker.start()
    station_: Station | None = None
    try:
        settings = demo_settings(Settings(), port, tmp_path / "data")
        station_ = Station(settings, demo=DemoOptions(beds=2))
        station_.start()
        qtbot.waitUntil(lambda: station_ is not None and station_.window.broker_connected)
        QTimer.singleShot(200, station_.window.close)
        # Guard: the loop must end by itself. A timer we can stop: a stray app.exit() firing
        # later, in another test, would stop every event loop there.
        guard = QTimer()
        guard.setSingleShot(True)
        guard.timeout.connect(lambda: app.exit(3))
        guard.start(10_000)
        try:
            assert app.exec() == 0
        finally:
            guard.stop()
        assert not station_.window.render_timer.isActive()
        started = time.monotonic()
        assert station_.stop()
        assert time.monotonic() - started < STOP_LIMIT_S
        assert not station_.mqtt.alive()
        assert not station_.core_thread.isRunning()
    finally:
        if station_ is not None:
            station_.stop()
        assert broker.stop()
    records = [json.loads(line) for line in _audit_text(tmp_path / "data").splitlines()]
    assert [r["action"] for r in records[-2:]] == ["station.stop", "audit.checkpoint"]


def simulate_as_sensor(
    mosquitto: Mosquitto, password: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Run ``station simulate`` as the broker's ``sensor`` user over TLS on the single topic."""
    env = dict(os.environ, STATION_SIM_PASSWORD=password, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [
            *(sys.executable, "-m", "station", "simulate", "--host", "localhost"),
            *("--port", str(mosquitto.port), "--tls", "--ca-file", str(mosquitto.ca_file)),
            *("--username", "sensor", "--topic-mode", "single", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_simulate_publishes_to_a_tls_broker_with_credentials(mosquitto: Mosquitto) -> None:
    """``station simulate`` against the real broker: TLS, a password from the environment, the
    document's single topic; a subscriber sees every simulated bed with valid payloads."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from station.domain import ingest
    from station.domain.messages import Accepted

    seen: dict[str, int] = {}
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-check", protocol=mqtt.MQTTv5)
    listener.tls_set(ca_certs=str(mosquitto.ca_file))
    listener.username_pw_set("station", mosquitto.passwords["station"])

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        result = ingest.parse(msg.topic, bytes(msg.payload), time.time(), ())
        assert isinstance(result, Accepted), result
        seen[result.device_id] = seen.get(result.device_id, 0) + 1

    listener.on_message = on_message
    listener.connect("localhost", mosquitto.port)
    listener.subscribe("healthcare/sensor_data", qos=1)
    listener.loop_start()
    try:
        result = simulate_as_sensor(
            mosquitto,
            mosquitto.passwords["sensor"],
            *("--beds", "3", "--rate", "5", "--duration", "2", "--seed", "3"),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert mosquitto.passwords["sensor"] not in result.stderr + result.stdout
        deadline = time.monotonic() + 10
        while sum(seen.values()) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.disconnect()
        listener.loop_stop()
    assert set(seen) == {"sim-bed01", "sim-bed02", "sim-bed03"}
    assert sum(seen.values()) >= 30  # 3 beds x 5 Hz x 2 s, every one acknowledged by the broker


def test_simulate_with_a_wrong_password_exits_1_without_echoing_it(mosquitto: Mosquitto) -> None:
    wrong = "not-the-password-" + mosquitto.passwords["sensor"][:4]
    result = simulate_as_sensor(mosquitto, wrong, "--duration", "5")
    assert result.returncode == 1
    assert "not authorized" in result.stderr.lower()
    assert wrong not in result.stderr + result.stdout


def test_users_add_creates_the_first_admin_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ndata_dir = "{tmp_path / "data"}"\n')
    secret = "a-new-admin-password"
    env = dict(os.environ, STATION_NEW_PASSWORD=secret)

    def add(name: str, role: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "station", "--config", str(config), "users", "add", name]
        return subprocess.run(
            [*cmd, "--role", role], capture_output=True, text=True, env=env, check=False
        )

    nurse_first = add("ann", "nurse")
    assert nurse_first.returncode == 2
    assert "first account must be an admin" in nurse_first.stderr
    made = add("boss", "admin")
    assert made.returncode == 0, made.stderr
    listed = station("--config", str(config), "users", "list")
    assert listed.stdout.split() == ["boss", "admin"]
    unlocked = station("--config", str(config), "users", "unlock", "boss")
    assert unlocked.returncode == 0, unlocked.stderr
    assert unlocked.stdout.splitlines()[0] == "boss unlocked"
    assert unlocked.stdout.splitlines()[1].startswith("audit: ")
    reset = subprocess.run(
        [sys.executable, "-m", "station", "--config", str(config), "users", "passwd", "boss"],
        capture_output=True,
        text=True,
        env=dict(os.environ, STATION_NEW_PASSWORD="another-new-password"),
        check=False,
    )
    assert reset.returncode == 0, reset.stderr
    users_file = tmp_path / "data" / "users.json"
    assert secret not in users_file.read_text()
    assert secret not in made.stdout + made.stderr
