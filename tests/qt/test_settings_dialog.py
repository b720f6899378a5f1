"""pytest-qt tests of the admin's settings dialog: the schema's refusals shown at the field, a
save that writes TOML without secrets, puts the secrets in the keyring and the change in the
audit trail, and connection tests that run off the GUI thread.

The dialog is driven through its widgets with a real :class:`AuditWriter` in ``tmp_path`` and
the in-memory keyring (or a plaintext-file stand-in that must be refused). The default broker
and historian checks are exercised against small scripted servers on loopback ports.
"""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLineEdit, QPushButton
from pytestqt.qtbot import QtBot

from station.config import credentials
from station.config.credentials import SERVICE, MemoryKeyring, use_memory_keyring
from station.config.settings import Settings, from_mapping, load
from station.services.audit.writer import AuditWriter
from station.services.ingest.connection_check import check_broker, check_historian
from station.ui.settings.connection_test import THREAD_NAME, Tester
from station.ui.settings.dialog import RESTART_NOTE, SettingsDialog
from tests.keyring_memory import PlaintextStandIn, installed_keyring
from tests.qt.choosers import choose

PASSWORD = "mqtt-Pa55word-7f3e"
TOKEN = "influx-T0ken-c91d"


@pytest.fixture(autouse=True)
def no_secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in credentials.ENV.values():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_test_thread_left() -> Iterator[None]:
    yield
    alive = [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]
    assert not alive, "a connection test thread outlived its test"


@pytest.fixture
def ring() -> Iterator[MemoryKeyring]:
    with use_memory_keyring() as memory:
        yield memory


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditWriter]:
    writer = AuditWriter(tmp_path / "data" / "audit")
    writer.start()
    yield writer
    writer.close(2.0)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config" / "station.toml"


@pytest.fixture
def current(tmp_path: Path) -> Settings:
    return from_mapping({"station": {"data_dir": str(tmp_path / "data")}})


class FakeTester:
    """An injected connection test: records what it was given; may hold until released."""

    def __init__(self, answer: str, hold: bool = False) -> None:
        self.answer = answer
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.calls: list[tuple[Settings, str | None, str]] = []

    def __call__(self, settings: Settings, secret: str | None) -> str:
        self.calls.append((settings, secret, threading.current_thread().name))
        assert self.release.wait(5.0)
        return self.answer


@pytest.fixture
def make_dialog(
    qtbot: QtBot, current: Settings, config: Path, audit: AuditWriter
) -> Callable[..., SettingsDialog]:
    def make(
        settings: Settings | None = None,
        test_broker: Tester | None = None,
        test_historian: Tester | None = None,
    ) -> SettingsDialog:
        dialog = SettingsDialog(
            settings or current,
            config,
            "alice",
            audit,
            test_broker=test_broker or FakeTester("broker ok"),
            test_historian=test_historian or FakeTester("historian ok"),
        )
        qtbot.addWidget(dialog)
        dialog.show()
        return dialog

    return make


@pytest.fixture
def dialog(ring: MemoryKeyring, make_dialog: Callable[..., SettingsDialog]) -> SettingsDialog:
    return make_dialog()


def audit_records(writer: AuditWriter) -> list[dict[str, Any]]:
    writer.close(2.0)
    lines = writer.path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def save(qtbot: QtBot, dialog: SettingsDialog) -> bool:
    """Start a save and wait for the worker's answer: whether everything asked for was kept."""
    with qtbot.waitSignal(dialog.save_finished, timeout=5000) as done:
        assert dialog.save(), "the save did not start"
    return bool(done.args[0])


def changes_recorded(writer: AuditWriter) -> list[dict[str, Any]]:
    return [r for r in audit_records(writer) if r["action"] == "settings.change"]


def type_into(dialog: SettingsDialog, key: str, text: str) -> None:
    widget = dialog.fields[key].widget
    assert isinstance(widget, QLineEdit)
    widget.setText(text)


def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "ward-ca.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("-----BEGIN CERTIFICATE-----\n(test)\n")
    return path


# -- refused at the field ------------------------------------------------------------------------


def tls_on_with_missing_ca(dialog: SettingsDialog, tmp_path: Path) -> None:
    dialog.set_value("mqtt.tls", True)
    type_into(dialog, "mqtt.ca_file", str(tmp_path / "missing-ca.pem"))


