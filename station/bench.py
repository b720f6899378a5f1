"""``station bench``: measure this machine with the real station, window included.

The station runs in this process exactly as on the ward (window offscreen, every thread up); the
simulated ward runs as a separate ``station simulate`` process so it does not share the GIL with
what is measured. The broker is a private Mosquitto on a free loopback port when it is installed
(the embedded demo broker tops out near 3k msg/s, PLATFORM-NOTES), else the embedded one.

Prints one JSON object: ingest rate, GUI thread CPU share, render time per frame, process CPU,
peak memory. Numbers are reported, never asserted (performance is not a unit test).

``--historian`` adds the durable path of issue 4: a private victoria-metrics (InfluxDB v2 write
API) as the historian, so every message is spooled (fsync per group commit) before its PUBACK and
drained to the server; the JSON then also gives the points written per second and how the
backlog moved. In every run a ``mosquitto_sub`` on the same broker counts what the broker
delivers to a plain C subscriber in the same window, the reference the station's rate is read
against.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from station.settings import Settings, from_mapping

PROBE_MS = 50  # GUI responsiveness: how late a 50 ms timer fires


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_mosquitto(workdir: Path) -> tuple[int, Callable[[], None]]:
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "max_queued_messages 1000000",
        "max_inflight_messages 20",  # as config/mosquitto-ward.conf: acks bound each commit
        "set_tcp_nodelay true",  # as a ward broker should: alarm events are small and urgent
        f"log_dest file {workdir / 'mosquitto.log'}",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("mosquitto did not start")

    def stop() -> None:
        proc.terminate()
        proc.wait(5)

    return port, stop


def _start_victoria(workdir: Path) -> tuple[str, Callable[[], None]]:
    """A private victoria-metrics, deduplicating identical points as InfluxDB does."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            "victoria-metrics",
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={workdir / 'victoria'}",
            "-dedup.minScrapeInterval=1ms",
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port, proc, "victoria-metrics")

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    return f"http://127.0.0.1:{port}", stop


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


