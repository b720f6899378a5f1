"""``station bench``: measure this machine with the real station, window included.

The station runs in this process exactly as on the ward (window offscreen, every thread up); the
simulated ward runs as a separate ``station simulate`` process so it does not share the GIL with
what is measured. The broker is a private Mosquitto on a free loopback port when it is installed
(the embedded demo broker tops out near 3k msg/s, PLATFORM-NOTES), else the embedded one.

Prints one JSON object: ingest rate, GUI thread CPU share, render time per frame, process CPU,
peak memory. Numbers are reported, never asserted (performance is not a unit test).
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
from pathlib import Path

from station.settings import Settings, from_mapping


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
        "max_inflight_messages 0",
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


def _settings(beds: int, port: int, protocol: str, data_dir: Path) -> Settings:
    return from_mapping(
        {
            "station": {"id": "bench", "name": "Bench", "data_dir": str(data_dir)},
            "mqtt": {"host": "127.0.0.1", "port": port, "protocol": protocol},
            "ward": {"beds": beds},
            "ui": {"columns": 8 if beds > 16 else 4},
        },
        source="bench",
    )


def run_bench(beds: int, rate: float, duration: float, flood: bool) -> int:
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
    app = QApplication.instance() or QApplication([])
    station = Station(_settings(beds, port, protocol, work / "data"), user="bench")
    frame_ms = station.window.frame_ms
    station.start()
    sim_rate = 100_000.0 / beds if flood else rate
    sim = subprocess.Popen(
        [
            *(sys.executable, "-m", "station", "--log-level", "WARNING", "simulate"),
            *("--port", str(port), "--beds", str(beds), "--rate", str(sim_rate)),
            *("--duration", str(duration + 5), "--protocol", protocol, "--scenario", "normal"),
        ],
    )
    # Warm up 3 s (connect, first paint), then measure. exit(), not quit(): Qt 6's quit() first
    # closes every window, which would stop the render timer being measured.
    QTimer.singleShot(3000, lambda: app.exit(0))
    app.exec()
    frame_ms.clear()
    accepted0 = station.core.accepted
    wall0, gui0, cpu0 = time.monotonic(), time.thread_time(), time.process_time()
    QTimer.singleShot(round(duration * 1000), lambda: app.exit(0))
    app.exec()
    wall = time.monotonic() - wall0
    gui = time.thread_time() - gui0
    cpu = time.process_time() - cpu0
    accepted = station.core.accepted - accepted0
    sim.terminate()
    sim.wait(10)
    station.stop()
    if embedded is not None:
        embedded.stop()
    stop_broker()
    frames = sorted(frame_ms) or [float("nan")]
    result = {
        "broker": broker,
        "beds": beds,
        "offered_rate_hz": "flood" if flood else beds * rate,
        "duration_s": round(wall, 2),
        "ingest_msgs_per_s": round(accepted / wall, 1),
        "gui_thread_cpu_share": round(gui / wall, 4),
        "process_cpu_share_of_one_core": round(cpu / wall, 4),
        "render_ms_mean": round(statistics.fmean(frames), 3),
        "render_ms_p95": round(frames[int(0.95 * (len(frames) - 1))], 3),
        "frames": len(frames) if frame_ms else 0,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)
    return 0