def remote_host_without_tls(dialog: SettingsDialog, tmp_path: Path) -> None:
    type_into(dialog, "mqtt.host", "broker.ward.example")


def port_70000(dialog: SettingsDialog, tmp_path: Path) -> None:
    type_into(dialog, "mqtt.port", "70000")


def port_not_a_number(dialog: SettingsDialog, tmp_path: Path) -> None:
    type_into(dialog, "mqtt.port", "88 83")


def empty_host(dialog: SettingsDialog, tmp_path: Path) -> None:
    type_into(dialog, "mqtt.host", "")


def low_above_high(dialog: SettingsDialog, tmp_path: Path) -> None:
    type_into(dialog, "alarms.heartrate.low", "130")


def historian_url_without_scheme(dialog: SettingsDialog, tmp_path: Path) -> None:
    type_into(dialog, "influx.url", "historian:8086")


@pytest.mark.parametrize(
    ("edit", "key", "fragment", "tab"),
    [
        (port_70000, "mqtt.port", "less than or equal to 65535", "Broker"),
        (port_not_a_number, "mqtt.port", "valid integer", "Broker"),
        (empty_host, "mqtt.host", "at least 1 character", "Broker"),
        (tls_on_with_missing_ca, "mqtt.ca_file", "file not found", "Broker"),
        (low_above_high, "alarms.heartrate.low", "must be below high limit", "Alarm defaults"),
        (remote_host_without_tls, "mqtt.tls", "plain MQTT to non-loopback host", "Broker"),
        (historian_url_without_scheme, "influx.url", "should match pattern", "Historian"),
    ],
)
def test_an_invalid_value_is_refused_at_its_field_and_nothing_is_written(
    dialog: SettingsDialog,
    audit: AuditWriter,
    config: Path,
    tmp_path: Path,
    edit: Callable[[SettingsDialog, Path], None],
    key: str,
    fragment: str,
    tab: str,
) -> None:
    edit(dialog, tmp_path)
    assert fragment in dialog.error_text(key)
    assert set(dialog.problems()) == {key}, "only that field is refused"
    assert "border" in dialog.fields[key].widget.styleSheet()
    others = [k for k in dialog.fields if dialog.errors[k] is not dialog.errors[key]]
    assert all(dialog.error_text(k) == "" for k in others)
    assert not dialog.save_button.isEnabled()
    titles = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert f"{tab} (!)" in titles

    assert dialog.save() is False
    assert "fix the fields" in dialog.status.text()
    assert not config.exists()
    assert dialog.isVisible()
    assert changes_recorded(audit) == []


def test_fixing_the_field_clears_the_error(dialog: SettingsDialog) -> None:
    type_into(dialog, "mqtt.port", "70000")
    assert not dialog.save_button.isEnabled()
    type_into(dialog, "mqtt.port", "8883")
    assert dialog.error_text("mqtt.port") == ""
    assert dialog.fields["mqtt.port"].widget.styleSheet() == ""
    assert dialog.problems() == {}
    assert dialog.save_button.isEnabled()
    assert dialog.tabs.tabText(1) == "Broker"


def test_the_admin_override_accepts_plain_mqtt_to_a_remote_host(dialog: SettingsDialog) -> None:
    type_into(dialog, "mqtt.host", "broker.ward.example")
    assert dialog.error_text("mqtt.tls")
    override = dialog.fields["mqtt.allow_plain_remote"].widget
    assert isinstance(override, QCheckBox)
    override.setChecked(True)
    assert dialog.problems() == {}


def test_a_password_needs_a_user(dialog: SettingsDialog) -> None:
    dialog.secrets["mqtt"].setText(PASSWORD)
    assert "set the username first" in dialog.error_text("mqtt.password")
    assert not dialog.save_button.isEnabled()
    type_into(dialog, "mqtt.username", "station-1")
    assert dialog.error_text("mqtt.password") == ""
    assert dialog.save_button.isEnabled()


# -- saving --------------------------------------------------------------------------------------


