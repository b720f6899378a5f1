"""The Debian package as hospital IT meets it: built by ``packaging/build-deb.sh`` (what ``make
package`` runs), installed with ``dpkg -i`` on this machine, its ``station`` run, its ``station
doctor`` asked about a real Mosquitto and victoria-metrics (green, then one red line per broken
thing), reinstalled over itself, and purged without a trace.

The package is built once for the module (a minute or so: the Qt wheels are large) and installed
once; the tests run in file order and the last one purges it. This needs root (``dpkg -i``): as
another user, password-less ``sudo -n``; without either the tests fail, saying so. A leftover
install from an earlier run is purged first.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.pki import Pki
from tests.integration.servers.victoria import VictoriaMetrics

ROOT = Path(__file__).resolve().parents[2]
_VERSION = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "station/__init__.py").read_text(), re.M)
assert _VERSION, "no __version__ in station/__init__.py"
VERSION = _VERSION[1]
LIB = Path("/opt/station/lib")
LAUNCHER = Path("/usr/bin/station")
ETC = Path("/etc/station")
DATA = Path("/var/lib/station")
ANCHOR = Path("/var/lib/station-anchor/anchors.jsonl")
CONFIG = ETC / "station.toml"
UNITS = ("station.service", "station-kiosk.service")
CHECKS = (
    "config",
    "version",
    "secrets",
    "audit key",
    "keyring",
    "broker",
    "historian",
    "disk",
    "data folder",
    "audio",
    "clock",
    "instance",
)
MAY_WARN = {"audio", "clock"}  # no sound card, no NTP on a CI machine
LINE = re.compile(r"^(OK  |WARN|FAIL)  ([a-z ]+): (.+)$")
MIB = 1024 * 1024
BUDGET_CAP_MB = 1_000_000  # the config's upper bound for [spool] budget_mb

pytestmark = pytest.mark.timeout(900)  # the module's first test builds and installs the package


def _privileged() -> list[str]:
    """The prefix that runs a command as root here, or a failed test saying what is missing."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if (
        sudo
        and subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode == 0
    ):
        return [sudo, "-n"]
    pytest.fail(
        "the package tests install a .deb with dpkg: run them as root, or as a user with "
        "password-less sudo (sudo -n)"
    )


def _run(
    cmd: Sequence[str | Path],
    *,
    root: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    argv = [*(_privileged() if root else []), *map(str, cmd)]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _ok(cmd: Sequence[str | Path], **kw: object) -> str:
    """``cmd``'s stdout; a failed test with its output when it fails."""
    done = _run(cmd, **kw)  # type: ignore[arg-type]
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def _as_station_user(cmd: Sequence[str | Path]) -> list[str | Path]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "station", "--", *cmd]
    return ["sudo", "-n", "-u", "station", "--", *cmd]


def _installed_status() -> str:
    done = _run(["dpkg-query", "-W", "-f=${db:Status-Status}", "station"])
    return done.stdout.strip() if done.returncode == 0 else "not-installed"


def _purge() -> None:
    if _installed_status() != "not-installed":
        _ok(["dpkg", "--purge", "station"], root=True)


def _stat(path: Path) -> tuple[int, str, str]:
    """(mode bits, owner, group) of ``path``, read as root (the data folder is 0700)."""
    mode, owner, group = _ok(["stat", "-c", "%a %U %G", path], root=True).split()
    return int(mode, 8), owner, group


def _unit_dir() -> str:
    """Where this release's systemd keeps packaged units (as packaging/build-deb.sh decides)."""
    found = _run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"]).stdout.strip()
    if found:
        return found
    listed = _ok(["dpkg", "-L", "systemd"]).splitlines()
    dirs = [str(Path(p).parent) for p in listed if re.search(r"/systemd/system/[^/]+\.service$", p)]
    return dirs[0] if dirs else "/usr/lib/systemd/system"


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package, built from this tree into a folder of the test's own."""
    out = tmp_path_factory.mktemp("dist")
    work = tmp_path_factory.mktemp("package-build")
    env = dict(os.environ, PACKAGE_WORK=str(work), PACKAGE_OUT=str(out))
    _ok(["bash", ROOT / "packaging" / "build-deb.sh"], env=env, timeout=840)
    shutil.rmtree(work)  # the staged tree: hundreds of MB
    arch = _ok(["dpkg", "--print-architecture"]).strip()
    package = out / f"station_{VERSION}_{arch}.deb"
    assert package.is_file(), f"no {package.name} in {sorted(p.name for p in out.iterdir())}"
    return package


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[list[str]]:
    """The package installed on this machine; yields ``dpkg -L station`` as installed."""
    _privileged()
    _purge()  # an earlier run's leftover
    done = _run(["dpkg", "-i", deb], root=True, timeout=300)
    if done.returncode != 0:
        _run(["dpkg", "--purge", "station"], root=True)
        pytest.fail(
            f"dpkg -i {deb.name} failed (missing dependencies? `bash .ci/install-system` "
            f"installs them):\n{done.stdout}\n{done.stderr}"
        )
    try:
        yield _ok(["dpkg", "-L", "station"]).splitlines()
    finally:
        _purge()


