"""Issue 16, points 2 and 7, as systemd and an operator see the ``station`` process: it says
READY=1 on the notify socket once the ward is live, pings the watchdog, says STOPPING=1 on
SIGTERM and exits 0; a second station on the same data folder exits 2 naming the first; under
the journal its log lines carry their priority and no file is written, elsewhere the log's
first lines say what runs, in the data folder's ``logs/station.log`` too."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from station import __version__
from station.services.storage.instance_lock import InstanceLock
from tests.waiting import wait_until

STOP_LIMIT_S = 10.0


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TMPDIR=str(tmp_path), **extra)
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        if name not in extra:
            env.pop(name, None)
    return env


def _config(tmp_path: Path, data: Path) -> Path:
    with socket.socket() as s:  # a broker port nobody listens on: the station runs without one
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n[mqtt]\nport = {port}\n')
    return config


def test_demo_under_a_notify_socket_ready_watchdog_stopping(tmp_path: Path) -> None:
    address = f"@station-it-{os.getpid()}-{os.urandom(4).hex()}"
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(b"\0" + address[1:].encode())
    manager.settimeout(0.2)
    received: list[tuple[float, str]] = []
    env = _env(tmp_path, NOTIFY_SOCKET=address, WATCHDOG_USEC="1500000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "station", "--demo"], stderr=subprocess.PIPE, text=True, env=env
    )
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(proc.stderr or ()), daemon=True)
    reader.start()

    def heard(text: str, times: int = 1) -> bool:
        assert proc.poll() is None, f"the station ended early: {stderr[-5:]}"
        with contextlib.suppress(TimeoutError):
            received.append((time.monotonic(), manager.recv(4096).decode()))
        return sum(text in m for _, m in received) >= times

    try:
        wait_until(lambda: heard("READY=1"), 60, "READY=1")
        wait_until(lambda: heard("WATCHDOG=1", 2), 10, "two watchdog pings after READY=1")
        ready_at = next(t for t, m in received if "READY=1" in m)
        assert [m for t, m in received if t < ready_at and "WATCHDOG" in m] == []
        assert any(m.startswith("READY=1\nSTATUS=") for _, m in received)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        assert proc.wait(STOP_LIMIT_S + 5) == 0
        assert time.monotonic() - sent < STOP_LIMIT_S
        while True:  # what was sent before the exit is queued on the socket
            try:
                received.append((time.monotonic(), manager.recv(4096).decode()))
            except TimeoutError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        manager.close()
    reader.join(5)
    assert received[-1][1] == "STOPPING=1\nSTATUS=stopping"
    text = "".join(stderr)
    data = Path(re.findall(r"demo data folder \(audit trail\): (\S+)", text)[-1])
    # The first lines say what runs; the same lines are in the data folder's log file.
    head = text[: text.index("audit signing key id")]
    for wanted in (f"station {__version__} on Python", "data folder: ", "station id: ward-1"):
        assert wanted in head
    assert "audit signing key: from STATION_AUDIT_KEY" in head
    assert os.environ["STATION_AUDIT_KEY"] not in text
    log = data / "logs" / "station.log"
    assert log.stat().st_mode & 0o777 == 0o600
    assert f"station {__version__} on Python" in log.read_text().splitlines()[0]
    assert "signal 15: stopping" in log.read_text()
    records = [
        json.loads(line) for line in (data / "audit" / "audit.jsonl").read_text().splitlines()
    ]
    [stop] = [r for r in records if r["action"] == "station.stop"]
    assert stop["details"]["reason"] == "signal 15"


def test_a_second_station_on_the_same_folder_exits_2_naming_the_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = _config(tmp_path, data)
    first = InstanceLock(data)
    first.acquire()  # as a running station holds it (the lock is per process: flock)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "station", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(tmp_path),
            check=False,
        )
    finally:
        first.release()
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"station: {data} is in use by process {os.getpid()} (a station, or a restore); "
        "one station per data folder: stop the other one first"
    )
    assert sorted(p.name for p in data.iterdir()) == ["station.lock"]  # nothing else opened


def test_under_the_journal_lines_carry_their_priority_and_no_file_is_kept(
    tmp_path: Path,
) -> None:
    """Not the demo, so its window is guarded: its ``--screenshot`` run still ends by itself
    (Qt's quit closes the window without asking for a login)."""
    data = tmp_path / "data"
    config = _config(tmp_path, data)
    err = tmp_path / "stderr"
    with err.open("w") as stream:
        st = os.fstat(stream.fileno())
        env = _env(tmp_path, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        result = subprocess.run(
            [
                *(sys.executable, "-m", "station", "--config", str(config)),
                *("--screenshot", str(tmp_path / "ward.png"), "--screenshot-after", "1"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stream,
            timeout=60,
            env=env,
            check=False,
        )
    lines = err.read_text().splitlines()
    assert result.returncode == 0, lines[-5:]
    ours = [line for line in lines if re.match(r"<\d>", line)]
    assert ours[0].startswith(f"<6>MainThread station: station {__version__} on Python ")
    assert "<6>MainThread station: log: the journal (stderr)" in ours
    assert not re.search(r"\d\d:\d\d:\d\d,\d{3}", "\n".join(ours))  # no time: journald adds it
    assert not (data / "logs").exists()
    assert (tmp_path / "ward.png").exists()
