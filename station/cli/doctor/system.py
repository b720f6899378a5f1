"""The ``version``, ``audio`` and ``clock`` checks: what this machine gives the station.

Qt is asked about audio outputs in a child process, never in the doctor's own: a sound server
that hangs cannot outlive the timeout there, Qt's chatter on stderr stays out of the report, and
the doctor imports no Qt (its unit tests must not).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from station import __version__
from station.cli.doctor.report import Finding, fail, ok, warn

COMMAND_TIMEOUT_S = 3.0
AUDIO_TIMEOUT_S = 15.0
QT_DIST = "PySide6-Essentials"
CRASHING_QT = (6, 12)
"""On Python 3.11, PySide6 from 6.12 aborts the interpreter after a few thousand Qt calls
("Fatal Python error: none_dealloc"); pyproject.toml pins 6.11.3 there."""
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")

AUDIO_CHILD = """
import json, sys
try:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtMultimedia import QMediaDevices
except Exception as exc:  # ImportError, or OSError from a missing libpulse0
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
app = QCoreApplication(sys.argv[:1])
outputs = [device.description() for device in QMediaDevices.audioOutputs()]
chosen = QMediaDevices.defaultAudioOutput()
default = "" if chosen.isNull() else chosen.description()
print(json.dumps({"outputs": outputs, "default": default}))
"""
NO_SOUND = "the station will show NO ALARM SOUND and raise a technical alarm"


def check_version() -> Finding:
    """The station's, Python's and Qt's versions; a Qt known to crash on this Python fails."""
    python = platform.python_version()
    try:
        qt = metadata.version(QT_DIST)
    except metadata.PackageNotFoundError:
        return fail(f"{QT_DIST} is not installed: install the station package again (pip)")
    said = f"station {__version__}, Python {python} ({sys.executable}), PySide6 {qt}"
    numbers = tuple(int(part) for part in qt.split(".")[:2] if part.isdigit())
    if sys.version_info < (3, 12) and numbers >= CRASHING_QT:
        return fail(
            f"{said}: PySide6 {qt} on Python 3.11 aborts the station after a few thousand Qt "
            f"calls; install {QT_DIST}==6.11.3 (as pyproject.toml pins it)"
        )
    return ok(said)


def ask_qt_for_audio() -> dict[str, object]:
    """What QtMultimedia sees, from a child process: ``{"outputs": [...], "default": ...}``, or
    ``{"error": why}``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATION_")}  # no secrets
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        done = subprocess.run(
            [sys.executable, "-c", AUDIO_CHILD],
            capture_output=True,
            text=True,
            timeout=AUDIO_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"Qt did not answer within {AUDIO_TIMEOUT_S:g} s (a hung sound server?)"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return {"error": f"Qt's audio query failed: {tail}"}
    answer: dict[str, object] = json.loads(lines[-1])
    return answer


def check_audio() -> Finding:
    """Whether Qt sees an audio output, as the station's alarm sound decides it."""
    answer = ask_qt_for_audio()
    if "error" in answer:
        return warn(
            f"QtMultimedia cannot be used ({answer['error']}): {NO_SOUND}; install PySide6-Addons "
            "and Debian's libpulse0"
        )
    outputs = answer.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        return warn(
            f"Qt sees no audio output: {NO_SOUND}; connect speakers and check that the "
            "station's user reaches the sound server (pactl info)"
        )
    default = answer.get("default") or "none"
    return ok(f"{len(outputs)} audio output(s); default: {default}")


def _run(command: list[str]) -> str | None:
    """``command``'s stdout, or None when it is missing, fails or hangs."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def clock_synchronised() -> tuple[bool | None, str]:
    """(synchronised, according to what); None when nothing here can tell."""
    said = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if said is not None and said.strip() in ("yes", "no"):
        return said.strip() == "yes", "timedatectl"
    if TIMESYNC_FLAG.exists():
        return True, "systemd-timesyncd"
    tracking = _run(["chronyc", "tracking"])
    if tracking is not None:
        for line in tracking.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "Leap status":
                return value.strip() != "Not synchronised", "chronyc"
    return None, ""


def check_clock() -> Finding:
    """Synchronised, per timedatectl, systemd-timesyncd or chrony; unknown or not is a warning:
    alarm times, the audit trail and the historian all take this clock."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    synced, source = clock_synchronised()
    why = "alarm times, audit records and the historian's points all take this clock"
    if synced:
        return ok(f"synchronised ({source}); now {now}")
    if synced is None:
        return warn(
            f"cannot tell whether the clock is synchronised (no answer from timedatectl, "
            f"systemd-timesyncd or chronyc); now {now}: {why}; enable NTP (timedatectl "
            "set-ntp true, or install chrony) and check again"
        )
    return warn(
        f"the clock is NOT synchronised ({source}); now {now}: {why}; check NTP "
        "(timedatectl timesync-status, or chronyc sources)"
    )
