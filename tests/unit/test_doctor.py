"""Unit tests of ``station doctor`` (:mod:`station.cli.doctor`), without Qt, a broker or a
historian: the report's format and exit code, every check in its order, a check that raises or
hangs, secrets that are named but never printed, and what each check says about the machine.

The keyring is decided here (this module imports ``use_memory_keyring``): none at all, as on a
server without one, unless a test installs the in-memory one. Qt's answer about audio outputs
comes from a stand-in: the real one runs in a child process (tests/integration covers it).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.doctor import historian, secrets_checks, system
from station.cli.doctor.context import Context
from station.cli.doctor.report import (
    Finding,
    Result,
    Scrubber,
    Status,
    exit_code,
    fail,
    ok,
    render_json,
    render_text,
)
from station.cli.doctor.runner import CHECKS, NAMES, Check, diagnose, guarded
from station.cli.doctor.secrets_checks import check_audit_key, check_secrets
from station.cli.doctor.storage import check_data_folder, check_disk, check_instance
from station.cli.main import main
from station.config import credentials
from station.config.credentials import use_memory_keyring
from station.config.key_files import save_public_key
from station.config.settings import from_mapping
from station.domain.patients.table import PatientTable
from station.domain.vouchers.keys import key_id
from station.services.storage.instance_lock import InstanceLock
from station.services.storage.patient_store import PatientStore

MQTT_PASSWORD = "doctor-unit-mqtt-password-7Qx"
KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


@pytest.fixture(autouse=True)
def no_secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the secrets it means (the suite sets STATION_AUDIT_KEY for all)."""
    for name in (*credentials.ENV.values(), "STATION_MQTT_LIVE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def qt_answers(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What "Qt" says about audio outputs (no child process, no Qt here); a test may change it."""
    answer: dict[str, object] = {"outputs": [], "default": ""}
    monkeypatch.setattr(system, "ask_qt_for_audio", lambda: answer)
    return answer


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """A config with the historian off and the broker on a closed loopback port."""
    config: dict[str, dict[str, Any]] = {
        "station": {"id": "ward-unit", "data_dir": str(tmp_path / "data")},
        "mqtt": {"host": "127.0.0.1", "port": closed_port(), "username": "station"},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        for name, values in config.items()
    )
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


def context(tmp_path: Path, **sections: dict[str, Any]) -> Context:
    data: dict[str, dict[str, Any]] = {
        "station": {"id": "ward-unit", "data_dir": str(tmp_path / "data")}
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Context(None, Scrubber(), from_mapping(data))


def lines(out: str) -> dict[str, tuple[str, str]]:
    parsed = {}
    for line in out.splitlines():
        status, rest = line[:4], line[4:]
        assert rest.startswith("  "), line
        name, _, detail = rest[2:].partition(": ")
        parsed[name] = (status, detail)
    return parsed


# -- the report ---------------------------------------------------------------------------------


def test_lines_pad_the_status_to_four_and_json_carries_the_same() -> None:
    results = [
        Result("config", Status.OK, "fine"),
        Result("audio", Status.WARN, "no output"),
        Result("broker", Status.FAIL, "refused"),
    ]
    assert render_text(results).splitlines() == [
        "OK    config: fine",
        "WARN  audio: no output",
        "FAIL  broker: refused",
    ]
    assert json.loads(render_json(results)) == {
        "ok": False,
        "checks": [
            {"check": "config", "status": "OK", "detail": "fine"},
            {"check": "audio", "status": "WARN", "detail": "no output"},
            {"check": "broker", "status": "FAIL", "detail": "refused"},
        ],
    }


def test_warnings_exit_0_and_any_failure_exits_1() -> None:
    warned = [Result("a", Status.OK, ""), Result("b", Status.WARN, "")]
    assert exit_code(warned) == 0
    assert exit_code([*warned, Result("c", Status.FAIL, "")]) == 1
    assert json.loads(render_json(warned))["ok"] is True


def test_the_scrubber_blanks_every_secret_read_and_keeps_one_line() -> None:
    scrub = Scrubber()
    scrub.remember(MQTT_PASSWORD)
    scrub.remember(None)
    said = scrub(f"refused {MQTT_PASSWORD}\nand again {MQTT_PASSWORD} ")
    assert said == "refused *** and again ***"


def test_the_checks_are_the_contracts_in_its_order() -> None:
    assert NAMES == (
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


# -- the whole command ----------------------------------------------------------------------------


def test_a_closed_broker_port_fails_the_broker_and_the_password_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STATION_MQTT_PASSWORD", MQTT_PASSWORD)
    monkeypatch.setenv("STATION_PATIENT_KEY", KEY_A)
    monkeypatch.setenv("STATION_AUDIT_KEY", KEY_B)
    config = write_config(tmp_path)
    assert main(["--config", str(config), "doctor"]) == 1
    out, err = capsys.readouterr()
    found = lines(out)
    assert tuple(found) == NAMES
    assert [n for n, (status, _) in found.items() if status == "FAIL"] == ["broker"]
    assert "connection refused" in found["broker"][1]
    assert found["secrets"] == (
        "OK  ",
        "MQTT password of 'station' from STATION_MQTT_PASSWORD; patient table key from "
        "STATION_PATIENT_KEY; audit signing key from STATION_AUDIT_KEY",
    )
    assert found["historian"] == ("OK  ", "off in the config ([influx] enabled = false)")
    for secret in (MQTT_PASSWORD, KEY_A, KEY_B):
        assert secret not in out
        assert secret not in err
    # Nothing was made: no data folder, no key anywhere.
    assert not (tmp_path / "data").exists()


def test_json_is_one_object_with_the_same_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STATION_MQTT_PASSWORD", MQTT_PASSWORD)
    assert main(["--config", str(write_config(tmp_path)), "doctor", "--json"]) == 1
    out = capsys.readouterr().out
    document = json.loads(out)
    assert document["ok"] is False
    assert [c["check"] for c in document["checks"]] == list(NAMES)
    assert {c["status"] for c in document["checks"]} <= {"OK", "WARN", "FAIL"}
    assert MQTT_PASSWORD not in out


def test_a_bad_config_fails_its_line_and_skips_what_needs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "station.toml"
    config.write_text('[mqtt]\nport = "1883"\n')
    assert main(["--config", str(config), "doctor"]) == 1  # not 2: the doctor explains
    found = lines(capsys.readouterr().out)
    assert tuple(found) == NAMES
    status, detail = found["config"]
    assert status == "FAIL"
    assert "mqtt.port" in detail
    assert detail.startswith(f"{config}: mqtt.port: ")
    assert detail.endswith(
        ": correct the file and run again (station.example.toml documents every key:"
        " /usr/share/station/examples/ when installed, config/ in a source tree)"
    )
    for name in ("secrets", "audit key", "keyring", "broker", "historian", "disk", "instance"):
        assert found[name] == (
            "WARN",
            "not checked: the config did not load; fix it (see config) and run again",
        )
    assert found["version"][0] == "OK  "
    assert found["audio"][0] == "WARN"  # ran without the config


def test_a_config_file_that_is_not_there_fails_saying_so(tmp_path: Path) -> None:
    (result,) = diagnose(tmp_path / "nope.toml", [CHECKS[0]])
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"{tmp_path / 'nope.toml'} does not exist: give the station's")


def test_defaults_are_named_when_there_is_no_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (result,) = diagnose(None, [c for c in CHECKS if c.name == "config"])
    assert result.status is Status.OK
    assert result.detail.startswith(f"defaults, no file at {tmp_path}/.config/station/station.toml")


def test_a_check_that_raises_or_hangs_fails_alone_and_the_others_still_run() -> None:
    release = threading.Event()

    def raises() -> Finding:
        raise RuntimeError("boom")

    def hangs() -> Finding:
        release.wait(10)
        return ok("late")

    try:
        results = diagnose(
            None,
            [
                Check("raises", 1.0, alone=raises),
                Check("hangs", 0.2, alone=hangs),
                Check("fine", 1.0, alone=lambda: ok("fine")),
            ],
        )
    finally:
        release.set()
    assert [(r.check, r.status) for r in results] == [
        ("raises", Status.FAIL),
        ("hangs", Status.FAIL),
        ("fine", Status.OK),
    ]
    assert "RuntimeError: boom" in results[0].detail
    assert results[1].detail.startswith("no answer within 0.2 s")


def test_guarded_passes_a_finding_through() -> None:
    assert guarded("x", lambda: fail("why: do this"), 1.0) == fail("why: do this")


# -- secrets, audit key, keyring ------------------------------------------------------------------


def test_without_a_keyring_or_environment_the_keys_fail_naming_the_command_and_variables(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path, mqtt={"username": "station"}, influx={"enabled": True})
    finding = check_secrets(ctx)
    assert finding.status is Status.FAIL
    for variable in (
        "STATION_MQTT_PASSWORD",
        "STATION_INFLUX_TOKEN",
        "STATION_PATIENT_KEY",
        "STATION_AUDIT_KEY",
    ):
        assert variable in finding.detail
    assert "station keys generate" in finding.detail
    audit = check_audit_key(ctx)
    assert audit.status is Status.FAIL
    assert "`station keys generate`" in audit.detail
    assert "STATION_AUDIT_KEY" in audit.detail


def test_with_a_secure_keyring_the_keys_are_made_at_first_start_and_nothing_is_made_now(
    tmp_path: Path,
) -> None:
    with use_memory_keyring() as ring:
        results = {
            r.check: r
            for r in diagnose(
                write_config(tmp_path, mqtt={"username": ""}),
                [c for c in CHECKS if c.name in {"config", "secrets", "audit key", "keyring"}],
            )
        }
        assert ring.accounts() == []  # looked, never stored
    assert results["secrets"].status is Status.OK
    assert results["secrets"].detail == (
        "patient table key not made yet (the station makes it in the memory keyring (tests "
        "only)); audit signing key not made yet (the station makes it in the memory keyring "
        "(tests only))"
    )
    assert results["audit key"].detail.startswith("none yet: the station makes it")
    assert results["keyring"].status is Status.OK


def test_the_keyring_warns_when_a_secret_needs_one_that_is_not_there(tmp_path: Path) -> None:
    from station.cli.doctor.secrets_checks import check_keyring

    finding = check_keyring(context(tmp_path, mqtt={"username": "station"}))
    assert finding.status is Status.WARN
    assert "STATION_MQTT_PASSWORD" in finding.detail
    assert "Not from the environment: MQTT password of 'station'" in finding.detail


def test_the_audit_key_id_and_the_trail_it_must_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    raw = ours.private_bytes_raw()
    monkeypatch.setenv("STATION_AUDIT_KEY", base64.b64encode(raw).decode())
    ctx = context(tmp_path)
    kid = key_id(ours.public_key())
    assert check_audit_key(ctx) == ok(f"key id {kid} (no audit trail yet in {tmp_path}/data/audit)")
    pub = tmp_path / "data" / "audit" / "station-audit.pub"
    pub.parent.mkdir(parents=True)
    save_public_key(pub, other.public_key(), overwrite=False)
    wrong = check_audit_key(context(tmp_path))
    assert wrong.status is Status.FAIL
    assert f"signed with key {key_id(other.public_key())}" in wrong.detail
    pub.unlink()
    save_public_key(pub, ours.public_key(), overwrite=False)
    assert check_audit_key(context(tmp_path)).detail.startswith(f"key id {kid}, the one that")
    monkeypatch.setenv("STATION_AUDIT_KEY", "not base64!")
    broken = check_audit_key(context(tmp_path))
    assert broken.status is Status.FAIL
    assert "not base64!" not in broken.detail


def test_a_patient_key_that_does_not_open_the_table_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATION_PATIENT_KEY", KEY_A)
    ctx = context(tmp_path)
    (tmp_path / "data").mkdir()
    PatientStore(tmp_path / "data" / "patients.enc", "ward-unit").save(PatientTable())
    opened = check_secrets(ctx)
    assert "patient table key from STATION_PATIENT_KEY (opens patients.enc)" in opened.detail
    monkeypatch.setenv("STATION_PATIENT_KEY", KEY_B)
    refused = check_secrets(context(tmp_path))
    assert refused.status is Status.FAIL
    assert "cannot be decrypted" in refused.detail
    monkeypatch.setenv("STATION_PATIENT_KEY", "c2hvcnQ=")
    short = check_secrets(context(tmp_path))
    assert short.status is Status.FAIL
    assert "not base64 of 32 bytes" in short.detail
    assert "c2hvcnQ=" not in short.detail


# -- broker beside a running station, instance --------------------------------------------------


def test_beside_a_running_station_only_the_connection_is_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from station.cli.doctor.broker import check_broker

    monkeypatch.setenv("STATION_MQTT_PASSWORD", MQTT_PASSWORD)
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks MQTT
    port = listener.getsockname()[1]
    lock = InstanceLock(tmp_path / "data")
    lock.acquire()
    try:
        ctx = context(tmp_path, mqtt={"port": port, "username": "station"})
        broker = check_broker(ctx)
        instance = check_instance(ctx)
    finally:
        lock.release()
        listener.close()
    assert broker.status is Status.OK
    assert broker.detail.startswith(f"reached 127.0.0.1:{port} (MQTT 5); login not tried")
    assert instance == ok(f"a station (pid {os.getpid()}) is running on this data folder")
    assert check_instance(ctx) == ok(f"no station running on {tmp_path / 'data'}")


# -- disk and data folder -----------------------------------------------------------------------


def fake_free(monkeypatch: pytest.MonkeyPatch, mib: int) -> None:
    monkeypatch.setattr(os, "statvfs", lambda _p: SimpleNamespace(f_bavail=mib, f_frsize=2**20))


@pytest.mark.parametrize(
    ("free_mib", "status", "start"),
    [
        (1000, Status.FAIL, "only 1,000 MiB free for a spool budget of 2,048 MiB: lower [spool]"),
        (2200, Status.WARN, "2,200 MiB free: the spool budget of 2,048 MiB fits, but leaves"),
        (9000, Status.OK, "9,000 MiB free for a spool budget of 2,048 MiB"),
    ],
)
def test_the_disk_against_the_spool_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free_mib: int, status: Status, start: str
) -> None:
    ctx = context(tmp_path, influx={"enabled": True})
    fake_free(monkeypatch, free_mib)
    finding = check_disk(ctx)
    assert finding.status is status
    assert finding.detail.startswith(start)


def test_the_spool_already_on_disk_counts_as_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "spool.sqlite").write_bytes(b"\0" * 2**20)
    fake_free(monkeypatch, 2047)
    finding = check_disk(context(tmp_path, influx={"enabled": True}, spool={"budget_mb": 2048.0}))
    assert finding.status is not Status.FAIL