def test_the_package_declares_what_it_needs(deb: Path) -> None:
    info = _ok(["dpkg-deb", "--info", deb])
    fields = dict(re.findall(r"^([A-Z][A-Za-z-]+): (.*)$", _ok(["dpkg-deb", "--field", deb]), re.M))
    assert fields["Package"] == "station"
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == _ok(["dpkg", "--print-architecture"]).strip()
    # The Python of the release the package was built on: its minor version and no other.
    py = _ok(["/usr/bin/python3", "-c", "import sys; print(*sys.version_info[:2])"]).split()
    major, minor = int(py[0]), int(py[1])
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert f"python3 (>= {major}.{minor})" in depends
    assert f"python3 (<< {major}.{minor + 1})" in depends
    for lib in (
        "adduser",
        "libegl1",
        "libgl1",
        "libxkbcommon0",
        "libxkbcommon-x11-0",
        "libfontconfig1",
        "libdbus-1-3",
        "libglib2.0-0",
        "fonts-dejavu-core",
        "libpulse0",
    ):
        assert lib in depends, f"Depends lacks {lib}: {fields['Depends']}"
    assert "mosquitto-clients" in fields["Recommends"]
    assert "cage" in fields["Suggests"]
    for script in ("postinst", "prerm", "postrm"):
        assert re.search(rf"^\s+\d+ bytes,\s+\d+ lines\s+\*\s+{script}\s", info, re.M), info

    listing = _ok(["dpkg-deb", "--contents", deb], timeout=300).splitlines()
    entries = {}
    for row in listing:
        perms, owner, _size, _date, _time, name, *_link = row.split(maxsplit=6)
        entries[name.removeprefix(".")] = (perms, owner)
    units = _unit_dir()
    expected = {
        "/usr/bin/station": "-rwxr-xr-x",
        "/opt/station/lib/station/cli/main.py": "-rw-r--r--",
        "/opt/station/lib/station/profiles/adult.toml": "-rw-r--r--",
        "/opt/station/lib/station/profiles/paediatric.toml": "-rw-r--r--",
        "/opt/station/lib/station/profiles/neonatal.toml": "-rw-r--r--",
        "/usr/share/station/examples/station.example.toml": "-rw-r--r--",
        "/usr/share/station/examples/mosquitto-hardened.conf": "-rw-r--r--",
        "/usr/share/station/examples/mosquitto-ward.conf": "-rw-r--r--",
        "/usr/share/station/examples/mosquitto-acl.example": "-rw-r--r--",
        "/usr/share/applications/station.desktop": "-rw-r--r--",
        "/usr/share/icons/hicolor/scalable/apps/station.svg": "-rw-r--r--",
        "/usr/share/doc/station/copyright": "-rw-r--r--",
        f"{units}/station.service": "-rw-r--r--",
        f"{units}/station-kiosk.service": "-rw-r--r--",
    }
    for path, perms in expected.items():
        assert path in entries, f"{path} is not in the package"
        assert entries[path][0] == perms, f"{path}: {entries[path][0]}, not {perms}"
    assert {owner for _perms, owner in entries.values()} == {"root/root"}
    compiled = [p for p in entries if "__pycache__" in p or p.endswith(".pyc")]
    assert not compiled, f"compiled files in the package: {compiled[:5]}"
    made_by_postinst = [p for p in entries if p.startswith(("/etc/", "/var/"))]
    assert not made_by_postinst, f"postinst makes these, dpkg must not own them: {made_by_postinst}"
    assert not [p for p in entries if p.startswith("/opt/station/lib/bin/")]


