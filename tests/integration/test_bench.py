"""``station bench`` measures a fed ward, and says so loudly when it does not.

Until issue 13 the bench never admitted its simulated devices and reported ``alarms_raised: 0``
for an empty ward without anyone noticing. These run the real command (its own Mosquitto, the
simulator, the station offscreen) for a few seconds each and read its JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

pytestmark = [
    pytest.mark.integration,
]


def _bench(*args: str) -> tuple[int, dict[str, Any], str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run(
        [sys.executable, "-m", "station", "--log-level", "ERROR", "bench", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON printed (exit {done.returncode}): {done.stderr[-2000:]}"
    return done.returncode, json.loads(lines[-1]), done.stderr


def test_a_short_alarms_bench_feeds_every_bed_and_raises_alarms() -> None:
    code, report, stderr = _bench("--beds", "8", "--duration", "6", "--scenario", "alarms")
    assert code == 0, (report["problems"], stderr[-2000:])
    assert report["ok"] is True
    assert report["problems"] == []
    (run,) = report["runs"]
    assert run["beds_publishing"] == 8
    assert run["beds_on_screen"] == 8
    assert run["alarms_raised"] > 0
    assert run["alarm_event_latency_ms_p50"] > 0
    assert 4 < run["ingest_msgs_per_s"] < 12  # 8 beds at 1 Hz
    assert run["mosquitto_sub_msgs_per_s"] > 0
    assert 0.5 < run["ingest_vs_mosquitto_sub"] <= 1.5
    assert report["median"]["alarms_raised"] == run["alarms_raised"]


def test_the_bench_fails_loudly_when_its_devices_are_not_admitted() -> None:
    # The hidden --admission onboarded is the bench as it was: devices publish, none takes a bed.
    code, report, stderr = _bench(
        "--beds", "4", "--duration", "3", "--scenario", "alarms", "--admission", "onboarded"
    )
    assert code == 1
    assert report["ok"] is False
    (run,) = report["runs"]
    assert run["beds_publishing"] == 4  # the simulator did its part
    assert run["beds_on_screen"] == 0
    assert run["alarms_raised"] == 0
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("station bench: FAILED: only 0 of 4 simulated beds"), last
    assert "the alarms scenario raised no alarm" in last


def test_each_run_has_a_process_of_its_own() -> None:
    """A run's station was never wholly freed in its process, so later runs measured beside
    the earlier ones' objects (max_rss_mb 424, 596, 770 over three flood runs)."""
    code, report, stderr = _bench("--beds", "4", "--duration", "2", "--repeat", "2")
    assert code == 0, (report["problems"], stderr[-2000:])
    first, second = report["runs"]
    assert first["beds_on_screen"] == second["beds_on_screen"] == 4
    assert first["process"].startswith("pid ")
    assert first["process"] != second["process"]
    assert "process" not in report["median"]  # a name, not a figure
