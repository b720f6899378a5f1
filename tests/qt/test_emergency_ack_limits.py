"""The emergency acknowledge (no login, a reason) is for a patient's alarm only, and at most three
in ten minutes at the station (monotonic clock); beyond that the login is the way, the refusal is
audited and the dialog says why. Before, any alarm, technical ones included, could be
acknowledged this way, without limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.alarms import AlarmKind, AlarmState
from station.domain.roles import EMERGENCY_USER, Role
from station.presenters.actions import ActionLayer
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.services.storage.accounts import Accounts
from station.ui.login_dialog import LoginDialog
from station.ui.main_window import MainWindow
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Wiring

PASSWORD = "a long password"
REASON = "patient crashing, gloved"
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
    accounts.create("root-admin", Role.ADMIN, PASSWORD)
    accounts.create("ann", Role.NURSE, PASSWORD)
    layer = ActionLayer(accounts, audit, "ward-test", lock_after_s=300, clock=clock)
    yield layer
    layer.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    devices = {f"mon-{n}": n for n in range(1, 5)}
    return from_mapping(
        {"station": {"data_dir": str(tmp_path / "data")}, "ward": {"beds": 4, "devices": devices}}
    )


@pytest.fixture
def station(
    wire: Wiring, settings: Settings, clock: FakeClock, audit: AuditWriter, actions: ActionLayer
) -> Iterator[tuple[MainWindow, CoreWorker]]:
    screen = wire(settings, clock, audit, actions=actions, user="nobody")
    assert screen.core is not None
    # The composition root's feed of the core's alarms to the action layer.
    screen.core.alarm_changed.connect(actions.on_alarm)
    yield screen.window, screen.core
    screen.window.stop_timers()


def records(audit: AuditWriter) -> list[dict[str, object]]:
    assert audit.close(5.0)
    return [json.loads(line) for line in audit.path.read_text().splitlines()]


def ask(qtbot: QtBot, window: MainWindow, alarm_id: str) -> LoginDialog:
    """Acknowledge ``alarm_id`` from the alarm list while locked: the login dialog opens."""
    table = window.alarm_list.table
    for row in range(table.model().rowCount()):  # the list's own order, by priority and time
        table.selectRow(row)
        if window.alarm_list.selected_id() == alarm_id:
            break
    assert window.alarm_list.selected_id() == alarm_id
    window.alarm_list.acknowledge_selected()
    prompt = window.login_prompt
    assert prompt is not None
    qtbot.waitUntil(lambda: prompt.dialog is not None and prompt.dialog.isVisible())
    dialog = prompt.dialog
    assert dialog is not None
    return dialog


def state(window: MainWindow, alarm_id: str) -> AlarmState:
    return next(a.state for a in window.alarm_list.alarms() if a.alarm_id == alarm_id)


def test_a_technical_alarm_needs_a_login(
    qtbot: QtBot, station: tuple[MainWindow, CoreWorker], actions: ActionLayer, audit: AuditWriter
) -> None:
    window, core = station
    core.sound_problem("no audio output")  # a technical alarm of the station
    window.paint_frame()
    [alarm] = [a for a in window.alarm_list.alarms() if a.kind is AlarmKind.TECHNICAL]
    dialog = ask(qtbot, window, alarm.alarm_id)
    assert not dialog.emergency.isEnabled()  # said as the dialog opens
    assert "only an alarm of a patient" in dialog.emergency_note.text()
    refused = actions.emergency_acknowledge(alarm.alarm_id, REASON)  # the layer checks anyway
    assert "only an alarm of a patient" in refused
    assert state(window, alarm.alarm_id) is AlarmState.ACTIVE
    dialog.user.setCurrentText("ann")
    dialog.secret.setText(PASSWORD)
    dialog.submit()  # the login acknowledges it in ann's name
    qtbot.waitUntil(lambda: state(window, alarm.alarm_id) is AlarmState.ACKNOWLEDGED)
    [row] = [r for r in records(audit) if r["action"] == "alarm.emergency_acknowledge"]
    assert (row["outcome"], row["target"]) == ("failure", alarm.alarm_id)
    assert "only an alarm of a patient" in str(row["details"]["refused"])  # type: ignore[index]


def test_three_in_ten_minutes_then_the_login(
    qtbot: QtBot,
    station: tuple[MainWindow, CoreWorker],
    actions: ActionLayer,
    audit: AuditWriter,
    clock: FakeClock,
) -> None:
    window, core = station
    for n in range(1, 5):
        core.on_accepted(accepted(f"mon-{n}", clock.now, heartrate=160))
    window.paint_frame()
    ids = [a.alarm_id for a in window.alarm_list.alarms() if a.parameter == "heartrate"]
    assert len(ids) == 4
    for alarm_id in ids[:3]:
        dialog = ask(qtbot, window, alarm_id)
        dialog.reason.setText(REASON)
        dialog.emergency.click()
        assert dialog.emergency_done
        assert state(window, alarm_id) is AlarmState.ACKNOWLEDGED
        clock.now += 60
    dialog = ask(qtbot, window, ids[3])
    assert not dialog.emergency.isEnabled()
    assert "3 emergency acknowledges in the last 10 min" in dialog.emergency_note.text()
    dialog.reject()
    assert "log in" in actions.emergency_acknowledge(ids[3], REASON)  # refused, audited
    assert state(window, ids[3]) is AlarmState.ACTIVE
    clock.now += 600 - 3 * 60  # the first one leaves the ten minutes
    assert actions.emergency_acknowledge(ids[3], REASON) == ""
    assert state(window, ids[3]) is AlarmState.ACKNOWLEDGED
    rows = [r for r in records(audit) if r["action"] == "alarm.emergency_acknowledge"]
    assert [(r["outcome"], r["target"]) for r in rows] == [
        *[("success", alarm_id) for alarm_id in ids[:3]],
        ("failure", ids[3]),
        ("success", ids[3]),
    ]
    assert {r["actor"] for r in rows} == {EMERGENCY_USER}
    assert "log in" in str(rows[3]["details"]["refused"])  # type: ignore[index]


def test_a_refusal_at_the_click_is_said_in_the_dialog(
    qtbot: QtBot, station: tuple[MainWindow, CoreWorker], actions: ActionLayer, clock: FakeClock
) -> None:
    window, core = station
    for n in range(1, 5):
        core.on_accepted(accepted(f"mon-{n}", clock.now, heartrate=160))
    window.paint_frame()
    ids = [a.alarm_id for a in window.alarm_list.alarms() if a.parameter == "heartrate"]
    dialog = ask(qtbot, window, ids[3])  # opened while emergency acknowledges are allowed
    assert dialog.emergency.isEnabled()
    for alarm_id in ids[:3]:  # meanwhile, elsewhere on the screen
        assert actions.emergency_acknowledge(alarm_id, REASON) == ""
    dialog.reason.setText(REASON)
    dialog.emergency.click()
    assert not dialog.emergency_done
    assert dialog.isVisible()  # the login is still there to use
    assert "3 emergency acknowledges" in dialog.message.text()
    assert state(window, ids[3]) is AlarmState.ACTIVE
