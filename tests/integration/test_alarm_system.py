"""The alarm system end to end against a real Mosquitto: the simulator's deteriorating patient,
a device that stops, and two station processes sharing one acknowledgement through the broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pytestqt.qtbot import QtBot

from station.domain.vouchers.keys import public_pem
from station.services.audit.keys import decode_station_key
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import publish, running_station, station_settings
from tests.payloads import vitals

Event = tuple[str, dict[str, object]]


class AlarmListener:
    """A nurse-call bridge: subscribes to every station's alarms topic."""

    def __init__(self, broker: Mosquitto) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bridge", protocol=mqtt.MQTTv5
        )
        self._client.tls_set(ca_certs=str(broker.ca_file))
        self._client.username_pw_set("station", broker.passwords["station"])
        self._client.on_message = self._on_message
        self._client.connect("localhost", broker.port)
        self._client.subscribe("healthcare/station/+/alarms", qos=1)
        self._client.subscribe("healthcare/station/+/status", qos=1)
        self._client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.events.append((msg.topic.split("/")[2], json.loads(msg.payload)))
            self._cond.notify_all()

    def wait(self, predicate: Callable[[Event], bool], timeout: float = 20.0) -> Event:
        with self._cond:
            ok = self._cond.wait_for(lambda: any(predicate(e) for e in self.events), timeout)
            assert ok, f"no such alarm event in {timeout} s; saw {self.events[-10:]}"
            return next(e for e in self.events if predicate(e))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def listener(mosquitto: Mosquitto) -> Iterator[AlarmListener]:
    bridge = AlarmListener(mosquitto)
    yield bridge
    bridge.close()


def test_deteriorating_patient_from_the_simulator_publishes_alarm_events(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    listener: AlarmListener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = station_settings(
        mosquitto, tmp_path, ward={"beds": 4, "devices": {}}, devices={"admission": "open"}
    )
    with running_station(qtbot, mosquitto, settings, monkeypatch):
        env = dict(os.environ, STATION_SIM_PASSWORD=mosquitto.passwords["sensor"])
        sim = subprocess.run(
            [
                *(sys.executable, "-m", "station", "simulate", "--host", "localhost"),
                *("--port", str(mosquitto.port), "--tls", "--ca-file", str(mosquitto.ca_file)),
                *("--username", "sensor", "--topic-mode", "single", "--beds", "4"),
                *("--scenario", "deterioration", "--rate", "2", "--duration", "3"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert sim.returncode == 0, sim.stderr[-1500:]
        station, event = listener.wait(
            lambda e: e[1].get("parameter") == "heartrate" and e[1].get("state") == "active"
        )
    assert station == "ward-test"
    assert event["device_id"] == "sim-bed03"
    assert event["priority"] == "high"
    assert str(event["message"]).startswith("HR ")
    assert event["source_time"] is not None


def test_a_device_that_stops_raises_no_data_within_11_s(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    listener: AlarmListener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = station_settings(
        mosquitto, tmp_path, ward={"beds": 2, "devices": {}}, devices={"admission": "open"}
    )
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        start = time.time()
        publish(mosquitto, "monitor-a", [vitals("monitor-a", at=start - 2 + i) for i in range(3)])
        last = time.monotonic()
        _, event = listener.wait(
            lambda e: e[1].get("parameter") == "no_data" and e[1].get("state") == "active",
            timeout=15,
        )
        silent_for = time.monotonic() - last
        assert event["device_id"] == "monitor-a"
        assert event["kind"] == "technical"
        assert silent_for <= 11.0, silent_for
        tile = station.window.tiles["Bed 1"]
        qtbot.waitUntil(lambda: "No data" in tile.banner.text(), timeout=3000)
        # Recovery: data again clears the technical alarm.
        publish(mosquitto, "monitor-a", [vitals("monitor-a")])
        listener.wait(
            lambda e: e[1].get("parameter") == "no_data" and e[1].get("state") == "cleared"
        )


def _ward_peers(tmp_path: Path) -> Path:
    """Both stations of this test sign with the test session's key (``STATION_AUDIT_KEY``):
    its public key, as each station's admin hands it to the other, in ``[peers]``."""
    key = decode_station_key(os.environ["STATION_AUDIT_KEY"])
    pub = tmp_path / "ward.pub"
    pub.write_bytes(public_pem(key.public_key()))
    return pub


def _second_station(broker: Mosquitto, tmp_path: Path) -> subprocess.Popen[str]:
    pub = _ward_peers(tmp_path)
    config = tmp_path / "station-b.toml"
    config.write_text(
        "\n".join(
            [
                "[station]",
                'id = "ward-test-b"',
                f'data_dir = "{tmp_path / "b-data"}"',
                "[mqtt]",
                'host = "localhost"',
                f"port = {broker.port}",
                "tls = true",
                f'ca_file = "{broker.ca_file}"',
                'username = "station"',
                "[ward]",
                "beds = 4",
                'devices = { "monitor-a" = 1, "monitor-b" = 2 }',
                "[peers]",
                f'stations = {{ "ward-test" = "{pub}" }}',
            ]
        )
        + "\n"
    )
    env = dict(
        os.environ, STATION_MQTT_PASSWORD=broker.passwords["station"], QT_QPA_PLATFORM="offscreen"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "station", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_stations_on_one_broker_share_an_acknowledgement(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    listener: AlarmListener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = _second_station(mosquitto, tmp_path)
    try:
        peers = {"stations": {"ward-test-b": str(_ward_peers(tmp_path))}}
        settings = station_settings(mosquitto, tmp_path / "a", peers=peers)
        with running_station(qtbot, mosquitto, settings, monkeypatch, "nurse-ann") as station:
            # Both stations must be subscribed before the condition starts, as on a ward
            # where both run all along: B says so with its retained status.
            listener.wait(lambda e: e[0] == "ward-test-b" and e[1].get("state") == "online")
            publish(mosquitto, "monitor-a", [vitals("monitor-a", heartrate=150)])
            for station_id in ("ward-test-b", "ward-test"):  # either may publish first
                listener.wait(
                    lambda e, sid=station_id: e[0] == sid and e[1].get("parameter") == "heartrate"
                )
            raised = {
                st: str(ev["alarm_id"])
                for st, ev in listener.events
                if ev.get("parameter") == "heartrate" and ev.get("state") == "active"
            }
            assert set(raised) == {"ward-test", "ward-test-b"}, listener.events[-10:]
            assert raised["ward-test"] == raised["ward-test-b"]  # the same alarm, one id
            station.window.acknowledge_requested.emit(raised["ward-test"], "nurse-ann")
            _, event = listener.wait(
                lambda e: e[0] == "ward-test-b" and e[1].get("state") == "acknowledged"
            )
            assert event["alarm_id"] == raised["ward-test"]
            assert event["by"] == "nurse-ann@ward-test"  # B names who, at which station
    finally:
        other.send_signal(signal.SIGTERM)
        _, err = other.communicate(timeout=15)
    assert other.returncode == 0, err[-2000:]
    audit = [
        json.loads(line)
        for line in (tmp_path / "b-data" / "audit" / "audit.jsonl").read_text().splitlines()
    ]
    acks = [r for r in audit if r["action"] == "alarm.acknowledge"]
    assert acks
    assert acks[0]["actor"] == "nurse-ann@ward-test"  # a signed peer's, named as such
    assert acks[0]["role"] == "peer"
    assert acks[0]["details"]["via"] == "ward-test"
