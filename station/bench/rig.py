"""The rig of ``station bench``: private servers, bystander subscribers, settings, statistics.

Nothing here imports Qt: these parts run beside the station and are read after a measurement.
Every server is private (free loopback port, the run's own folder) and stopped by its process.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from station.config.settings import Settings, from_mapping

STATION_ID = "bench"


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str) -> None:
    """Wait until ``proc`` listens on ``port``; kill it and raise if it does not within 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def start_mosquitto(workdir: Path) -> tuple[int, Callable[[], None]]:
    """A private Mosquitto configured as a ward broker should be; returns (port, stop)."""
    port = free_port()
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
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port, proc, "mosquitto")

    def stop() -> None:
        proc.terminate()
        proc.wait(5)

    return port, stop


def start_victoria(workdir: Path) -> tuple[str, Callable[[], None]]:
    """A private victoria-metrics, deduplicating identical points as InfluxDB does."""
    port = free_port()
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
    wait_for_port(port, proc, "victoria-metrics")

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    return f"http://127.0.0.1:{port}", stop


def bench_settings(
    beds: int,
    port: int,
    data_dir: Path,
    influx_url: str | None = None,
    admission: str = "pinned",
    extra: tuple[str, ...] = (),
) -> Settings:
    """The station's settings on the bench. ``"pinned"`` (the default): the simulated devices
    (``sim-bedNN``, then ``extra``) are pinned to the beds in ``[ward] devices`` and publish on
    their own topics under onboarded admission, as a ward that knows its devices runs: the
    live session then subscribes per device and can cut a flooding one off. ``"open"``: open
    admission, no pins (the wildcard live subscription). ``"onboarded"``: no pins, so no
    device reaches a bed: the bench as it was until issue 13, which its self-check must refuse."""
    pins: dict[str, int] = {}
    if admission == "pinned":
        names = [f"sim-bed{n:02d}" for n in range(1, beds - len(extra) + 1)] + list(extra)
        pins = {name: n for n, name in enumerate(names, 1)}
    data: dict[str, object] = {
        "station": {"id": STATION_ID, "name": "Bench", "data_dir": str(data_dir)},
        "mqtt": {"host": "127.0.0.1", "port": port, "protocol": "5"},
        "ward": {"beds": beds, "devices": pins},
        "ui": {"columns": 8 if beds > 16 else 4},
        "devices": {"admission": "onboarded" if admission == "pinned" else admission},
    }
    if influx_url is not None:
        data["influx"] = {"enabled": True, "url": influx_url, "flush_interval_s": 0.5}
    return from_mapping(data, source="bench")


class LineCounter:
    """``mosquitto_sub`` at ``qos`` on ``topics``, one output line per message: the topic
    (``-F %t``), so the lines say both how many messages and which devices the broker
    delivered. ``stdbuf -oL`` makes it write each line at once rather than in 4 KiB blocks.
    Cheap C beside the station: the reference a station's rate is read against, and the
    bench's check of its own input (did the simulator feed every bed?)."""

    def __init__(
        self, port: int, workdir: Path, name: str, topics: list[str], qos: int = 1
    ) -> None:
        self._out = workdir / f"{name}.out"
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port)]
        cmd += ["-q", str(qos), "-V", "mqttv5", "-i", f"bench-{name}", "-F", "%t"]
        for topic in topics:
            cmd += ["-t", topic]
        self._file = self._out.open("wb")
        self._proc = subprocess.Popen(cmd, stdout=self._file, stderr=subprocess.DEVNULL)

    def count(self) -> int:
        """Messages delivered so far."""
        with self._out.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def per_topic(self) -> Counter[str]:
        """Messages delivered so far per topic (read only for small taps: it parses lines)."""
        return Counter(self._out.read_text(encoding="utf-8", errors="replace").splitlines())

    def close(self) -> None:
        """Stop the subscriber (its output stays readable)."""
        self._proc.terminate()
        self._proc.wait(5)
        self._file.close()


@dataclass(frozen=True)
class AlarmEvent:
    """A newly raised alarm seen on the station's alarms topic."""

    device_id: str
    parameter: str
    source_time: float  # device time of the message that raised it, epoch s
    arrived: float  # when it reached the bench, epoch s
    to_core_ms: float  # device time → the core raised it

    @property
    def latency_ms(self) -> float:
        """Device time of the raising message → the event here: what a pager bridge sees."""
        return (self.arrived - self.source_time) * 1000


