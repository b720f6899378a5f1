"""Every bed's alarm on time whatever the other devices do (issue 13), against a real Mosquitto
(TLS, password file, ACL) and, for the backlog, a real victoria-metrics: a device flooding from C
publishers, a restart behind a backlog, a forged message, rejected and random ids."""

from __future__ import annotations

import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from station.domain.messages import Accepted
from tests.integration.live_load import (
    AlarmListener,
    Devices,
    Ward1Hz,
    c_publishers,
    connect_client,
    flood_lines,
    own_topic,
    stop_all,
)
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.victoria import VictoriaMetrics
from tests.integration.station_harness import (
    running_station,
    start_station_process,
    station_settings,
    write_config,
)
from tests.integration.test_durable_ingest import Recorder, wait_until_stored
from tests.payloads import vitals

BEDS = 8
DEVICES = tuple(f"bed-{n}" for n in range(1, BEDS + 1))
WARD = {"beds": BEDS, "devices": {d: n for n, d in enumerate(DEVICES, 1)}}


@pytest.fixture
def mosquitto_devices() -> tuple[str, ...]:
    return DEVICES


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(mosquitto)
    yield rec
    rec.close()


def _high_hr(bed: str) -> Any:
    def match(event: dict[str, Any]) -> bool:
        return (
            event["bed"] == bed and event["parameter"] == "heartrate" and event["state"] == "active"
        )

    return match


def _audit_text(station: Any) -> str:
    folder = station.settings.station.data_path / "audit"
    return "".join(p.read_text() for p in sorted(folder.glob("*.jsonl")))