def test_saving_writes_toml_puts_secrets_in_the_keyring_and_audits_old_to_new(
    qtbot: QtBot,
    dialog: SettingsDialog,
    ring: MemoryKeyring,
    audit: AuditWriter,
    config: Path,
    current: Settings,
    tmp_path: Path,
) -> None:
    ca = ca_file(tmp_path)
    type_into(dialog, "station.name", "ICU 2 — Nord")
    type_into(dialog, "mqtt.host", "broker.ward.example")
    type_into(dialog, "mqtt.port", "8883")
    dialog.set_value("mqtt.tls", True)
    type_into(dialog, "mqtt.ca_file", str(ca))
    type_into(dialog, "mqtt.username", "station-icu2")
    dialog.secrets["mqtt"].setText(PASSWORD)
    dialog.set_value("influx.enabled", True)
    type_into(dialog, "influx.org", "clinic")
    dialog.secrets["influx"].setText(TOKEN)
    type_into(dialog, "alarms.heartrate.high", "130")
    dialog.set_value("alarms.heartrate.priority", "medium")
    dialog.set_value("alarms.oxygen.latching", True)
    assert dialog.problems() == {}

    with qtbot.waitSignal(dialog.saved, timeout=2000) as blocker:
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    new = blocker.args[0]
    assert dialog.result() == SettingsDialog.DialogCode.Accepted

    # The file: loads back to what was saved, private, without any secret.
    loaded = load(config)
    assert loaded == new
    assert loaded.station.name == "ICU 2 — Nord"
    assert (loaded.mqtt.host, loaded.mqtt.port) == ("broker.ward.example", 8883)
    assert loaded.mqtt.tls
    assert loaded.mqtt.ca_file == str(ca)
    assert loaded.influx.enabled
    assert loaded.alarms.heartrate.high == 130
    assert loaded.alarms.heartrate.priority == "medium"
    assert loaded.alarms.heartrate.low == current.alarms.heartrate.low
    assert loaded.alarms.oxygen.latching
    assert loaded.mqtt.topics == current.mqtt.topics  # keys the form does not show are kept
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text(encoding="utf-8")
    assert PASSWORD not in text
    assert TOKEN not in text
    assert "password =" not in text
    assert "token =" not in text

    # The secrets: in the keyring only, and gone from the widgets.
    assert ring.get_password(SERVICE, "mqtt:station-icu2") == PASSWORD
    assert ring.get_password(SERVICE, "influx:clinic") == TOKEN
    assert dialog.secrets["mqtt"].text() == ""
    assert dialog.secrets["influx"].text() == ""

    # The audit trail: one record, who, old -> new, the secrets by name only.
    raw = audit.path
    records = changes_recorded(audit)
    assert len(records) == 1
    record = records[0]
    assert (record["actor"], record["role"], record["outcome"]) == ("alice", "admin", "success")
    assert record["target"] == str(config)
    changes = {c["key"]: (c["old"], c["new"]) for c in record["details"]["changes"]}
    assert changes["mqtt.port"] == (1883, 8883)
    assert changes["mqtt.host"] == ("127.0.0.1", "broker.ward.example")
    assert changes["mqtt.tls"] == (False, True)
    assert changes["station.name"] == ("Ward 1", "ICU 2 — Nord")
    assert changes["alarms.heartrate.high"] == (120.0, 130.0)
    assert changes["alarms.heartrate.priority"] == ("high", "medium")
    assert changes["influx.org"] == ("ward", "clinic")
    assert "mqtt.topics" not in changes
    assert record["details"]["secrets_changed"] == ["mqtt password", "influx token"]
    audit_text = raw.read_text(encoding="utf-8")
    assert PASSWORD not in audit_text
    assert TOKEN not in audit_text
    assert RESTART_NOTE in dialog.status.text()


def test_the_secret_alone_is_stored_and_audited_by_name_without_rewriting_the_file(
    qtbot: QtBot,
    ring: MemoryKeyring,
    make_dialog: Callable[..., SettingsDialog],
    audit: AuditWriter,
    config: Path,
    current: Settings,
) -> None:
    saved = current.model_copy(update={"mqtt": current.mqtt.model_copy(update={"username": "u1"})})
    config.parent.mkdir(parents=True)
    config.write_text("# as the admin left it\n")  # not rewritten: nothing in it changes
    dialog = make_dialog(saved)
    dialog.secrets["mqtt"].setText(PASSWORD)
    assert save(qtbot, dialog) is True
    assert ring.get_password(SERVICE, "mqtt:u1") == PASSWORD
    assert config.read_text() == "# as the admin left it\n"
    (record,) = changes_recorded(audit)
    assert record["details"] == {"changes": [], "secrets_changed": ["mqtt password"]}