class AlarmEventClock:
    """Subscribes to the station's alarms topic like a pager bridge would, and timestamps each
    newly raised alarm against the device time of the message that raised it (``source_time``).
    Same machine, same clock. With ``transit``, it also times plain vitals messages reaching
    this bystander (the rig's own delay, to read the station's share of the latency). Its
    client also publishes the bench's few live messages (``publish``): one paho client, no
    process per message."""

    def __init__(self, port: int, transit: bool) -> None:
        import paho.mqtt.client as mqtt  # noqa: PLC0415 - only the bench needs paho here
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        self._lock = threading.Lock()
        self.events: list[AlarmEvent] = []
        self.transit_ms: list[float] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, "bench-bridge", protocol=mqtt.MQTTv5
        )
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(f"healthcare/station/{STATION_ID}/alarms", qos=1)
        if transit:
            self._client.subscribe("healthcare/devices/+/vitals", qos=0)
        self._client.loop_start()
        self._closed = False

    def _on_message(self, _c: object, _u: object, msg: Any) -> None:
        arrived = time.time()
        try:
            event = json.loads(msg.payload)
            if msg.topic.endswith("/vitals"):
                stamp = datetime.fromisoformat(event["timestamp"]).timestamp()
                with self._lock:
                    self.transit_ms.append((arrived - stamp) * 1000)
                return
            if event.get("state") == "active" and event.get("source_time"):
                source = datetime.fromisoformat(event["source_time"]).timestamp()
                raised = datetime.fromisoformat(event["raised_at"]).timestamp()
                seen = AlarmEvent(
                    str(event.get("device_id")),
                    str(event.get("parameter")),
                    source,
                    arrived,
                    (raised - source) * 1000,
                )
                with self._lock:
                    self.events.append(seen)
        except (ValueError, TypeError, KeyError):
            return  # never raise in paho's thread

    def snapshot(self) -> tuple[list[AlarmEvent], list[float]]:
        """Copies of the events and transit times so far."""
        with self._lock:
            return list(self.events), list(self.transit_ms)

    def clear(self) -> None:
        """Forget what was seen (the end of a warm-up)."""
        with self._lock:
            self.events.clear()
            self.transit_ms.clear()

    def publish(self, topic: str, payload: str) -> None:
        """Publish one message at QoS 1 (not waited for)."""
        self._client.publish(topic, payload, qos=1)

    def close(self) -> None:
        """Disconnect and stop paho's thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()


def forget_session(port: int, client_id: str) -> None:
    """End a client's persistent session on the broker (clean start, no expiry), so the broker
    stops queueing for a station that is gone and a reference run gets the broker to itself."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def run_json(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run a helper process that prints one JSON object last; its object, or ``error``."""
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"{cmd[2]} timed out after {timeout:.0f} s"}
    return parse_last_json(done.stdout, done.returncode, done.stderr)


def parse_last_json(stdout: bytes, returncode: int, stderr: bytes = b"") -> dict[str, Any]:
    """The last line of a helper's output as JSON, or an ``error`` naming what went wrong."""
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        found = json.loads(lines[-1]) if lines else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        return {"error": f"helper exited {returncode} without its JSON {tail}"}
    return found


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, rounded; None when nothing was measured."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def mean(values: list[float]) -> float | None:
    """Mean, rounded; None when nothing was measured."""
    return round(statistics.fmean(values), 3) if values else None


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den`` rounded, or None when either is missing or the reference is 0."""
    if num is None or not den:
        return None
    return round(num / den, 3)


@dataclass(frozen=True)
class BenchOptions:
    """What ``station bench`` was asked to measure (see :mod:`station.bench.command`)."""

    scenario: str = "normal"
    beds: int = 8
    rate: float = 1.0
    duration: float = 20.0
    flood: bool = False
    historian: bool = False
    repeat: int = 1
    admission: str = "pinned"
    naive: bool = True
    backlog_beds: int = 64
    backlog_seconds: int = 3600
    backlog_timeout: float = 300.0
    warmup: float = 3.0
