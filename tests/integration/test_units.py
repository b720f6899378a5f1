"""The systemd units of the package (``packaging/systemd``): ``systemd-analyze verify`` accepts
them without a word, and they say what the station's service needs (notify and watchdog, restart
for ever, the station user, the secrets file, the hardening).

``systemd-analyze verify`` works without systemd running as PID 1, but it also checks that every
program a unit runs exists. The station and cage need not be installed here, so the units are
verified under ``--root`` in a tree of the test's own: this machine's system units (the targets
and sockets they name) and an executable stand-in at each path the units run. The helpers the
kiosk unit runs besides cage (pkill, timeout, tail: the package's Depends) must exist here for
real. Verify only prints what it objects to, with exit code 0 for an unknown key, so its output
must be empty; a deliberately broken unit shows that it is read at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT_SOURCES = ROOT / "packaging" / "systemd"
UNITS = ("station.service", "station-kiosk.service")
HOST_UNIT_DIRS = (Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))
FROM_THE_PACKAGE = {"/usr/bin/station", "/usr/bin/cage"}  # the package's, and its Suggests
EXEC = re.compile(r"^Exec\w+=[-@:+!]*(\S+)", re.M)
HARDENING = {
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "UMask": "0077",
    "StateDirectory": "station",
    "StateDirectoryMode": "0700",
}


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze not found: `bash .ci/install-system` installs systemd")
    return found


def _settings(unit: str) -> dict[str, list[str]]:
    """Each ``Key=value`` of a unit file, every value of a repeated key in order."""
    out: dict[str, list[str]] = {}
    for line in (UNIT_SOURCES / unit).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_systemd_analyze(), "verify", "--man=no", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def verify_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with this machine's system units, the package's units, and a stand-in program at
    each path they run."""
    root = tmp_path_factory.mktemp("systemd-root")
    copied: set[Path] = set()
    for folder in HOST_UNIT_DIRS:
        real = folder.resolve()
        if real.is_dir() and real not in copied:
            copied.add(real)
            shutil.copytree(real, root / folder.relative_to("/"), symlinks=True)
    assert copied, f"no system units in {HOST_UNIT_DIRS}: is systemd installed?"
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in UNITS:
        text = (UNIT_SOURCES / unit).read_text()
        (units / unit).write_text(text)
        for program in EXEC.findall(text):
            stand_in = root / program.lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("#!/bin/sh\nexit 0\n")
            stand_in.chmod(0o755)
    return root


def test_systemd_analyze_verify_accepts_the_units(verify_root: Path) -> None:
    done = _verify(verify_root, *UNITS)
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, said
    assert not said, f"systemd-analyze verify objects:\n{said}"


def test_verify_here_reads_the_units_and_objects_to_a_broken_one(verify_root: Path) -> None:
    """The check above is not vacuous: under the same root an unknown key and a missing program
    are reported."""
    units = verify_root / "etc" / "systemd" / "system"
    broken = (UNIT_SOURCES / "station.service").read_text()
    broken = broken.replace("WatchdogSec=30", "WatchdogSecs=30")
    broken = broken.replace("ExecStart=/usr/bin/station", "ExecStart=/usr/bin/no-such-station")
    (units / "broken.service").write_text(broken)
    try:
        done = _verify(verify_root, "broken.service")
        said = done.stdout + done.stderr
    finally:
        (units / "broken.service").unlink()
    assert "WatchdogSecs" in said, said
    assert "/usr/bin/no-such-station" in said, said


def test_the_programs_the_units_run_exist_here() -> None:
    for unit in UNITS:
        for program in EXEC.findall((UNIT_SOURCES / unit).read_text()):
            if program in FROM_THE_PACKAGE:
                continue
            assert os.access(program, os.X_OK), f"{unit} runs {program}, missing here"


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_is_a_watched_hardened_station_service(unit: str) -> None:
    s = _settings(unit)
    one = {key: values[-1] for key, values in s.items()}
    assert one["Type"] == "notify"
    assert one["WatchdogSec"] == "30"
    assert one["Restart"] == "always"
    assert one["RestartSec"] == "2"
    assert one["StartLimitIntervalSec"] == "0", "a monitoring station never stops restarting"
    assert one["User"] == one["Group"] == "station"
    assert s["EnvironmentFile"] == ["-/etc/station/credentials.env"]
    for key, value in HARDENING.items():
        assert one.get(key) == value, f"{unit}: {key}={one.get(key)}, not {value}"
    assert "/var/lib/station" in one["ReadWritePaths"].split()
    start = one["ExecStart"].split()
    assert start[start.index("/usr/bin/station") :][1:3] == [
        "--config",
        "/etc/station/station.toml",
    ]


def test_the_headless_and_the_kiosk_unit_differ_where_they_must() -> None:
    headless, kiosk = _settings("station.service"), _settings("station-kiosk.service")
    assert headless["NotifyAccess"] == ["main"]
    assert "QT_QPA_PLATFORM=offscreen" in headless["Environment"]
    assert headless["ExecStart"] == ["/usr/bin/station --config /etc/station/station.toml"]
    assert "station-kiosk.service" in headless["Conflicts"][0].split()

    # The station is cage's child, so its notifications come from a process other than the main.
    assert kiosk["NotifyAccess"] == ["all"]
    assert kiosk["ExecStart"][0].startswith("/usr/bin/cage ")
    # systemd names cage in WATCHDOG_PID; the station pings only for its own pid or none.
    assert kiosk["ExecStart"][0].endswith(
        "-- /usr/bin/env -u WATCHDOG_PID "
        "/usr/bin/station --config /etc/station/station.toml --fullscreen"
    )
    assert kiosk["PAMName"] == ["login"]
    assert kiosk["TTYPath"] == ["/dev/tty1"]
    assert "getty@tty1.service" in kiosk["Conflicts"][0].split()
    assert "station.service" in kiosk["Conflicts"][0].split()
    assert "QT_QPA_PLATFORM=wayland" in kiosk["Environment"]
    # systemd replaces $MAINPID only as a word of its own; inside one it takes ${MAINPID}.
    for line in kiosk["ExecStop"]:
        assert not re.search(r"\S\$MAINPID|\$MAINPID\S", line), line
