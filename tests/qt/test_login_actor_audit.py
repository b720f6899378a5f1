"""No free text from the login form becomes an actor: a password typed into the user field (one
that fits the user-name pattern) is audited as ``(not a user name)`` and written to no log, by
every way a login is typed at the station: the login dialog, the PIN switch, the close guard's
admin login, and the emergency acknowledge's dialog; also when the check itself fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMainWindow
from pytestqt.qtbot import QtBot

from station.domain.roles import EMERGENCY_USER, Role
from station.presenters.actions import ActionLayer
from station.services.audit.writer import AuditWriter
from station.services.storage.accounts import INVALID_NAME, Accounts
from station.ui.close_guard import CloseGuard
from station.ui.login_dialog import LoginDialog
from tests.fakes import FakeClock

PASSWORD = "Summer.2024"  # ann's password, and a valid user name
WAIT_MS = 5000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def audit(tmp_path: Path, clock: FakeClock) -> Iterator[AuditWriter]:
    writer = AuditWriter(tmp_path / "audit", clock=clock)
    writer.start()
    yield writer
    writer.close(5.0)


@pytest.fixture
def actions(tmp_path: Path, clock: FakeClock, audit: AuditWriter) -> Iterator[ActionLayer]:
    accounts = Accounts(tmp_path / "users.json", clock=clock, scrypt_n=2**10)
    accounts.create("root-admin", Role.ADMIN, "the admin's password")
    accounts.create("ann", Role.NURSE, PASSWORD, pin="4321")
    layer = ActionLayer(accounts, audit, "ward-test", lock_after_s=300, clock=clock)
    yield layer
    layer.shutdown()


def type_login(
    qtbot: QtBot, actions: ActionLayer, dialog: LoginDialog, name: str, secret: str, pin: bool
) -> None:
    """Type ``name`` and ``secret`` into ``dialog`` and submit: the login fails."""
    dialog.user.setCurrentText(name)
    dialog.secret.setText(secret)
    dialog.use_pin.setChecked(pin)
    with qtbot.waitSignal(actions.login_failed, timeout=WAIT_MS):
        dialog.submit()
    assert dialog.message.text().startswith("Not logged in")


def trail(audit: AuditWriter) -> str:
    assert audit.close(5.0)
    return audit.path.read_text()


@pytest.mark.parametrize("pin", [False, True])
def test_a_password_in_the_user_field_is_not_the_actor(
    qtbot: QtBot,
    actions: ActionLayer,
    audit: AuditWriter,
    caplog: pytest.LogCaptureFixture,
    pin: bool,
) -> None:
    caplog.set_level("DEBUG")
    dialog = LoginDialog(actions, "Log in or switch user.")
    qtbot.addWidget(dialog)
    type_login(qtbot, actions, dialog, PASSWORD, "1234" if pin else "whatever else", pin)
    text = trail(audit)
    assert PASSWORD not in text
    assert PASSWORD not in caplog.text
    [failed] = [json.loads(line) for line in text.splitlines()]
    assert (failed["action"], failed["actor"], failed["outcome"]) == (
        "session.login",
        INVALID_NAME,
        "failure",
    )


def test_the_close_guards_login_names_no_typed_text(
    qtbot: QtBot, actions: ActionLayer, audit: AuditWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    window = QMainWindow()
    qtbot.addWidget(window)
    guard = CloseGuard(window, actions, "ward-test", lambda _r, _a, _role: None)
    assert not guard.may_close()
    dialog = guard.dialog
    assert dialog is not None
    type_login(qtbot, actions, dialog, PASSWORD, "the admin's password", False)
    dialog.reject()
    text = trail(audit)
    assert PASSWORD not in text
    assert PASSWORD not in caplog.text


def test_the_emergency_dialog_records_no_typed_name(
    qtbot: QtBot, actions: ActionLayer, audit: AuditWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    dialog = LoginDialog(actions, "Acknowledge Bed 1: HR high?", "alarm-1")
    qtbot.addWidget(dialog)
    type_login(qtbot, actions, dialog, PASSWORD, "wrong", False)  # first a try, then the emergency
    dialog.user.setCurrentText(PASSWORD)
    dialog.reason.setText("patient crashing, no time")
    acked: list[tuple[str, str]] = []
    actions.acknowledge.connect(lambda alarm_id, user: acked.append((alarm_id, user)))
    dialog.emergency.click()
    assert acked == [("alarm-1", EMERGENCY_USER)]
    text = trail(audit)
    assert PASSWORD not in text
    assert PASSWORD not in caplog.text


def test_a_check_that_fails_names_no_typed_text(
    qtbot: QtBot, actions: ActionLayer, audit: AuditWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    actions.accounts.path.write_text("{ not json")  # a corrupt users file: the check raises
    with qtbot.waitSignal(actions.login_failed, timeout=WAIT_MS) as failed:
        actions.login(PASSWORD, "whatever")
    assert "cannot check the login" in failed.args[0]
    text = trail(audit)
    assert PASSWORD not in text
    assert PASSWORD not in caplog.text
    assert INVALID_NAME in text
