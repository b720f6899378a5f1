"""The audit trail against real parts (issue 7): historian faults are audited when a real
victoria-metrics goes away and comes back, the signed checkpoint is on a real Mosquitto
(retained), and a data folder put back to an older copy is found against it — by the auditor
with ``station audit verify --checkpoint`` and by the station itself at its next start."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pytestqt.qtbot import QtBot

from station.cli.audit import verify_path
from station.config import credentials
from station.config.credentials import use_memory_keyring
from station.config.settings import Settings
from station.domain.audit.keyed import Published
from station.services.audit.keys import station_key
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.victoria import VictoriaMetrics
from tests.integration.station_harness import publish, running_station, station_settings
from tests.payloads import vitals


def retained_checkpoint(broker: Mosquitto, station: str) -> Published:
    """What the broker keeps on the station's audit topic, read as any subscriber would."""
    got: list[bytes] = []
    arrived = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="auditor", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.ca_file))
    client.username_pw_set("station", broker.passwords["station"])

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        got.append(message.payload)
        arrived.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe(f"healthcare/station/{station}/audit", qos=1)
    client.connect("localhost", broker.port)
    client.loop_start()
    try:
        assert arrived.wait(10), "no retained audit checkpoint on the broker"
    finally:
        client.loop_stop()
        client.disconnect()
    return Published.from_json(got[-1])


def actions(data: Path) -> list[dict[str, object]]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_faults_are_audited_and_a_rolled_back_folder_is_found(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    settings = station_settings(
        mosquitto, data, influx={"enabled": True, "url": victoria.url, "flush_interval_s": 0.2}
    )
    monkeypatch.setenv("STATION_INFLUX_TOKEN", "test-token-not-checked-by-vm")
    public = station_key("ward-test").public_key()
    with use_memory_keyring():
        with running_station(qtbot, mosquitto, settings, monkeypatch):
            pass
        older = tmp_path / "older-copy"
        shutil.copytree(data / "audit", older)

        with running_station(qtbot, mosquitto, settings, monkeypatch):
            victoria.stop()
            publish(mosquitto, "monitor-a", [vitals("monitor-a", at=time.time(), heartrate=70)])
            qtbot.waitUntil(
                lambda: any(r["action"] == "historian.fault" for r in actions(data)),
                timeout=20000,
            )
            victoria.start()
            qtbot.waitUntil(
                lambda: any(r["action"] == "historian.recovered" for r in actions(data)),
                timeout=30000,
            )
        checkpoint = retained_checkpoint(mosquitto, "ward-test")
        assert checkpoint.verifies(public)
        fault = next(r for r in actions(data) if r["action"] == "historian.fault")
        assert (fault["target"], fault["outcome"]) == ("historian", "failure")
        assert verify_path(data)[0] == 0

        # Someone puts the whole audit folder back to the older copy.
        shutil.rmtree(data / "audit")
        shutil.copytree(older, data / "audit")
        assert verify_path(data)[0] == 0  # on its own, a consistent (older) trail
        kept = tmp_path / "checkpoint.json"
        kept.write_text(checkpoint.to_json())
        code, text = verify_path(data, checkpoints=[kept])
        assert code == 1
        assert ": rolled_back: " in text

        anchor = credentials.secret("audit_anchor", "ward-test")
        assert anchor
    # The station finds it by itself too. First with a keyring that has lost the last
    # checkpoint: the broker's retained copy reaches it before its own new one replaces it.
    with use_memory_keyring():
        rolled_back_alarm(qtbot, mosquitto, settings, monkeypatch, "broker checkpoint")
    # Then, on the same old copy again, from the last checkpoint the station kept (here given
    # as a service would, in the environment) — with the broker's copy already replaced.
    shutil.rmtree(data / "audit")
    shutil.copytree(older, data / "audit")
    monkeypatch.setenv("STATION_AUDIT_ANCHOR", anchor)
    with use_memory_keyring():
        rolled_back_alarm(qtbot, mosquitto, settings, monkeypatch, "audit.jsonl")


def rolled_back_alarm(
    qtbot: QtBot,
    broker: Mosquitto,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    """Start the station on a rolled-back folder: a HIGH technical alarm names the audit trail,
    and the trail records the finding (``audit.verify``, kind ``rolled_back``, ``target``)."""
    with running_station(qtbot, broker, settings, monkeypatch) as station:
        qtbot.waitUntil(lambda: "rolled back" in str(station.audit.fault), timeout=10000)
        qtbot.waitUntil(
            lambda: any(
                "Audit trail" in alarm.message for alarm in station.window.alarm_list.alarms()
            ),
            timeout=5000,
        )
    found = [
        r
        for r in actions(settings.station.data_path)
        if r["action"] == "audit.verify" and r["target"] == target
    ]
    assert found
    assert found[-1]["details"]["kind"] == "rolled_back"  # type: ignore[index]
