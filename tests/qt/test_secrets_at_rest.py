"""Issue 5: after a session that sets every kind of secret — the admin's and a nurse's passwords,
a PIN, a mistyped password, the MQTT password and the InfluxDB token — none of them is in plain
text in any file of the data folder or the config (the test searches every byte)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.app import Station
from station.config.credentials import SERVICE, MemoryKeyring, use_memory_keyring
from station.config.settings import from_mapping
from station.domain.roles import Role
from station.ui.settings.dialog import SettingsDialog
from station.ui.users_dialog import UsersDialog

SECRETS = {
    "admin": "Admin-secret-4711",
    "nurse": "Nurse-secret-0815",
    "pin": "928374",
    "typo": "Wrong-guess-1234",
    "mqtt": "Mqtt-secret-3141",
    "influx": "Influx-token-2718",
}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens here once the socket is closed


@pytest.fixture
def ring() -> Iterator[MemoryKeyring]:
    with use_memory_keyring() as backend:
        yield backend


def _fill_user(
    qtbot: QtBot, dialog: UsersDialog, name: str, role: Role, password: str, pin: str = ""
) -> None:
    dialog.name.setText(name)
    dialog.role.setCurrentIndex(list(Role).index(role))
    dialog.password.setText(password)
    dialog.confirm.setText(password)
    dialog.pin.setText(pin)
    with qtbot.waitSignal(dialog.answered, timeout=10_000) as answer:
        dialog.add()  # hashed and saved on the accounts' worker
    assert answer.args == [True], dialog.message.text()


def _log_in(qtbot: QtBot, station: Station, name: str, secret: str, pin: bool = False) -> None:
    with qtbot.waitSignal(station.actions.session_changed, timeout=10_000):
        station.actions.login(name, secret, pin=pin)


def test_no_secret_is_at_rest_in_any_file_after_a_session_that_sets_them_all(
    qtbot: QtBot, tmp_path: Path, ring: MemoryKeyring
) -> None:
    config = tmp_path / "station.toml"
    settings = from_mapping(
        {
            "station": {"data_dir": str(tmp_path / "data")},
            "mqtt": {"port": _closed_port(), "username": "station"},
            "influx": {"enabled": True, "url": "http://127.0.0.1:9"},
        }
    )
    station = Station(settings, user="nobody", config_path=config)
    qtbot.addWidget(station.window)
    station.start()
    try:
        first_run = [w for w in station.window.findChildren(UsersDialog) if w.isVisible()]
        assert len(first_run) == 1  # the first run asks for the admin
        _fill_user(qtbot, first_run[0], "boss", Role.ADMIN, SECRETS["admin"])
        assert station.accounts.role_of("boss") is Role.ADMIN
        with qtbot.waitSignal(station.actions.login_failed, timeout=10_000):
            station.actions.login("boss", SECRETS["typo"])
        qtbot.wait(1100)  # the back-off after a failure: the next try waits a second
        _log_in(qtbot, station, "boss", SECRETS["admin"])
        users = UsersDialog(station.accounts, station.audit, "boss", station.window)
        qtbot.addWidget(users)
        _fill_user(qtbot, users, "ann", Role.NURSE, SECRETS["nurse"], SECRETS["pin"])
        station.window.open_settings()
        [dialog] = [w for w in station.window.findChildren(SettingsDialog) if w.isVisible()]
        dialog.secrets["mqtt"].setText(SECRETS["mqtt"])
        dialog.secrets["influx"].setText(SECRETS["influx"])
        with qtbot.waitSignal(dialog.save_finished, timeout=10_000) as saved:
            assert dialog.save()
        assert saved.args == [True]
        assert dialog.shutdown()
        _log_in(qtbot, station, "ann", SECRETS["pin"], pin=True)
        assert station.actions.session.user == "ann"
    finally:
        assert station.stop()
    assert ring.get_password(SERVICE, "mqtt:station") == SECRETS["mqtt"]
    assert ring.get_password(SERVICE, "influx:ward") == SECRETS["influx"]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"station.toml", "users.json", "audit.jsonl"} <= names
    for path in files:
        data = path.read_bytes()
        for what, value in SECRETS.items():
            for encoded in (value.encode(), value.encode("utf-16-le")):
                assert encoded not in data, f"{what} in {path}"
