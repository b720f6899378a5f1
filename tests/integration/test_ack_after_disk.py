"""Without a historian, what the broker was told had arrived is on disk: a station process killed
(SIGKILL) mid-stream and started again has every published message in its trend store.

With ``[influx] enabled = false`` there is no spool, and the trend store is all the station keeps
of a message. It used to acknowledge at the group commit (a few ms) and write the trend store only
every 250 ms: a kill in between lost messages the broker had dropped as delivered. Now the
acknowledgement follows the trend store's commit, so a message is either on disk or
unacknowledged, and the broker redelivers it to the restarted station (its persistent session).

What was published is known from an independent recorder (its own persistent session on the same
broker); the trend store is read from its file, by device and device time.
"""

from __future__ import annotations

import signal
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.config.settings import Settings
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import start_station_process, station_settings, write_config
from tests.integration.test_durable_ingest import (
    BEDS,
    DEVICES,
    Published,
    Recorder,
    online,
    ward_simulator,
)
from tests.waiting import wait_until


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(mosquitto)
    yield rec
    rec.close()


def settings_without_historian(broker: Mosquitto, data_dir: Path) -> Settings:
    return station_settings(
        broker,
        data_dir,
        ward={"beds": BEDS, "devices": DEVICES},
        influx={"enabled": False},
        devices={"admission": "open"},  # the simulator speaks on the single topic
    )


def write_config_without_historian(settings: Settings, path: Path) -> None:
    write_config(settings, path)
    text = path.read_text(encoding="utf-8")
    assert "[influx]\nenabled = true\n" in text
    path.write_text(text.replace("[influx]\nenabled = true\n", "[influx]\nenabled = false\n"))


def in_trend_store(data_dir: Path) -> Published:
    """Device times (ms) per device in the trend store's raw samples, read from its file."""
    conn = sqlite3.connect(f"file:{data_dir / 'trends.sqlite'}?mode=ro", uri=True)
    try:
        out: Published = defaultdict(set)
        for device, time_ms in conn.execute("SELECT device, time_ms FROM raw"):
            out[device].add(int(time_ms))
        return dict(out)
    finally:
        conn.close()


def missing(published: Published, stored: Published) -> dict[str, int]:
    return {d: n for d, t in published.items() if (n := len(t - stored.get(d, set())))}


def test_a_station_killed_without_a_historian_loses_no_acknowledged_message(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    data = tmp_path / "station"
    settings = settings_without_historian(mosquitto, data)
    config = tmp_path / "station.toml"
    write_config_without_historian(settings, config)
    log = tmp_path / "station.log"
    rate = 10.0
    second = round(rate * BEDS)  # 160 messages a second: a kill lands between two trend writes
    sim = ward_simulator(mosquitto, rate=rate)
    proc = start_station_process(config, log, mosquitto)
    try:
        wait_until(lambda: online(recorder, proc, log), 30, "the station up and subscribed")
        sim.start()
        wait_until(lambda: recorder.count() >= 3 * second, 60, "3 s of the stream")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        killed_at = recorder.count()
        wait_until(lambda: recorder.count() >= killed_at + second, 60, "1 s more, unheard")
        recorder.station_state = None
        proc = start_station_process(config, log, mosquitto)
        wait_until(lambda: online(recorder, proc, log), 30, "the restarted station online")
        back_at = recorder.count()
        wait_until(lambda: recorder.count() >= back_at + second, 60, "1 s more, live")
    finally:
        assert sim.stop(10)
    try:
        published = recorder.published()
        assert sum(len(t) for t in published.values()) >= 5 * second
        # Everything published is in the trend store: what the killed station had acknowledged
        # was on disk before it said so, and what it had not, the broker gave to the new one.
        wait_until(
            lambda: not missing(published, in_trend_store(data)),
            30,
            "every published message in the trend store",
        )
    except AssertionError:
        print(f"missing: {missing(recorder.published(), in_trend_store(data))}")
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()[-3000:]
    assert not (data / "spool.sqlite").exists()  # no historian, no spool: the trends are it