class _LineCounter:
    """``mosquitto_sub`` at QoS 1 on the vitals topics, its output counted in lines (one per
    message). ``stdbuf -oL`` makes it write each line at once rather than in 4 KiB blocks."""

    def __init__(self, port: int, protocol: str, workdir: Path) -> None:
        self._out = workdir / "mosquitto_sub.out"
        version = "mqttv5" if protocol == "5" else "mqttv311"
        cmd = [
            *("stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port)),
            *("-q", "1", "-V", version, "-i", "bench-mosquitto-sub"),
            *("-t", "healthcare/devices/+/vitals"),
        ]
        self._file = self._out.open("wb")
        self._proc = subprocess.Popen(cmd, stdout=self._file, stderr=subprocess.DEVNULL)

    def count(self) -> int:
        with self._out.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(5)
        self._file.close()


def _settings(
    beds: int, port: int, protocol: str, data_dir: Path, influx_url: str | None = None
) -> Settings:
    data: dict[str, object] = {
        "station": {"id": "bench", "name": "Bench", "data_dir": str(data_dir)},
        "mqtt": {"host": "127.0.0.1", "port": port, "protocol": protocol},
        "ward": {"beds": beds},
        "ui": {"columns": 8 if beds > 16 else 4},
    }
    if influx_url is not None:
        data["influx"] = {"enabled": True, "url": influx_url, "flush_interval_s": 0.5}
    return from_mapping(data, source="bench")


def run_bench(
    beds: int,
    rate: float,
    duration: float,
    flood: bool,
    scenario: str = "normal",
    historian: bool = False,
) -> int:
    """Run the station against a simulated ward for ``duration`` seconds and print JSON."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer  # noqa: PLC0415
    from PySide6.QtWidgets import QApplication  # noqa: PLC0415

    from station.app import Station  # noqa: PLC0415
    from station.services.demo_broker import EmbeddedBroker  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="station-bench-"))
    embedded: EmbeddedBroker | None = None
    if shutil.which("mosquitto"):
        port, stop_broker = _start_mosquitto(work)
        broker, protocol = "mosquitto", "5"
    else:
        embedded = EmbeddedBroker()
        port, broker, protocol = embedded.start(), "embedded", "3.1.1"
        stop_broker = lambda: None  # noqa: E731 - stopped below
    influx_url: str | None = None
    stop_victoria: Callable[[], None] = lambda: None  # noqa: E731 - replaced when started
    if historian:
        if not shutil.which("victoria-metrics"):
            raise RuntimeError("--historian needs victoria-metrics (apt-get install it)")
        influx_url, stop_victoria = _start_victoria(work)
        os.environ.setdefault("STATION_INFLUX_TOKEN", "bench-token-not-checked")
    counter = _LineCounter(port, protocol, work) if shutil.which("mosquitto_sub") else None
    app = QApplication.instance() or QApplication([])
    settings = _settings(beds, port, protocol, work / "data", influx_url)
    station = Station(settings, user="bench")
    window = station.window
    station.start()
    # No vitals probe under a flood: parsing every message here would compete with the station.
    events = _AlarmEventClock(port, protocol, "bench", transit=not flood)
    lag_ms: list[float] = []
    probe = QTimer()
    probe.setInterval(PROBE_MS)
    last_probe = [time.monotonic()]

    def on_probe() -> None:
        now = time.monotonic()
        lag_ms.append(max(0.0, (now - last_probe[0]) * 1000 - PROBE_MS))
        last_probe[0] = now

    probe.timeout.connect(on_probe)
    probe.start()
    sim_rate = 100_000.0 / beds if flood else rate
    sim = subprocess.Popen(
        [
            *(sys.executable, "-m", "station", "--log-level", "WARNING", "simulate"),
            *("--port", str(port), "--beds", str(beds), "--rate", str(sim_rate)),
            *("--duration", str(duration + 5), "--protocol", protocol, "--scenario", scenario),
        ],
    )
    # Warm up 3 s (connect, first paint), then measure. exit(), not quit(): Qt 6's quit() first
    # closes every window, which would stop the render timer being measured.
    QTimer.singleShot(3000, lambda: app.exit(0))
    app.exec()
    for series in (
        window.frame_ms,
        window.alarm_paint_ms,
        lag_ms,
        events.latencies_ms,
        events.transit_ms,
        events.to_core_ms,
    ):
        series.clear()
    accepted0 = station.core.accepted
    hist0 = station.historian.status() if station.historian else None
    sub0 = counter.count() if counter else 0
    wall0, gui0, cpu0 = time.monotonic(), time.thread_time(), time.process_time()
    QTimer.singleShot(round(duration * 1000), lambda: app.exit(0))
    app.exec()
    wall = time.monotonic() - wall0
    gui = time.thread_time() - gui0
    cpu = time.process_time() - cpu0
    accepted = station.core.accepted - accepted0
    hist1 = station.historian.status() if station.historian else None
    sub = (counter.count() - sub0) if counter else None
    probe.stop()
    sim.terminate()
    sim.wait(10)
    events.close()
    if counter is not None:
        counter.close()
    station.stop()
    if embedded is not None:
        embedded.stop()
    stop_broker()
    stop_victoria()
    frames = list(window.frame_ms)
    result = {
        "broker": broker,
        "beds": beds,
        "scenario": scenario,
        "offered_rate_hz": "flood" if flood else beds * rate,
        "duration_s": round(wall, 2),
        "ingest_msgs_per_s": round(accepted / wall, 1),
        "gui_thread_cpu_share": round(gui / wall, 4),
        "process_cpu_share_of_one_core": round(cpu / wall, 4),
        "render_ms_mean": _mean(frames),
        "render_ms_p95": _pct(frames, 0.95),
        "frames": len(frames),
        "gui_timer_lag_ms_p99": _pct(lag_ms, 0.99),
        "gui_timer_lag_ms_max": _pct(lag_ms, 1.0),
        "alarms_raised": len(events.latencies_ms),
        "alarm_event_latency_ms_p50": _pct(events.latencies_ms, 0.5),
        "alarm_event_latency_ms_p99": _pct(events.latencies_ms, 0.99),
        "alarm_repaint_latency_ms_p50": _pct(list(window.alarm_paint_ms), 0.5),
        "alarm_repaint_latency_ms_p99": _pct(list(window.alarm_paint_ms), 0.99),
        "alarm_raised_in_core_ms_p50": _pct(events.to_core_ms, 0.5),
        "alarm_raised_in_core_ms_p99": _pct(events.to_core_ms, 0.99),
        "vitals_transit_ms_p50": _pct(events.transit_ms, 0.5),
        "vitals_transit_ms_p99": _pct(events.transit_ms, 0.99),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "mosquitto_sub_msgs_per_s": None if sub is None else round(sub / wall, 1),
        "ingest_vs_mosquitto_sub": None if not sub else round(accepted / sub, 3),
    }
    if hist0 is not None and hist1 is not None:
        result.update(
            {
                "historian_points_per_s": round((hist1.written - hist0.written) / wall, 1),
                "historian_backlog_start": hist0.backlog,
                "historian_backlog_end": hist1.backlog,
                "historian_backlog_growth_per_s": round((hist1.backlog - hist0.backlog) / wall, 1),
                "historian_error": hist1.error,
            }
        )
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, rounded; None when nothing was measured."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


class _AlarmEventClock:
    """Subscribes to the station's alarms topic like a pager bridge would, and measures each
    newly raised alarm from the device time of the message that raised it (``source_time``)
    to its arrival here. Same machine, same clock."""

    def __init__(self, port: int, protocol: str, station_id: str, transit: bool) -> None:
        import paho.mqtt.client as mqtt  # noqa: PLC0415
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        self.latencies_ms: list[float] = []
        # Device timestamp → a vitals message reaching this bystander subscriber: the rig's own
        # delay (simulator scheduling, broker), to read the station's share of the latency.
        self.transit_ms: list[float] = []
        self.to_core_ms: list[float] = []  # device time → the core raised it
        version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, "bench-bridge", protocol=version)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(f"healthcare/station/{station_id}/alarms", qos=1)
        if transit:
            self._client.subscribe("healthcare/devices/+/vitals", qos=0)
        self._client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: Any) -> None:
        arrived = time.time()
        try:
            event = json.loads(msg.payload)
            if msg.topic.endswith("/vitals"):
                stamp = datetime.fromisoformat(event["timestamp"]).timestamp()
                self.transit_ms.append((arrived - stamp) * 1000)
                return
            if event.get("state") == "active" and event.get("source_time"):
                source = datetime.fromisoformat(event["source_time"]).timestamp()
                raised = datetime.fromisoformat(event["raised_at"]).timestamp()
                self.latencies_ms.append((arrived - source) * 1000)
                self.to_core_ms.append((raised - source) * 1000)
        except (ValueError, TypeError, KeyError):
            return

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
