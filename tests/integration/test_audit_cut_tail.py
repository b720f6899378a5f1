"""A tail cut after an unclean stop is found (hardening, "audit edges", acceptance: "SIGKILL
during writing, tail cut, head rewritten → the station raises its HIGH audit alarm at the next
start and ``station audit verify --checkpoint`` fails").

The audit writer runs in a process of its own, appending records, and is killed with SIGKILL in
the middle of it, past its last checkpoint: the records after that checkpoint are vouched for
only by ``audit.head``. Someone who can write the folder, but has no station key, then cuts the
last records and writes a head naming the new end. The checkpoint the writer published (kept
here as a file, as an auditor keeps the broker's retained one) is still held by the trail, so
only the head's missing signature can tell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.domain.alarms import Priority
from station.services.audit.trail_files import HEAD_FILE
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import running_station, station_settings

REPO = Path(__file__).resolve().parents[2]
CUT = 3

WRITER = """
import os, sys, time
from pathlib import Path
from station.config.private_file import write_private
from station.services.audit.keys import decode_station_key
from station.services.audit.writer import AuditWriter

folder, kept = Path(sys.argv[1]), Path(sys.argv[2])
writer = AuditWriter(
    folder,
    station_key=decode_station_key(os.environ["STATION_AUDIT_KEY"]),
    station="ward-test",
    where="ward-test@writer",
    checkpoint_every=25,
    checkpoint_interval_s=3600.0,
    on_checkpoint=lambda checkpoint: write_private(kept, checkpoint.to_json().encode()),
)
writer.start()
for i in range(30):  # a burst that crosses a checkpoint
    writer.record("alarm.raise", target=f"Bed {i % 4 + 1}", details={"i": i})
i = 30
while True:  # then records one by one, until the kill
    writer.record("alarm.raise", target=f"Bed {i % 4 + 1}", details={"i": i})
    i += 1
    time.sleep(0.005)
"""


def records(path: Path) -> list[dict[str, object]]:
    """The whole lines of the file (a line torn by the kill is left out)."""
    data = path.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


def after_checkpoint(path: Path) -> int:
    found = records(path) if path.exists() else []
    marks = [i for i, r in enumerate(found) if r["action"] == "audit.checkpoint"]
    return len(found) - marks[-1] - 1 if len(marks) >= 2 else 0


def killed_mid_write(folder: Path, kept: Path) -> None:
    """Run the writer in its own process and SIGKILL it while it appends, with at least ten
    records written after its last checkpoint."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder), str(kept)],
        cwd=REPO,
        env=dict(os.environ),
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while after_checkpoint(folder / "audit.jsonl") < 10:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the writer wrote too little in 30 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def cut_and_rewrite_head(folder: Path) -> int:
    """What someone without the key does: cut the last records (and any torn line), write a
    head naming the new end. Returns the new last seq."""
    path = folder / "audit.jsonl"
    data = path.read_bytes()
    lines = data[: data.rfind(b"\n") + 1].splitlines(keepends=True)
    kept = lines[:-CUT]
    path.write_bytes(b"".join(kept))
    last = json.loads(kept[-1])
    assert last["action"] != "audit.checkpoint"
    head = {"seq": last["seq"], "hash": last["hash"], "epoch": last["epoch"]}
    (folder / HEAD_FILE).write_text(json.dumps(head))
    return int(last["seq"])


def test_a_cut_tail_after_a_kill_is_found_by_verify_and_at_the_next_start(
    qtbot: QtBot, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    folder = data / "audit"
    kept = tmp_path / "retained-checkpoint.json"  # the broker's retained copy, as kept
    killed_mid_write(folder, kept)
    intact = subprocess.run(
        [
            sys.executable,
            "-m",
            "station",
            "audit",
            "verify",
            str(folder),
            "--checkpoint",
            str(kept),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if (folder / "audit.jsonl").read_bytes().endswith(b"\n"):  # the kill alone is no fault
        assert intact.returncode == 0, intact.stdout + intact.stderr
    else:  # killed inside a write: a torn line, which is not tampering either
        assert ": torn_tail: " in intact.stdout, intact.stdout
    end = cut_and_rewrite_head(folder)

    verdict = subprocess.run(
        [
            sys.executable,
            "-m",
            "station",
            "audit",
            "verify",
            str(folder),
            "--checkpoint",
            str(kept),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verdict.returncode == 1, verdict.stdout + verdict.stderr
    line = verdict.stdout.strip()
    assert line.startswith(f"FAIL line {end + 1} (seq {end + 1}): unsigned_head: "), line
    assert "audit.head is not signed" in line
    assert "records after the last signed checkpoint" in line

    settings = station_settings(mosquitto, data)
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        qtbot.waitUntil(
            lambda: "audit.head is not signed" in str(station.audit.fault), timeout=10000
        )
        qtbot.waitUntil(
            lambda: any(
                alarm.priority == Priority.HIGH and alarm.message.startswith("Audit trail: ")
                for alarm in station.window.alarm_list.alarms()
            ),
            timeout=10000,
        )
        (alarm,) = [a for a in station.window.alarm_list.alarms() if "Audit trail" in a.message]
        assert "audit.head is not signed" in alarm.message
    found = [r for r in records(folder / "audit.jsonl") if r["action"] == "audit.verify"]
    assert found
    assert found[0]["outcome"] == "failure"
    assert found[0]["details"]["kind"] == "unsigned_head"  # type: ignore[index]
