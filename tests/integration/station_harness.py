"""Running a real :class:`Station` against the fixture broker, and devices that publish to it."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pytestqt.qtbot import QtBot

from station.app import Station
from station.config.settings import Settings, from_mapping
from station.domain.roles import Role
from station.services.storage.accounts import Accounts
from tests.integration.servers.mosquitto import Mosquitto

CONNECT_TIMEOUT_MS = 15_000


def station_settings(broker: Mosquitto, data_dir: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for the station user over TLS with the fixture CA and hostname verification."""
    data: dict[str, Any] = {
        "station": {"id": "ward-test", "data_dir": str(data_dir)},
        "mqtt": {
            "host": "localhost",
            "port": broker.port,
            "tls": True,
            "ca_file": str(broker.ca_file),
            "username": "station",
        },
        "ward": {"beds": 4, "devices": {"monitor-a": 1, "monitor-b": 2}},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return from_mapping(data)


NURSE_PASSWORD = "nurse test password"  # for throwaway accounts in a test's data folder


def ensure_accounts(settings: Settings, nurse: str) -> None:
    """An admin and ``nurse`` in the station's data folder (a cheap scrypt cost: tests need
    speed; each hash records its cost, so the station checks them as stored)."""
    accounts = Accounts(settings.station.data_path / "users.json", scrypt_n=2**10)
    if not accounts.has_users():
        accounts.create("admin-test", Role.ADMIN, "admin test password")
    if accounts.role_of(nurse) is None:
        accounts.create(nurse, Role.NURSE, NURSE_PASSWORD)


@contextmanager
def running_station(
    qtbot: QtBot,
    broker: Mosquitto,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    nurse: str = "nurse-test",
) -> Iterator[Station]:
    """A started station, connected to the broker, with ``nurse`` logged in; stopped (and
    checked stopped) on exit."""
    monkeypatch.setenv("STATION_MQTT_PASSWORD", broker.passwords["station"])
    ensure_accounts(settings, nurse)
    station = Station(settings, user=nurse)
    qtbot.addWidget(station.window)
    station.start()
    # The start-up heap is out of cycle collection while the station runs (GUI lag under a
    # flood), and collectable again once it stops (a test process starts many stations).
    assert gc.get_freeze_count() > 0
    try:
        with qtbot.waitSignal(station.actions.session_changed, timeout=CONNECT_TIMEOUT_MS):
            station.actions.login(nurse, NURSE_PASSWORD)
        qtbot.waitUntil(lambda: station.window.broker_connected, timeout=CONNECT_TIMEOUT_MS)
        yield station
    finally:
        assert station.stop(), "the station did not stop in time"
        assert not station.mqtt.alive()
        assert not station.core_thread.isRunning()
        assert gc.get_freeze_count() == 0


def publish(
    broker: Mosquitto, device: str, payloads: Iterable[bytes], topic: str | None = None
) -> None:
    """Connect as ``device`` over TLS, publish each payload at QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"dev-{device}", protocol=mqtt.MQTTv5
    )
    client.tls_set(ca_certs=str(broker.ca_file))
    client.username_pw_set(device, broker.passwords[device])
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("localhost", broker.port)
    client.loop_start()
    try:
        assert connected.wait(10), f"device {device} could not connect"
        for payload in payloads:
            info = client.publish(topic or f"healthcare/devices/{device}/vitals", payload, qos=1)
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def write_config(settings: Settings, path: Path) -> None:
    """The TOML a station process started by a test reads: the broker over TLS, the historian,
    the ward and its admission from ``settings``."""
    m, i = settings.mqtt, settings.influx
    pins = ", ".join(f'"{d}" = {n}' for d, n in settings.ward.devices.items())
    path.write_text(
        f"""
[station]
id = "{settings.station.id}"
data_dir = "{settings.station.data_dir}"
[mqtt]
host = "{m.host}"
port = {m.port}
tls = true
ca_file = "{m.ca_file}"
username = "{m.username}"
[influx]
enabled = true
url = "{i.url}"
flush_interval_s = 0.2
[ward]
beds = {settings.ward.beds}
devices = {{ {pins} }}
[devices]
admission = "{settings.devices.admission}"
""",
        encoding="utf-8",
    )


def start_station_process(config: Path, log: Path, broker: Mosquitto) -> subprocess.Popen[bytes]:
    """``station --config CONFIG`` in its own process (offscreen), its output appended to
    ``log``; the caller stops it (SIGTERM) and checks its exit code."""
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        STATION_MQTT_PASSWORD=broker.passwords["station"],
        STATION_INFLUX_TOKEN="token-not-checked-by-vm",
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "station", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
