"""Fast publishers for ``station bench``: a flooding device and a backlog via ``mosquitto_pub``.

Why a separate process and C publishers: the bench measures the station in its own process, so
whatever feeds the broker must not share its GIL or its cores' time more than it must. Python
(paho) publishes a few thousand messages a second at most; ``mosquitto_pub -l`` sends one message
per input line at QoS 1 as fast as the broker acknowledges (~20k msg/s here). This process only
writes the line files; the C processes do the publishing.

``mosquitto_pub -l`` at QoS 1 stops after 65,535 messages (its message id wraps, PLATFORM-NOTES),
so no process is given more than :data:`MAX_LINES` lines: a long flood is a chain of processes.

Run as ``python -m station.bench.publish flood|backlog ...``; prints one JSON object with what was
published (read by the bench, which checks its own inputs with it).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from station.domain.timefmt import iso_ms

MAX_LINES = 60_000
FLOOD_CHUNK = 20_000  # ~1 s of flood per process: fresh device timestamps without long waits
FLOOD_STEP_S = 1e-5  # device time between flood messages: never ahead of the real clock
BACKLOG_PARALLEL = 2  # publisher processes at once (2 cores on this machine)


def vitals_line(device: str, at: float, seq: int, heartrate: int) -> str:
    """One CONTRACT §1 payload as a line, the shape the simulator publishes."""
    return (
        f'{{"device_id":"{device}","timestamp":"{iso_ms(at)}","heartrate":{heartrate},'
        f'"bloodpressure":{{"systolic":{118 + seq % 5},"diastolic":{76 + seq % 3}}},'
        f'"temperature":36.{6 + seq % 3},"oxygen":{97 + seq % 2},"alert":"none",'
        f'"battery":90.0,"seq":{seq}}}'
    )


def topic(device: str) -> str:
    """The per-device vitals topic (CONTRACT §1)."""
    return f"healthcare/devices/{device}/vitals"


def _pub_cmd(port: int, client_id: str, device: str) -> list[str]:
    return [
        *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-V", "mqttv5"),
        *("-i", client_id, "-t", topic(device), "-l"),
    ]


class _Stop:
    """Set by SIGTERM/SIGINT: the bench stops the flood when its measurement ends."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.current: subprocess.Popen[bytes] | None = None

    def __call__(self, _signum: int, _frame: object) -> None:
        self.event.set()
        if self.current is not None and self.current.poll() is None:
            self.current.terminate()


def flood(port: int, device: str, duration: float, work: Path) -> dict[str, object]:
    """Publish ``device``'s messages as fast as the broker takes them for ``duration`` seconds,
    a chain of ``mosquitto_pub -l`` processes, each with fresh device timestamps."""
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    seq, sent, processes, cut = 0, 0, 0, 0
    started = time.monotonic()
    paths = (work / "flood-a.lines", work / "flood-b.lines")
    _flood_file(paths[0], device, seq)
    while not stop.event.is_set() and time.monotonic() - started < duration:
        with paths[processes % 2].open("rb") as src:
            stop.current = subprocess.Popen(
                _pub_cmd(port, f"bench-flood-{processes}", device),
                stdin=src,
                stderr=subprocess.DEVNULL,
            )
            # The next file is written while this one is published: no pause in the flood.
            _flood_file(paths[(processes + 1) % 2], device, seq + FLOOD_CHUNK)
            rc = stop.current.wait()
        processes += 1
        seq += FLOOD_CHUNK
        if rc == 0:
            sent += FLOOD_CHUNK
        else:
            cut += 1  # stopped mid-file: how many of its lines went out is unknown
    return {
        "device": device,
        "published_at_least": sent,
        "processes": processes,
        "cut_short": cut,
        "seconds": round(time.monotonic() - started, 2),
    }


def _flood_file(path: Path, device: str, seq: int) -> None:
    """:data:`FLOOD_CHUNK` messages of ``device`` after ``seq``, stamped from now on."""
    base = time.time()
    path.write_text(
        "".join(
            vitals_line(device, base + i * FLOOD_STEP_S, seq + i + 1, 70 + (seq + i) % 20) + "\n"
            for i in range(FLOOD_CHUNK)
        ),
        encoding="utf-8",
    )


def _backlog_files(beds: int, seconds: int, now: float, work: Path) -> Iterator[tuple[str, Path]]:
    """Per bed, its 1 Hz readings of the last ``seconds`` seconds, in files of ≤ MAX_LINES."""
    start = now - seconds
    for bed in range(1, beds + 1):
        device = f"sim-bed{bed:02d}"
        for first in range(0, seconds, MAX_LINES):
            path = work / f"{device}-{first}.lines"
            n = range(first, min(seconds, first + MAX_LINES))
            path.write_text(
                "".join(vitals_line(device, start + k, k + 1, 70 + k % 15) + "\n" for k in n),
                encoding="utf-8",
            )
            yield device, path


def backlog(port: int, beds: int, seconds: int, work: Path) -> dict[str, object]:
    """Publish ``beds`` × ``seconds`` messages at past device times (1 Hz, ending now), at most
    :data:`BACKLOG_PARALLEL` publisher processes at a time. Each bed's ``seq`` runs 1…seconds."""
    started = time.monotonic()
    running: list[tuple[subprocess.Popen[bytes], int]] = []
    sent, failed = 0, 0

    def reap(block: bool) -> None:
        nonlocal sent, failed
        while running and (block or running[0][0].poll() is not None):
            proc, lines = running.pop(0)
            if proc.wait() == 0:
                sent += lines
            else:
                failed += 1

    for index, (device, path) in enumerate(_backlog_files(beds, seconds, time.time(), work)):
        while len(running) >= BACKLOG_PARALLEL:
            running[0][0].wait()
            reap(block=False)
        with path.open("rb") as src:
            proc = subprocess.Popen(
                _pub_cmd(port, f"bench-backlog-{index}", device),
                stdin=src,
                stderr=subprocess.DEVNULL,
            )
        running.append((proc, sum(1 for _ in path.open("rb"))))
    reap(block=True)
    took = time.monotonic() - started
    return {
        "published": sent,
        "failed_processes": failed,
        "seconds": round(took, 2),
        "msgs_per_s": round(sent / took, 1) if took > 0 else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m station.bench.publish``: prints what it published as one JSON object."""
    p = argparse.ArgumentParser(prog="station.bench.publish", description=__doc__)
    p.add_argument("mode", choices=["flood", "backlog"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--device", default="flood-01", help="flood: the flooding device")
    p.add_argument("--duration", type=float, default=10.0, help="flood: seconds")
    p.add_argument("--beds", type=int, default=64, help="backlog: devices sim-bed01…")
    p.add_argument("--seconds", type=int, default=3600, help="backlog: seconds of 1 Hz data")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="station-bench-pub-") as tmp:
        if args.mode == "flood":
            result = flood(args.port, args.device, args.duration, Path(tmp))
        else:
            result = backlog(args.port, args.beds, args.seconds, Path(tmp))
    print(json.dumps(result), flush=True)  # the bench reads this line
    return 0


if __name__ == "__main__":
    sys.exit(main())