def test_saving_with_nothing_changed_writes_and_audits_nothing(
    qtbot: QtBot,
    ring: MemoryKeyring,
    make_dialog: Callable[..., SettingsDialog],
    audit: AuditWriter,
    config: Path,
) -> None:
    first = make_dialog()
    assert save(qtbot, first) is True
    assert config.exists()  # the file did not exist yet: the first save wrote it
    written = config.stat().st_mtime_ns
    again = make_dialog(load(config))
    assert save(qtbot, again) is True
    assert again.status.text() == "Nothing changed."
    assert again.result() == SettingsDialog.DialogCode.Accepted
    assert config.stat().st_mtime_ns == written
    assert len(changes_recorded(audit)) == 1


def test_without_a_secure_keyring_the_secret_is_refused_at_its_field_and_the_rest_saved(
    qtbot: QtBot,
    make_dialog: Callable[..., SettingsDialog],
    audit: AuditWriter,
    config: Path,
    tmp_path: Path,
) -> None:
    plaintext = PlaintextStandIn(tmp_path / "config" / "keyring_pass.json")
    with installed_keyring(plaintext):
        dialog = make_dialog()
        warning = dialog.keyring_warnings["mqtt"]
        assert "No secure keyring" in warning.text()
        type_into(dialog, "mqtt.username", "station-1")
        dialog.secrets["mqtt"].setText(PASSWORD)
        with qtbot.waitSignal(dialog.saved, timeout=2000):
            assert save(qtbot, dialog) is False
        message = dialog.error_text("mqtt.password")
    assert message.startswith("No secure keyring on this machine")
    assert "STATION_MQTT_PASSWORD" in message
    assert "STATION_INFLUX_TOKEN" in message
    assert dialog.isVisible(), "the dialog stays open to show why"
    assert "not stored: mqtt password" in dialog.status.text()
    assert load(config).mqtt.username == "station-1"
    assert not plaintext.path.exists()
    assert dialog.secrets["mqtt"].text() == ""
    (record,) = changes_recorded(audit)
    assert record["outcome"] == "failure"
    assert record["details"]["secrets_changed"] == []
    assert record["details"]["secrets_not_stored"] == ["mqtt password"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_file_that_cannot_be_written_is_reported_and_audited(
    qtbot: QtBot, dialog: SettingsDialog, audit: AuditWriter, config: Path
) -> None:
    config.parent.mkdir(parents=True)
    config.mkdir()  # a folder where the file should be: os.replace fails
    type_into(dialog, "station.name", "Other")
    assert save(qtbot, dialog) is False
    assert "Not saved" in dialog.general_error.text()
    (record,) = changes_recorded(audit)
    assert record["outcome"] == "failure"
    change = {"key": "station.name", "old": "Ward 1", "new": "Other"}
    assert record["details"]["changes"] == [change]


# -- test connection -----------------------------------------------------------------------------


def test_broker_test_runs_off_the_gui_thread_and_shows_the_result(
    qtbot: QtBot, ring: MemoryKeyring, make_dialog: Callable[..., SettingsDialog]
) -> None:
    tester = FakeTester("Connected to 10.0.0.5:1883 as user 'station-1': Success", hold=True)
    dialog = make_dialog(test_broker=tester)
    type_into(dialog, "mqtt.host", "10.0.0.5")
    dialog.set_value("mqtt.allow_plain_remote", True)
    type_into(dialog, "mqtt.username", "station-1")
    dialog.secrets["mqtt"].setText(PASSWORD)
    button = dialog.test_button("broker")

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    # The click returned while the test is still running: the GUI thread is free.
    assert dialog.broker_result.text() == "Testing…"
    assert not button.isEnabled()
    qtbot.waitUntil(lambda: len(tester.calls) == 1, timeout=2000)
    qtbot.wait(50)  # events still flow while the test holds
    assert dialog.broker_result.text() == "Testing…"

    with qtbot.waitSignal(dialog.connection_tested, timeout=3000) as blocker:
        tester.release.set()
    assert blocker.args == ["broker", tester.answer]
    assert dialog.broker_result.text() == tester.answer
    assert button.isEnabled()
    settings, secret, thread = tester.calls[0]
    assert thread == THREAD_NAME
    assert (settings.mqtt.host, settings.mqtt.username) == ("10.0.0.5", "station-1")
    assert secret == PASSWORD  # the one typed, not yet stored
    assert dialog.shutdown()


def test_historian_test_uses_the_stored_token_and_never_shows_it(
    qtbot: QtBot, ring: MemoryKeyring, make_dialog: Callable[..., SettingsDialog]
) -> None:
    ring.set_password(SERVICE, "influx:ward", TOKEN)
    tester = FakeTester(f"401 for token {TOKEN}")  # a careless answer echoing the secret
    dialog = make_dialog(test_historian=tester)
    with qtbot.waitSignal(dialog.connection_tested, timeout=3000):
        dialog.test_connection("historian")
    assert tester.calls[0][1] == TOKEN
    assert TOKEN not in dialog.historian_result.text()
    assert dialog.historian_result.text() == "401 for token ***"
    assert dialog.shutdown()


def test_a_test_that_raises_shows_why(
    qtbot: QtBot, ring: MemoryKeyring, make_dialog: Callable[..., SettingsDialog]
) -> None:
    def broken(settings: Settings, secret: str | None) -> str:
        raise ConnectionResetError("reset by peer")

    dialog = make_dialog(test_broker=broken)
    with qtbot.waitSignal(dialog.connection_tested, timeout=3000):
        dialog.test_connection("broker")
    assert dialog.broker_result.text() == "Test failed: ConnectionResetError: reset by peer"
    assert dialog.shutdown()


def test_no_test_while_the_tab_has_errors(
    ring: MemoryKeyring, make_dialog: Callable[..., SettingsDialog]
) -> None:
    tester = FakeTester("never")
    dialog = make_dialog(test_broker=tester)
    type_into(dialog, "mqtt.port", "70000")
    dialog.test_connection("broker")
    assert "Fix the fields" in dialog.broker_result.text()
    assert tester.calls == []


def test_a_broker_test_is_not_held_up_by_an_error_on_another_tab(
    qtbot: QtBot, ring: MemoryKeyring, make_dialog: Callable[..., SettingsDialog]
) -> None:
    tester = FakeTester("ok")
    dialog = make_dialog(test_broker=tester)
    type_into(dialog, "alarms.heartrate.low", "500")
    type_into(dialog, "mqtt.port", "1884")
    with qtbot.waitSignal(dialog.connection_tested, timeout=3000):
        dialog.test_connection("broker")
    assert tester.calls[0][0].mqtt.port == 1884
    assert dialog.shutdown()


# -- no secret anywhere --------------------------------------------------------------------------


def test_no_secret_in_any_file_after_a_session_that_sets_them_all(
    qtbot: QtBot,
    ring: MemoryKeyring,
    make_dialog: Callable[..., SettingsDialog],
    audit: AuditWriter,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    broker, historian = FakeTester("broker ok"), FakeTester("historian ok")
    dialog = make_dialog(test_broker=broker, test_historian=historian)
    type_into(dialog, "mqtt.username", "station-1")
    dialog.secrets["mqtt"].setText(PASSWORD)
    dialog.secrets["influx"].setText(TOKEN)
    with qtbot.waitSignal(dialog.connection_tested, timeout=3000):
        dialog.test_connection("broker")
    with qtbot.waitSignal(dialog.connection_tested, timeout=3000):
        dialog.test_connection("historian")
    assert (broker.calls[0][1], historian.calls[0][1]) == (PASSWORD, TOKEN)
    assert save(qtbot, dialog) is True
    assert dialog.shutdown()
    audit.close(2.0)

    assert ring.get_password(SERVICE, "mqtt:station-1") == PASSWORD
    assert ring.get_password(SERVICE, "influx:ward") == TOKEN
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"station.toml", "audit.jsonl", "audit.head"}
    for path in files:
        data = path.read_bytes()
        for value in (PASSWORD, TOKEN):
            assert value.encode() not in data, f"{value!r} in {path}"
            assert value.encode("utf-16-le") not in data, f"{value!r} in {path}"
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert TOKEN not in record.getMessage()


# -- the default checks against scripted servers -------------------------------------------------


class _MqttHandler(socketserver.BaseRequestHandler):
    """Reads a CONNECT and answers with the server's scripted CONNACK (or nothing)."""

    def handle(self) -> None:
        server: Any = self.server
        self.request.settimeout(3.0)
        try:
            self.request.recv(4096)
            if server.connack is not None:
                self.request.sendall(server.connack)
            self.request.recv(4096)  # wait for DISCONNECT or the close
        except OSError:
            pass


@pytest.fixture
def mqtt_server() -> Iterator[Callable[[bytes | None], int]]:
    servers: list[tuple[socketserver.ThreadingTCPServer, threading.Thread]] = []

    def start(connack: bytes | None) -> int:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _MqttHandler)
        server.daemon_threads = True
        server.connack = connack  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, name="fake-broker", daemon=True)
        thread.start()
        servers.append((server, thread))
        return int(server.server_address[1])

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(2.0)


