"""The historian against a real victoria-metrics speaking the InfluxDB v2 write API (§5)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.domain import ingest
from station.domain.lineprotocol import vitals_line
from station.domain.messages import Accepted
from station.services.ingest.historian import Historian
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.victoria import VictoriaMetrics
from tests.integration.station_harness import publish, running_station, station_settings
from tests.payloads import iso, vitals

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, well inside VM's retention


def series_by_name(series: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {s["metric"]["__name__"]: s for s in series}


def test_station_writes_vitals_and_alarms_with_the_contract_schema(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = station_settings(
        mosquitto, tmp_path, influx={"enabled": True, "url": victoria.url, "flush_interval_s": 0.2}
    )
    monkeypatch.setenv("STATION_INFLUX_TOKEN", "test-token-not-checked-by-vm")
    now = time.time()
    sent_at = round(now - 2, 3)
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        payload = vitals(
            "monitor-a",
            at=sent_at,
            heartrate=131,
            oxygen=97,
            temperature=37.1,
            battery=64,
            location={"latitude": 52.1, "longitude": 4.3},
        )
        publish(mosquitto, "monitor-a", [payload])
        series = victoria.wait_for('{__name__=~"vitals_.*"}', lambda s: len(s) == 8, timeout=15)
        qtbot.waitUntil(lambda: "writing" in station.window.historian.text(), timeout=5000)
    named = series_by_name(series)
    assert set(named) == {
        "vitals_heartrate",
        "vitals_oxygen",
        "vitals_systolic",
        "vitals_diastolic",
        "vitals_temperature",
        "vitals_latitude",
        "vitals_longitude",
        "vitals_battery",
    }
    for s in named.values():
        labels = {k: v for k, v in s["metric"].items() if k != "__name__"}
        assert labels == {"station": "ward-test", "device": "monitor-a", "bed": "Bed 1"}
        assert s["timestamps"] == [round(sent_at * 1000)]
    assert named["vitals_heartrate"]["values"] == [131]
    assert named["vitals_systolic"]["values"] == [120]
    assert named["vitals_diastolic"]["values"] == [80]
    assert named["vitals_temperature"]["values"] == [37.1]
    assert named["vitals_battery"]["values"] == [64]
    # No alert text became a field (VM would store a string field as 0).
    assert "vitals_alert" not in named

    alarms = victoria.wait_for('{__name__=~"alarms_.*"}', lambda s: len(s) >= 2, timeout=15)
    hr = [s for s in alarms if s["metric"].get("parameter") == "heartrate"]
    by_field = series_by_name(hr)
    value, limit = by_field["alarms_value"], by_field["alarms_limit"]
    assert value["metric"] | {"__name__": ""} == {
        "__name__": "",
        "station": "ward-test",
        "device": "monitor-a",
        "bed": "Bed 1",
        "parameter": "heartrate",
        "priority": "high",
        "state": "active",
    }
    assert value["values"] == [131]
    assert limit["values"] == [120]


def test_historian_keeps_points_while_the_server_is_down_and_writes_them_after(
    victoria: VictoriaMetrics,
) -> None:
    """First cut of 'nothing lost': an outage while the station runs loses no point."""
    historian = Historian(victoria.url, "ward", "vitals", None, flush_interval_s=0.1)
    historian.start()
    try:
        victoria.stop()
        for i in range(20):
            raw = vitals("monitor-a", at=T0 + i, heartrate=60 + i)
            msg = ingest.parse("healthcare/sensor_data", raw, T0 + i, ())
            assert isinstance(msg, Accepted)
            line = vitals_line("ward-test", "Bed 1", msg)
            assert line is not None
            historian.submit(line)
        deadline = time.monotonic() + 10
        while historian.status().ok and time.monotonic() < deadline:
            time.sleep(0.05)
        status = historian.status()
        assert not status.ok
        assert status.backlog == 20
        assert status.error
        victoria.start()
        series = victoria.wait_for(
            '{__name__="vitals_heartrate"}',
            lambda s: bool(s) and len(s[0]["values"]) == 20,
            timeout=40,
        )
        assert series[0]["values"] == [60 + i for i in range(20)]
        assert series[0]["timestamps"] == [round((T0 + i) * 1000) for i in range(20)]
        assert historian.status().ok
        assert historian.status().backlog == 0
    finally:
        assert historian.stop(5.0)


def test_iso_helper_round_trips() -> None:
    assert iso(T0) == "2026-01-01T00:00:00.000Z"