def test_the_data_folder_is_judged_without_being_made(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    missing = check_data_folder(ctx)
    assert missing.status is Status.OK
    assert "does not exist yet: the station makes it (owner-only, 0700)" in missing.detail
    assert not (tmp_path / "data").exists()


def test_a_data_folder_others_can_read_warns_and_files_they_can_read_fail(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    assert check_data_folder(context(tmp_path)).detail.endswith("mode 0700, writable")
    folder.chmod(0o755)
    wide = check_data_folder(context(tmp_path))
    assert wide.status is Status.WARN
    assert f"chmod 700 {folder}" in wide.detail
    (folder / "alarms.sqlite").write_bytes(b"")
    (folder / "alarms.sqlite").chmod(0o644)
    readable = check_data_folder(context(tmp_path))
    assert readable.status is Status.FAIL
    assert "alarms.sqlite" in readable.detail
    assert f"chmod -R go-rwx {folder}" in readable.detail


# -- version, audio, clock ----------------------------------------------------------------------


def test_the_version_names_station_python_and_qt() -> None:
    finding = system.check_version()
    assert finding.status is Status.OK
    assert finding.detail.startswith("station ")
    assert ", Python 3." in finding.detail


def test_a_qt_that_crashes_on_python_3_11_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.sys, "version_info", (3, 11, 7))
    monkeypatch.setattr(system.metadata, "version", lambda _name: "6.12.0")
    finding = system.check_version()
    assert finding.status is Status.FAIL
    assert "PySide6-Essentials==6.11.3" in finding.detail


def test_audio_from_what_qt_answers(qt_answers: dict[str, object]) -> None:
    silent = system.check_audio()
    assert silent.status is Status.WARN
    assert "NO ALARM SOUND" in silent.detail
    qt_answers.update(outputs=["Speakers"], default="Speakers")
    assert system.check_audio() == ok("1 audio output(s); default: Speakers")
    qt_answers.clear()
    qt_answers["error"] = "ImportError: libpulse.so.0"
    broken = system.check_audio()
    assert broken.status is Status.WARN
    assert "libpulse0" in broken.detail
    assert "ImportError: libpulse.so.0" in broken.detail


@pytest.mark.parametrize(
    ("answers", "status", "phrase"),
    [
        ({"timedatectl": "yes\n"}, Status.OK, "synchronised (timedatectl)"),
        ({"timedatectl": "no\n"}, Status.WARN, "NOT synchronised (timedatectl)"),
        ({"chronyc": "Leap status     : Normal\n"}, Status.OK, "synchronised (chronyc)"),
        ({"chronyc": "Leap status     : Not synchronised\n"}, Status.WARN, "NOT synchronised"),
        ({}, Status.WARN, "cannot tell whether the clock is synchronised"),
    ],
)
def test_the_clock(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    answers: dict[str, str],
    status: Status,
    phrase: str,
) -> None:
    monkeypatch.setattr(system, "_run", lambda command: answers.get(command[0]))
    monkeypatch.setattr(system, "TIMESYNC_FLAG", tmp_path / "no-such-flag")
    finding = system.check_clock()
    assert finding.status is status
    assert phrase in finding.detail
    if status is Status.WARN:
        assert "alarm times, audit records" in finding.detail


# -- historian, against a scripted server -------------------------------------------------------


Answer = tuple[int, bytes]


class Scripted(BaseHTTPRequestHandler):
    """Answers by path from the server's ``routes``; records each request's path and headers."""

    server: Any

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        self.server.seen.append((self.command, path, dict(self.headers), body))
        status, reply = self.server.routes.get(path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.routes = {}  # type: ignore[attr-defined]
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, name="scripted-influx", daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def historian_ctx(tmp_path: Path, server: ThreadingHTTPServer) -> Context:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return context(tmp_path, influx={"enabled": True, "url": url, "org": "ward"})


def routes(server: ThreadingHTTPServer) -> dict[str, Answer]:
    table: dict[str, Answer] = server.routes  # type: ignore[attr-defined]
    return table


def test_the_historian_writes_a_point_and_reads_it_back_through_flux(
    tmp_path: Path, server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATION_INFLUX_TOKEN", "unit-token-9f8e7d")
    routes(server).update(
        {
            "/api/v2/write": (204, b""),
            "/api/v2/query": (200, b",result,table,_measurement\n,_result,0,station_doctor\n"),
        }
    )
    finding = historian.check_historian(historian_ctx(tmp_path, server))
    assert finding.status is Status.OK, finding.detail
    assert finding.detail.endswith("and read it back")
    seen: list[tuple[str, str, dict[str, str], bytes]] = server.seen  # type: ignore[attr-defined]
    write = next(s for s in seen if s[1] == "/api/v2/write")
    assert write[3].startswith(b"station_doctor,station=ward-unit ok=1 ")
    assert write[2]["Authorization"] == "Token unit-token-9f8e7d"
    assert [s[1] for s in seen] == [  # victoria-metrics' flush and export first: not there
        "/api/v2/write",
        "/internal/force_flush",
        "/api/v1/export",
        "/api/v2/query",
    ]


@pytest.mark.parametrize(
    ("write", "read", "status", "phrase"),
    [
        ((401, b'{"code":"unauthorized"}'), None, Status.FAIL, "refused the token (401)"),
        ((404, b'{"code":"not found"}'), None, Status.FAIL, "check [influx] org and bucket"),
        ((204, b""), (403, b""), Status.OK, "not read back: the token may not read (403)"),
        ((204, b""), (400, b""), Status.OK, "not read back: the server offers no read API"),
    ],
)
def test_what_the_historian_answers(
    tmp_path: Path,
    server: ThreadingHTTPServer,
    write: Answer,
    read: Answer | None,
    status: Status,
    phrase: str,
) -> None:
    routes(server)["/api/v2/write"] = write
    if read is not None:
        routes(server)["/api/v2/query"] = read
    finding = historian.check_historian(historian_ctx(tmp_path, server))
    assert finding.status is status, finding.detail
    assert phrase in finding.detail


def test_an_unreachable_historian_fails_naming_the_url_key(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    finding = historian.check_historian(context(tmp_path, influx={"enabled": True, "url": url}))
    assert finding.status is Status.FAIL
    assert finding.detail == (
        f"cannot reach {url}: connection refused (not running, or wrong port?); is InfluxDB "
        "running? check [influx] url"
    )


def test_each_check_catches_its_own(tmp_path: Path) -> None:
    def broken(_ctx: Context) -> Finding:
        raise OSError("the disk went away")

    results = diagnose(
        write_config(tmp_path),
        [CHECKS[0], Check("disk", 1.0, with_settings=broken), CHECKS[-1]],
    )
    assert [(r.check, r.status) for r in results] == [
        ("config", Status.OK),
        ("disk", Status.FAIL),
        ("instance", Status.OK),
    ]


@pytest.mark.parametrize(("mode", "status"), [(0o600, Status.OK), (0o644, Status.FAIL)])
def test_a_secrets_file_others_can_read_fails_the_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, status: Status
) -> None:
    env_file = tmp_path / "credentials.env"
    env_file.write_text("STATION_MQTT_PASSWORD=not-printed\n")
    env_file.chmod(mode)
    monkeypatch.setattr(secrets_checks, "CREDENTIALS_FILE", env_file)
    monkeypatch.setenv("STATION_PATIENT_KEY", base64.b64encode(bytes(32)).decode())
    monkeypatch.setenv("STATION_AUDIT_KEY", base64.b64encode(bytes(32)).decode())
    finding = check_secrets(context(tmp_path, mqtt={"username": ""}))
    assert finding.status is status, finding.detail
    assert "not-printed" not in finding.detail
    if status is Status.FAIL:
        assert finding.detail.startswith(
            f"{env_file} can be read by others (mode 644): chmod 600 {env_file}"
        )
