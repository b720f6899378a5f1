"""The whole station against a real Mosquitto (TLS, password file, ACL): publish → tile, bad
input, a broker that dies, and a station restart that must lose no QoS 1 message."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pytestqt.qtbot import QtBot

from station.domain.alarms import AlarmState
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import publish, running_station, station_settings
from tests.payloads import vitals

WAIT_MS = 15_000


def test_published_vitals_update_the_tile(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = station_settings(mosquitto, tmp_path)
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        # Nagle off on the TLS socket: alarm events must not wait ~40 ms for a delayed ACK.
        sock = station.mqtt._client.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        publish(mosquitto, "monitor-a", [vitals("monitor-a", heartrate=77, oxygen=96)])
        tile = station.window.tiles["Bed 1"]
        qtbot.waitUntil(lambda: tile.hr.value.text() == "77", timeout=WAIT_MS)
        assert tile.spo2.value.text() == "96"
        assert tile.device.text() == "monitor-a"
        # On the single document topic anyone may claim any id: under onboarded admission a
        # device pinned in [ward] is not taken there (it must use its own topic).
        publish(
            mosquitto,
            "sensor",
            [vitals("monitor-b", heartrate=66)],
            topic="healthcare/sensor_data",
        )
        window = station.window
        qtbot.waitUntil(
            lambda: window.stats is not None and window.stats.rejected == 1, timeout=WAIT_MS
        )
        assert window.stats is not None
        assert dict(window.stats.by_reason) == {"spoofed": 1}
        assert window.tiles["Bed 2"].hr.value.text() != "66"
        assert [a for a in window.alarm_list.alarms() if a.bed] == []  # none on the claimed bed


def test_malformed_is_counted_and_the_next_valid_message_still_shows(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = station_settings(mosquitto, tmp_path)
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        bad = [
            b'{"device_id": "monitor-a", "timestamp": "2025-02-01T12:00:00Z", "heartrate": "72"}',
            b'{"device_id": "monitor-a", "heartrate": NaN}',
            b"\xff\xfe not json",
            vitals("monitor-b"),  # on monitor-a's topic: spoofed
        ]
        publish(mosquitto, "monitor-a", [*bad, vitals("monitor-a", heartrate=101)])
        tile = station.window.tiles["Bed 1"]
        qtbot.waitUntil(lambda: tile.hr.value.text() == "101", timeout=WAIT_MS)
        window = station.window
        qtbot.waitUntil(
            lambda: window.stats is not None and window.stats.rejected == 4, timeout=WAIT_MS
        )
        assert window.stats is not None
        reasons = dict(window.stats.by_reason)
        assert reasons == {"schema": 1, "non_finite": 1, "encoding": 1, "spoofed": 1}
        assert [r.reason for r in window.stats.quarantine] == [
            "schema",
            "non_finite",
            "encoding",
            "spoofed",
        ]
        assert window.stats.accepted == 1
        assert "4 rejected" in window.ingest.text()
        # A rejected message reached no plot.
        assert list(tile.curves["heartrate"].getData()[1]) == [101.0]


def test_station_reconnects_after_the_broker_is_killed_and_restarted(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = station_settings(mosquitto, tmp_path)
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        window = station.window
        mosquitto.kill()
        qtbot.waitUntil(lambda: not window.broker_connected, timeout=WAIT_MS)
        assert "Broker localhost" in window.connection.text()
        # Losing the broker is itself a high-priority technical alarm.
        qtbot.waitUntil(
            lambda: any(a.parameter == "broker" for a in window.alarm_list.alarms()),
            timeout=WAIT_MS,
        )
        broker_alarm = next(a for a in window.alarm_list.alarms() if a.parameter == "broker")
        assert broker_alarm.priority.mark == "***"
        mosquitto.start()
        qtbot.waitUntil(lambda: window.broker_connected, timeout=WAIT_MS)
        qtbot.waitUntil(
            lambda: all(a.parameter != "broker" for a in window.alarm_list.alarms()),
            timeout=WAIT_MS,
        )
        publish(mosquitto, "monitor-a", [vitals("monitor-a", heartrate=88)])
        qtbot.waitUntil(lambda: window.tiles["Bed 1"].hr.value.text() == "88", timeout=WAIT_MS)
        assert station.mqtt.alive()
    audit = [
        json.loads(line) for line in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()
    ]
    actions = [r["action"] for r in audit]
    assert actions.count("mqtt.connected") == 2
    assert "mqtt.disconnected" in actions


def test_qos1_messages_published_while_the_station_is_down_arrive(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = station_settings(mosquitto, tmp_path)
    with running_station(qtbot, mosquitto, settings, monkeypatch):
        pass  # first run: the broker now holds the station's persistent session
    hr_values = [61, 62, 63, 64, 65]
    publish(mosquitto, "monitor-a", [vitals("monitor-a", heartrate=hr, seq=hr) for hr in hr_values])
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        bed = station.window.beds["Bed 1"]
        qtbot.waitUntil(lambda: len(bed.buffers["heartrate"]) == 5, timeout=WAIT_MS)
        _, values = bed.buffers["heartrate"].view()
        assert list(values) == [float(v) for v in hr_values]
        assert station.core.accepted == 5


def test_status_is_retained_with_a_will_and_alarm_events_are_published(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[tuple[str, dict[str, object], bool]] = []
    got = threading.Condition()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with got:
            received.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))
            got.notify_all()

    listener = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="pager-bridge", protocol=mqtt.MQTTv5
    )
    listener.tls_set(ca_certs=str(mosquitto.ca_file))
    listener.username_pw_set("station", mosquitto.passwords["station"])
    listener.on_message = on_message
    listener.connect("localhost", mosquitto.port)
    listener.subscribe("healthcare/station/#", qos=1)
    listener.loop_start()

    def wait_for(predicate: object) -> list[tuple[str, dict[str, object], bool]]:
        with got:
            assert got.wait_for(lambda: any(predicate(r) for r in received), timeout=15)  # type: ignore[operator]
            return [r for r in received if predicate(r)]  # type: ignore[operator]

    try:
        settings = station_settings(mosquitto, tmp_path)
        with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
            online = wait_for(lambda r: r[0].endswith("/status") and r[1]["state"] == "online")
            assert online[0][0] == "healthcare/station/ward-test/status"
            assert set(online[0][1]) == {"state", "version", "since", "beds"}
            # SpO2 waits out its 10 s condition delay in device time: two readings 10 s apart.
            now = time.time()
            readings = [vitals("monitor-a", oxygen=84, at=t) for t in (now - 10, now)]
            publish(mosquitto, "monitor-a", readings)
            raised = wait_for(lambda r: r[0].endswith("/alarms") and r[1]["parameter"] == "oxygen")
            event = raised[0][1]
            assert event["state"] == AlarmState.ACTIVE.value
            assert event["parameter"] == "oxygen"
            assert event["priority"] == "high"
            assert event["bed"] == "Bed 1"
            assert event["device_id"] == "monitor-a"
            assert event["message"] == "SpO2 84 < 90"
            assert event["limit"] == 90
            assert set(event) == {
                "alarm_id",
                "device_id",
                "bed",
                "kind",
                "parameter",
                "priority",
                "state",
                "value",
                "limit",
                "message",
                "raised_at",
                "at",
                "by",
                "source_time",
                "station",  # the signature's: who sent it, its key id, the signature
                "key_id",
                "sig",
            }
            assert not raised[0][2]
            station.window.acknowledge_requested.emit(event["alarm_id"], "nurse-test")
            acked = wait_for(lambda r: r[0].endswith("/alarms") and r[1]["state"] == "acknowledged")
            assert acked[0][1]["by"] == "nurse-test"
        offline = wait_for(lambda r: r[0].endswith("/status") and r[1]["state"] == "offline")
        assert offline
    finally:
        listener.disconnect()
        listener.loop_stop()


def test_the_will_says_offline_when_the_station_dies(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A station that vanishes without a clean stop is shown offline by the broker's will."""
    settings = station_settings(mosquitto, tmp_path, mqtt={"keepalive_s": 5})
    got: list[dict[str, object]] = []
    done = threading.Event()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        got.append(doc)
        if doc["state"] == "offline":
            done.set()

    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher", protocol=mqtt.MQTTv5)
    watcher.tls_set(ca_certs=str(mosquitto.ca_file))
    watcher.username_pw_set("station", mosquitto.passwords["station"])
    watcher.on_message = on_message
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        watcher.connect("localhost", mosquitto.port)
        watcher.subscribe("healthcare/station/ward-test/status", qos=1)
        watcher.loop_start()
        try:
            qtbot.waitUntil(lambda: any(d["state"] == "online" for d in got), timeout=WAIT_MS)
            # Cut the socket under paho without a DISCONNECT: the broker must publish the will.
            sock = station.mqtt._client.socket()
            assert sock is not None
            sock.shutdown(2)
            assert done.wait(20), f"no offline will seen: {got}"
        finally:
            watcher.disconnect()
            watcher.loop_stop()
        # And the station comes back by itself.
        qtbot.waitUntil(lambda: not station.window.broker_connected, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: station.window.broker_connected, timeout=WAIT_MS)
    audit = (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(r)["action"] for r in audit].count("mqtt.connected") == 2