def test_install_makes_the_user_folders_and_config(installed: list[str]) -> None:
    assert str(LAUNCHER) in installed
    user = _ok(["getent", "passwd", "station"]).strip().split(":")
    assert user[5] == str(DATA), user
    assert user[6] in {"/usr/sbin/nologin", "/bin/false"}, user
    assert int(user[2]) < 1000, f"not a system user: {user}"
    assert _ok(["getent", "group", "station"]).strip()

    assert _stat(DATA) == (0o700, "station", "station")
    assert _stat(ETC) == (0o750, "root", "station")
    assert _stat(CONFIG) == (0o640, "root", "station")
    config = _ok(["cat", CONFIG], root=True)
    assert re.search(r'^data_dir = "/var/lib/station"$', config, re.M), config[:600]
    assert _run(["test", "-e", ETC / "credentials.env"], root=True).returncode != 0
    # The audit anchor log, outside the data folder, the station's own (append-only where the
    # file system can: chattr +a).
    assert _stat(ANCHOR.parent) == (0o700, "station", "station")
    assert _stat(ANCHOR) == (0o600, "station", "station")

    # Compiled in postinst, into the package's own folder only.
    compiled = _ok(["find", LIB, "-name", "*.pyc"]).split()
    assert any(p.startswith(f"{LIB}/station/") for p in compiled), "postinst compiled nothing"

    assert LAUNCHER.read_text().startswith("#!/usr/bin/python3 ")
    assert _ok([LAUNCHER, "--version"]).strip() == f"station {VERSION}"
    assert _ok(_as_station_user([LAUNCHER, "--version"]), root=True).strip() == (
        f"station {VERSION}"
    )
    # The alarm profiles are package data: the installed code finds them beside itself.
    profiles = _ok(
        [
            "/usr/bin/python3",
            "-I",
            "-B",
            "-c",
            f"import sys; sys.path.insert(0, {str(LIB)!r}); "
            "from station.domain.profiles import PROFILE_DIR, available_profiles, load_profile; "
            "print(PROFILE_DIR); print(*available_profiles()); "
            "print(sorted(load_profile('neonatal')))",
        ]
    ).splitlines()
    assert profiles[0] == f"{LIB}/station/profiles"
    assert set(profiles[1].split()) >= {"adult", "paediatric", "neonatal"}
    assert "oxygen" in profiles[2]

    # The station's user can read the shipped configuration and use its data folder.
    doctor = _as_station_user([LAUNCHER, "--config", CONFIG, "doctor", "--json"])
    report = json.loads(_run(doctor, root=True, env=_clean_env(), timeout=180).stdout)
    by_name = {c["check"]: c for c in report["checks"]}
    assert by_name["config"]["status"] == "OK", by_name["config"]
    assert by_name["data folder"]["status"] == "OK", by_name["data folder"]

    # The installed service unit names installed files only (the kiosk's cage is a Suggests).
    unit = Path(_unit_dir()) / "station.service"
    verify = _run(["systemd-analyze", "verify", "--man=no", unit], timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert not (verify.stdout + verify.stderr).strip(), verify.stdout + verify.stderr


def test_reinstalling_keeps_the_admins_config(installed: list[str], deb: Path) -> None:
    marker = "# edited by the admin of the ward"
    _ok(["sh", "-c", f"echo {shlex.quote(marker)} >> {CONFIG}"], root=True)
    _ok(["dpkg", "-i", deb], root=True, timeout=300)
    assert marker in _ok(["cat", CONFIG], root=True)
    assert _stat(CONFIG) == (0o640, "root", "station")
    assert _stat(DATA) == (0o700, "station", "station")
    assert _ok(["find", LIB / "station", "-name", "*.pyc"]).split(), "not compiled again"
    assert _ok([LAUNCHER, "--version"]).strip() == f"station {VERSION}"


def _clean_env(**secrets: str) -> dict[str, str]:
    """This process's environment without the suite's station secrets, plus ``secrets``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATION_")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env | secrets


def _secrets(mqtt_password: str) -> dict[str, str]:
    audit = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return {
        "STATION_MQTT_PASSWORD": mqtt_password,
        "STATION_INFLUX_TOKEN": "doctor-test-token",
        "STATION_PATIENT_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
        "STATION_AUDIT_KEY": base64.b64encode(audit).decode("ascii"),
    }


def _config(
    path: Path, broker: Mosquitto, victoria: VictoriaMetrics, ca_file: Path, budget_mb: float
) -> Path:
    data = path.parent / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    path.write_text(
        "[station]\n"
        'id = "package-test"\n'
        f'data_dir = "{data}"\n'
        "[mqtt]\n"
        f'host = "{broker.host}"\n'
        f"port = {broker.port}\n"
        "tls = true\n"
        f'ca_file = "{ca_file}"\n'
        'username = "station"\n'
        "[influx]\n"
        "enabled = true\n"
        f'url = "{victoria.url}"\n'
        'org = "ward"\n'
        'bucket = "vitals"\n'
        "[spool]\n"
        f"budget_mb = {budget_mb}\n"
    )
    return path


def _doctor(config: Path, env: dict[str, str]) -> tuple[int, dict[str, tuple[str, str]], str]:
    """The installed ``station doctor``: exit code, {check: (status, detail)}, its output."""
    done = _run([LAUNCHER, "--config", config, "doctor"], env=env, timeout=180)
    out = done.stdout + done.stderr
    checks: dict[str, tuple[str, str]] = {}
    for line in done.stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a doctor line: {line!r}\n{out}"
        checks[match[2]] = (match[1].strip(), match[3])
    assert tuple(checks) == CHECKS, out
    return done.returncode, checks, done.stdout


def test_doctor_of_the_installed_package_is_green(
    installed: list[str], mosquitto: Mosquitto, victoria: VictoriaMetrics, pki: Pki, tmp_path: Path
) -> None:
    config = _config(tmp_path / "station.toml", mosquitto, victoria, pki.ca_cert, 64)
    env = _clean_env(**_secrets(mosquitto.passwords["station"]))
    code, checks, out = _doctor(config, env)
    print(out)  # the report, for whoever reads the test log
    red = {name: c for name, c in checks.items() if c[0] == "FAIL"}
    warned = {name: c for name, c in checks.items() if c[0] == "WARN"}
    assert not red, out
    assert set(warned) <= MAY_WARN, out
    assert code == 0, out
    for name, value in env.items():
        if name.startswith("STATION_"):
            assert value not in out, f"{name} reached the report"

    done = _run([LAUNCHER, "--config", config, "doctor", "--json"], env=env, timeout=180)
    report = json.loads(done.stdout)
    assert report["ok"] is True, done.stdout
    assert [c["check"] for c in report["checks"]] == list(CHECKS)
    assert done.returncode == 0


@pytest.mark.parametrize("broken", ["wrong CA", "wrong password", "disk budget"])
def test_doctor_names_each_broken_thing(
    broken: str,
    installed: list[str],
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    pki: Pki,
    other_pki: Pki,
    tmp_path: Path,
) -> None:
    ca, password, budget = pki.ca_cert, mosquitto.passwords["station"], 64.0
    expected = {"wrong CA": "broker", "wrong password": "broker", "disk budget": "disk"}[broken]
    if broken == "wrong CA":
        ca = other_pki.ca_cert
    elif broken == "wrong password":
        password = "not-" + password
    else:
        usage = os.statvfs(tmp_path)
        free_mb = usage.f_bavail * usage.f_frsize / MIB
        budget = float(min(BUDGET_CAP_MB, int(free_mb) + 10 * 1024))
        assert budget > free_mb, (
            f"{free_mb:.0f} MiB free in {tmp_path}: more than [spool] budget_mb may say, so no "
            "budget can exceed it on this machine"
        )
    config = _config(tmp_path / "station.toml", mosquitto, victoria, ca, budget)
    code, checks, out = _doctor(config, _clean_env(**_secrets(password)))
    red = {name for name, (status, _detail) in checks.items() if status == "FAIL"}
    assert red == {expected}, out
    assert code == 1, out
    if expected == "broker":
        assert password not in out


def _unit_settings(path: Path) -> dict[str, list[str]]:
    """Each ``Key=value`` of a unit file, every value of a repeated key in order."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


# The kiosk's main process is cage, as systemd starts it: its pid in WATCHDOG_PID, and on stdout
# for the test (the ExecStop lines name it as $MAINPID); its output goes to $KIOSK_LOG.
KIOSK_MAIN = 'echo "$$"; WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@" >>"$KIOSK_LOG" 2>&1'
KIOSK_WATCHDOG_USEC = 3_000_000  # pings every second or so, rather than every 10 s
KIOSK_WAIT_S = 60.0


def test_the_kiosk_unit_runs_the_station_in_cage(installed: list[str]) -> None:
    """The installed kiosk unit's ExecStart and ExecStop, run as systemd would (as the station
    user, NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID of the main process, the unit's
    Environment=), on a headless wlroots backend: the station comes up on Wayland inside cage,
    its READY=1 and WATCHDOG=1 reach the notify socket from cage's child, and the ExecStop lines
    stop the station in order (STOPPING=1) and let cage end by itself."""
    unit = _unit_settings(Path(_unit_dir()) / "station-kiosk.service")
    base = Path(tempfile.mkdtemp(prefix="station-kiosk-"))
    base.chmod(0o755)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    proc: subprocess.Popen[str] | None = None
    main_pid = 0
    log = base / "run" / "kiosk.log"
    try:
        for folder in ("run", "data"):
            _ok(
                ["install", "-d", "-m", "0700", "-o", "station", "-g", "station", base / folder],
                root=True,
            )
        config = base / "station.toml"
        config.write_text(f'[station]\nid = "kiosk-test"\ndata_dir = "{base / "data"}"\n')
        config.chmod(0o644)
        sock.bind(str(base / "notify"))
        (base / "notify").chmod(0o666)
        sock.settimeout(0.5)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "NOTIFY_SOCKET": str(base / "notify"),
            "WATCHDOG_USEC": str(KIOSK_WATCHDOG_USEC),
            "XDG_RUNTIME_DIR": str(base / "run"),  # pam_systemd's /run/user/<uid> on a seat
            "WLR_BACKENDS": "headless",
            "WLR_RENDERER": "pixman",
            "WLR_LIBINPUT_NO_DEVICES": "1",
            "KIOSK_LOG": str(log),
            **dict(e.split("=", 1) for e in unit["Environment"]),
            **{k: v for k, v in _secrets("unused").items() if k != "STATION_MQTT_PASSWORD"},
        }
        start = [str(config) if a == str(CONFIG) else a for a in shlex.split(unit["ExecStart"][0])]
        assert str(config) in start, start
        cmd = [*_as_station_user(["env", "-i", *(f"{k}={v}" for k, v in env.items())])]
        proc = subprocess.Popen(
            [*map(str, cmd), "sh", "-c", KIOSK_MAIN, "kiosk", *start],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        main_pid = int(proc.stdout.readline())

        heard: list[str] = []
        deadline = time.monotonic() + KIOSK_WAIT_S
        while time.monotonic() < deadline and not (
            any(m.startswith("READY=1") for m in heard) and heard.count("WATCHDOG=1") >= 2
        ):
            assert proc.poll() is None, f"cage exited {proc.returncode}:\n{_tail(log)}"
            with contextlib.suppress(TimeoutError):
                heard.append(sock.recv(4096).decode())
        assert any(m.startswith("READY=1") for m in heard), f"{heard}\n{_tail(log)}"
        assert heard.count("WATCHDOG=1") >= 2, f"{heard}\n{_tail(log)}"

        for line in unit["ExecStop"]:
            stop = [
                a.replace("${MAINPID}", str(main_pid)).replace("$MAINPID", str(main_pid))
                for a in shlex.split(line.lstrip("-"))
            ]
            _run(_as_station_user(stop), timeout=60)
        assert proc.wait(timeout=10) == 0, _tail(log)
        with contextlib.suppress(TimeoutError):
            while True:
                heard.append(sock.recv(4096).decode())
        assert any(m.startswith("STOPPING=1") for m in heard), f"{heard}\n{_tail(log)}"
        assert "signal 15: stopping" in _ok(["cat", log], root=True)
    finally:
        if proc is not None and proc.poll() is None:
            for pid in _ok(["pgrep", "--parent", str(main_pid)]).split() if main_pid else []:
                _run(["kill", "-KILL", pid], root=True)
            if main_pid:
                _run(["kill", "-KILL", str(main_pid)], root=True)
            proc.wait(timeout=10)
        sock.close()
        _run(["rm", "-rf", base], root=True)


def _tail(log: Path) -> str:
    return "\n".join(_run(["cat", log], root=True).stdout.splitlines()[-40:])


def test_purge_leaves_nothing_behind(installed: list[str]) -> None:
    _ok(["dpkg", "--purge", "station"], root=True, timeout=300)
    assert _installed_status() == "not-installed"
    left: list[str] = []
    for name in installed:
        path = Path(name)
        if not os.path.lexists(path):
            continue
        if not path.is_dir():  # (/lib is a link to usr/lib on a merged-/usr system)
            left.append(name)  # a file of the package
        elif not any(path.iterdir()) and _run(["dpkg-query", "-S", name]).returncode != 0:
            left.append(name)  # an empty folder nobody else owns: it was ours
    assert not left, f"left after purge: {left[:20]}"
    for gone in (ETC, DATA, ANCHOR.parent, Path("/opt/station"), Path("/var/log/station")):
        assert not os.path.lexists(gone), f"{gone} is left after purge"
    assert _run(["getent", "passwd", "station"]).stdout == ""
    assert _run(["getent", "group", "station"]).stdout == ""