def test_a_flooding_device_delays_no_other_bed(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = station_settings(mosquitto, tmp_path / "data", ward=WARD)
    listener = AlarmListener(mosquitto)
    devices = Devices(mosquitto, DEVICES[1:])
    newest: dict[str, float] = {}
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:

        def on_vitals(batch: tuple[tuple[str, Accepted], ...]) -> None:
            for bed, msg in batch:  # as the core hands them to the window
                newest[bed] = msg.device_time

        station.core.vitals_batch.connect(on_vitals, Qt.ConnectionType.DirectConnection)
        ward = Ward1Hz(devices, DEVICES[1:])
        flooders = c_publishers(
            mosquitto,
            "bed-1",
            flood_lines("bed-1", 240_000, heartrate=80),
            tmp_path / "flood",
            own_topic("bed-1"),
            processes=4,
        )
        try:
            ages: list[float] = []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                qtbot.wait(200)
                if all(f"Bed {n}" in newest for n in range(2, BEDS + 1)):
                    now = time.time()
                    ages.append(max(now - newest[f"Bed {n}"] for n in range(2, BEDS + 1)))
            assert all(p.poll() is None for p in flooders), "the flood ended before the alarm"
            sent = devices.send("bed-3", heartrate=170)
            arrived, event = listener.first(_high_hr("Bed 3"), timeout=20)
            latency = arrived - sent
            still_flooding = all(p.poll() is None for p in flooders)
        finally:
            ward.stop()
            stop_all(flooders)
        assert still_flooding, "the flood ended before the alarm arrived: nothing was measured"
        assert latency <= 1.0, f"Bed 3's alarm came {latency:.2f} s after its publish"
        assert event["value"] == 170
        assert len(ages) >= 15, "the other beds were not fed during the flood"
        assert max(ages) <= 2.0, f"data age of the other beds reached {max(ages):.2f} s"
        alarms = station.window.alarm_list.alarms()
        assert ("bed-1", "flooding", "Bed 1") in [(a.device_id, a.parameter, a.bed) for a in alarms]
        qtbot.waitUntil(lambda: '"device.flooding"' in _audit_text(station), timeout=10_000)
    listener.close()
    devices.close()


def test_a_forged_message_does_not_silence_a_real_bed(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Open admission: the shared topic is how devices speak, so the forgery is taken in.
    settings = station_settings(
        mosquitto, tmp_path / "data", ward=WARD, devices={"admission": "open"}
    )
    listener = AlarmListener(mosquitto)
    devices = Devices(mosquitto, ["bed-2"])
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        devices.send("bed-2", heartrate=75)
        forged = vitals("bed-2", at=time.time() + 180, seq=2**63 - 1, heartrate=60)
        sensor = connect_client(mosquitto, "sensor", f"sensor-{time.monotonic_ns()}")
        sensor.publish("healthcare/sensor_data", forged, qos=1).wait_for_publish(5)
        qtbot.waitUntil(
            lambda: any(a.parameter == "sequence" for a in station.window.alarm_list.alarms()),
            timeout=10_000,
        )
        sent = devices.send("bed-2", heartrate=170)
        arrived, _event = listener.first(_high_hr("Bed 2"), timeout=15)
        assert arrived - sent <= 15
        flagged = [a for a in station.window.alarm_list.alarms() if a.parameter == "sequence"]
        assert [(a.device_id, a.bed) for a in flagged] == [("bed-2", "Bed 2")]
        qtbot.waitUntil(lambda: '"device.suspect"' in _audit_text(station), timeout=10_000)
        sensor.disconnect()
        sensor.loop_stop()
    listener.close()
    devices.close()


@pytest.mark.timeout(400)
def test_rejected_and_random_ids_put_nothing_on_a_bed_and_stay_bounded(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = station_settings(mosquitto, tmp_path / "data", ward=WARD)
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        # Bad data claiming bed-2's id on the shared topic: counted, no alarm on Bed 2.
        bad = [b'{"device_id": "bed-2", "timestamp": "x", "heartrate": "72"}'] * 20
        # 100,000 valid messages from random ids nobody onboarded, and some invalid ones.
        random_ids = [
            vitals(f"rogue-{i:06d}", heartrate=70 + i % 50)
            if i % 10
            else f'{{"device_id": "rogue-{i:06d}", "heartrate": NaN}}'.encode()
            for i in range(100_000)
        ]
        rss_before = _rss_mb()
        procs = c_publishers(
            mosquitto,
            "sensor",
            [*bad, *random_ids],
            tmp_path / "random",
            "healthcare/sensor_data",
            processes=2,
        )
        try:
            window = station.window
            qtbot.waitUntil(
                lambda: (
                    window.stats is not None
                    and window.stats.accepted + window.stats.rejected >= 100_020
                ),
                timeout=240_000,
            )
        finally:
            stop_all(procs)
        assert window.stats is not None
        assert window.stats.rejected >= 10_020
        assert len(window.stats.unassigned) <= 256
        # The pinned monitors sent nothing meanwhile: "no data" is the only alarm on a bed.
        alarms = [a for a in station.window.alarm_list.alarms() if a.parameter != "no_data"]
        assert [a for a in alarms if a.bed] == [], "a rejected or unknown id put an alarm on a bed"
        assert len(alarms) <= 3, f"the alarm list holds {len(alarms)} other alarms"
        growth = _rss_mb() - rss_before
        assert growth < 150, f"memory grew {growth:.0f} MB for 100,000 random ids"


def _rss_mb() -> float:
    """The process's resident memory now (VmRSS), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.timeout(600)
def test_a_restart_behind_a_backlog_alarms_live_and_stores_every_point_once(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = station_settings(
        mosquitto,
        tmp_path / "data",
        ward=WARD,
        influx={"enabled": True, "url": victoria.url, "flush_interval_s": 0.2},
    )
    monkeypatch.setenv("STATION_INFLUX_TOKEN", "test-token-not-checked")
    with running_station(qtbot, mosquitto, settings, monkeypatch):
        pass  # the persistent session now exists on the broker
    # 8 beds × 5,000 messages published while the station is away: 40,000 queued for it.
    per_bed = 5_000
    start = float(round(time.time()) - 3 * 3600)  # whole seconds: device times are ms
    procs = []
    for device in DEVICES:
        lines = [
            vitals(device, at=start + i, seq=i + 1, heartrate=60 + i % 40) for i in range(per_bed)
        ]
        procs += c_publishers(mosquitto, device, lines, tmp_path / "backlog", own_topic(device))
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    listener = AlarmListener(mosquitto)
    devices = Devices(mosquitto, ["bed-5"])
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        sent = devices.send("bed-5", heartrate=170)
        arrived, _event = listener.first(_high_hr("Bed 5"), timeout=20)
        taken_live = station.core.accepted
        assert arrived - sent <= 2.0, f"live alarm {arrived - sent:.2f} s after its publish"
        assert taken_live < BEDS * per_bed, "the backlog was drained before the live alarm"
        expected = {d: {round((start + i) * 1000) for i in range(per_bed)} for d in DEVICES}
        got, values = wait_until_stored(victoria, expected, timeout=400)
    listener.close()
    devices.close()
    backlog_values = sum(len(got[d] & expected[d]) for d in DEVICES)
    assert backlog_values == BEDS * per_bed
    live_values = 1 + 2  # bed-5's live message and at most a sample of the first station run
    assert values - backlog_values <= live_values, "a backlog point was stored twice"


def _wait_online(rec: Recorder, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while rec.station_state != "online":
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


@pytest.mark.timeout(400)
def test_sigterm_during_a_flood_exits_0_in_time_and_loses_nothing(
    mosquitto: Mosquitto, victoria: VictoriaMetrics, recorder: Recorder, tmp_path: Path
) -> None:
    settings = station_settings(
        mosquitto,
        tmp_path / "data",
        ward=WARD,
        influx={"enabled": True, "url": victoria.url},
    )
    config, log = tmp_path / "station.toml", tmp_path / "station.log"
    write_config(settings, config)
    count, base = 90_000, float(round(time.time()))  # under the broker's queue limit (100k)
    lines = [vitals("bed-1", at=base + i / 1000, seq=i + 1) for i in range(count)]
    proc = start_station_process(config, log, mosquitto)
    flood: list[subprocess.Popen[bytes]] = []
    try:
        _wait_online(recorder, proc, log)
        flood = c_publishers(
            mosquitto, "bed-1", lines, tmp_path / "flood", own_topic("bed-1"), processes=4
        )
        time.sleep(1.5)
        assert all(p.poll() is None for p in flood), "the flood ended before the signal"
        recorder.station_state = None
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        took = time.monotonic() - signalled
        output = log.read_text()
        assert code == 0, output[-3000:]
        assert took <= 10, f"the station took {took:.1f} s to stop"
        assert "Destroyed while thread" not in output
        assert "did not stop in time" not in output
        assert all(p.wait(120) == 0 for p in flood)  # the rest waits in the station's session
        proc = start_station_process(config, log, mosquitto)
        _wait_online(recorder, proc, log)
        expected = {"bed-1": {round(base * 1000) + i for i in range(count)}}
        _got, values = wait_until_stored(victoria, expected, timeout=300)
        assert values == count, f"{values - count} points stored twice"
    finally:
        stop_all(flood)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()[-3000:]