def _broker(port: int, **mqtt: object) -> Settings:
    return from_mapping({"mqtt": {"port": port, **mqtt}})


def test_check_broker_reports_connack_success_and_refusal(
    mqtt_server: Callable[[bytes | None], int],
) -> None:
    ok_v5 = mqtt_server(bytes([0x20, 0x03, 0x00, 0x00, 0x00]))
    refused_v5 = mqtt_server(bytes([0x20, 0x03, 0x00, 0x87, 0x00]))  # 0x87 Not authorized
    refused_v311 = mqtt_server(bytes([0x20, 0x02, 0x00, 0x05]))  # 5: not authorised
    assert check_broker(_broker(ok_v5), None, 2.0) == (
        f"Connected to 127.0.0.1:{ok_v5} (MQTT 5) as anonymous: Success"
    )
    result = check_broker(_broker(refused_v5, username="station-1"), None, 2.0)
    assert result == (
        f"127.0.0.1:{refused_v5} (MQTT 5) refused user 'station-1': Not authorized "
        "(no password stored for this user)"
    )
    result = check_broker(_broker(refused_v311, protocol="3.1.1", username="u"), "pw", 2.0)
    assert result == f"127.0.0.1:{refused_v311} (MQTT 3.1.1) refused user 'u': Not authorized"


def test_check_broker_reports_silence_and_refused_connections(
    mqtt_server: Callable[[bytes | None], int],
) -> None:
    silent = mqtt_server(None)
    assert check_broker(_broker(silent), None, 0.5) == (
        f"No answer from 127.0.0.1:{silent} (MQTT 5) within 0.5 s"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    result = check_broker(_broker(closed), None, 1.0)
    assert result.startswith(f"Cannot connect to 127.0.0.1:{closed} (MQTT 5): ")
    assert "refused" in result.lower()


class _InfluxHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, {"status": "pass"})
        elif self.path.startswith("/api/v2/buckets?"):
            if self.headers.get("Authorization") != "Token good-token":
                self._answer(401, {"code": "unauthorized"})
            elif "name=vitals" in self.path and "org=ward" in self.path:
                self._answer(200, {"buckets": [{"name": "vitals"}]})
            else:
                self._answer(200, {"buckets": []})
        else:
            self._answer(404, {})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def influx_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _InfluxHandler)
    thread = threading.Thread(target=server.serve_forever, name="fake-influx", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(2.0)


def test_check_historian_reports_token_and_bucket(influx_url: str) -> None:
    def settings(bucket: str = "vitals") -> Settings:
        return from_mapping({"influx": {"url": influx_url + "/", "bucket": bucket}})

    assert check_historian(settings(), "good-token", 2.0) == (
        f"{influx_url} is up; the token sees bucket 'vitals' in 'ward'"
    )
    assert "refused the token (401)" in check_historian(settings(), "bad-token", 2.0)
    assert "no token is set" in check_historian(settings(), None, 2.0)
    assert "has no bucket 'other'" in check_historian(settings("other"), "good-token", 2.0)


def test_check_historian_reports_an_unreachable_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = from_mapping({"influx": {"url": f"http://127.0.0.1:{port}"}})
    assert check_historian(settings, "t", 1.0).startswith(f"Cannot reach http://127.0.0.1:{port}:")


def test_browse_opens_a_chooser_that_leaves_the_ward_usable_and_fills_the_field(
    dialog: SettingsDialog, tmp_path: Path
) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    cell = dialog.fields["station.data_dir"].widget.parentWidget()
    assert cell is not None
    browse = next(b for b in cell.findChildren(QPushButton) if b.text() == "Browse…")
    browse.click()
    choose(dialog, folder)
    field = dialog.fields["station.data_dir"].widget
    assert isinstance(field, QLineEdit)
    assert Path(field.text()) == folder
