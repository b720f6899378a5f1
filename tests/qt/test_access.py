"""Roles, the action layer and the station lock (issue 5), with a real audit file.

The role × action table is written out here from the issue's text, not imported from the code, so
a change to the code's table shows up as a failure. One action is added to the issue's list:
``export_data`` (trend and alarm-history CSV), for nurses and auditors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.alarms import AlarmState
from station.domain.roles import EMERGENCY_USER, Action, Role
from station.presenters.actions import ActionLayer
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.services.storage.accounts import Accounts
from station.services.storage.trends import TrendSample, TrendStore
from station.ui.login_dialog import LoginDialog
from station.ui.main_window import MainWindow
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.choosers import choose
from tests.qt.wiring import Screen, Wiring

PASSWORD = "a long password"
EXPECTED = {
    Role.WARD_STAFF: {Action.VIEW},
    Role.NURSE: {
        Action.VIEW,
        Action.ACKNOWLEDGE,
        Action.PAUSE_AUDIO,
        Action.CHANGE_LIMITS,
        Action.EXPORT_DATA,
        Action.PATIENTS,
    },
    Role.ADMIN: {Action.VIEW, Action.SETTINGS, Action.USERS, Action.DEVICES, Action.PATIENTS},
    Role.AUDITOR: {Action.VIEW, Action.AUDIT_EXPORT, Action.EXPORT_DATA},
}
USERS = {
    Role.ADMIN: "root-admin",
    Role.WARD_STAFF: "wes",
    Role.NURSE: "ann",
    Role.AUDITOR: "aud",
}


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
    for role, name in USERS.items():  # the admin first
        accounts.create(name, role, PASSWORD)
    layer = ActionLayer(accounts, audit, "ward-test", lock_after_s=300, clock=clock)
    yield layer
    layer.shutdown()


def records(audit: AuditWriter) -> list[dict[str, object]]:
    assert audit.close(5.0)
    return [json.loads(line) for line in audit.path.read_text().splitlines()]


def log_in(qtbot: QtBot, actions: ActionLayer, name: str, secret: str = PASSWORD) -> None:
    with qtbot.waitSignal(actions.session_changed, timeout=5000):
        actions.login(name, secret)


def test_every_role_may_do_exactly_what_the_issue_says_and_each_denial_is_audited(
    qtbot: QtBot, actions: ActionLayer, audit: AuditWriter
) -> None:
    denied: list[tuple[str, str]] = []
    for role, name in USERS.items():
        log_in(qtbot, actions, name)
        got = {a for a in Action if actions.authorize(a, "Bed 1") is not None}
        assert got == EXPECTED[role], role
        denied += [(name, a.value) for a in Action if a not in EXPECTED[role]]
    actions.lock()
    assert {a for a in Action if actions.authorize(a) is not None} == {Action.VIEW}
    denied += [("nobody logged in", a.value) for a in Action if a is not Action.VIEW]
    audited = [
        (r["actor"], r["details"]["action"])  # type: ignore[index]
        for r in records(audit)
        if r["action"] == "access.denied"
    ]
    assert audited == denied
    assert len(audited) == 5 + 9 + 4 + 7 + 9  # admin, ward staff, nurse, auditor, locked


def test_the_action_layer_forwards_only_what_the_role_allows(
    qtbot: QtBot, actions: ActionLayer
) -> None:
    acks: list[tuple[str, str]] = []
    limits: list[str] = []
    actions.acknowledge.connect(lambda alarm_id, user: acks.append((alarm_id, user)))
    actions.limits.connect(lambda bed, *_rest: limits.append(bed))
    asked: list[str] = []
    actions.login_required.connect(lambda action, _request: asked.append(action))
    log_in(qtbot, actions, "aud")  # an auditor changes nothing
    actions.on_acknowledge("alarm-1", "someone typed in the UI")
    actions.on_limits("Bed 1", {}, None, "someone")
    assert actions.audio_gate() is None
    assert (acks, limits) == ([], [])
    assert asked == ["acknowledge", "change_limits", "pause_audio"]
    log_in(qtbot, actions, "ann")
    actions.on_acknowledge("alarm-1", "ignored: the session says who")
    actions.on_limits("Bed 1", {}, None, "ignored")
    assert actions.audio_gate() == "ann"
    assert acks == [("alarm-1", "ann")]
    assert limits == ["Bed 1"]


def test_a_failed_login_is_audited_without_the_password(
    qtbot: QtBot, actions: ActionLayer, audit: AuditWriter
) -> None:
    with qtbot.waitSignal(actions.login_failed, timeout=5000) as failed:
        actions.login("ann", "not the password")
    assert failed.args == ["unknown user or wrong password"]
    assert actions.session.user is None
    text = audit.path.parent.joinpath("audit.jsonl")
    rows = records(audit)
    [row] = [r for r in rows if r["action"] == "session.login"]
    assert (row["actor"], row["outcome"]) == ("ann", "failure")
    assert "not the password" not in text.read_text()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return from_mapping(
        {
            "station": {"data_dir": str(tmp_path / "data")},
            "ward": {"beds": 4, "devices": {"mon-1": 1}},
        }
    )


@pytest.fixture
def screen(
    wire: Wiring, settings: Settings, clock: FakeClock, audit: AuditWriter, actions: ActionLayer
) -> Screen:
    """Window, core and admin dialogs wired as the app wires them: through the action layer."""
    return wire(settings, clock, audit, actions=actions, user="ann")


@pytest.fixture
def station(screen: Screen) -> tuple[MainWindow, CoreWorker]:
    assert screen.core is not None
    return screen.window, screen.core


def _lock_by_inactivity(qtbot: QtBot, actions: ActionLayer, clock: FakeClock) -> None:
    log_in(qtbot, actions, "ann")
    clock.now += 299
    actions.check_idle()
    assert actions.session.user == "ann"
    clock.now += 2
    actions.check_idle()
    assert actions.session.user is None


def _raise_alarm(window: MainWindow, core: CoreWorker, clock: FakeClock) -> str:
    core.on_accepted(accepted("mon-1", clock.now, heartrate=160))
    window.paint_frame()
    window.audio.tick()
    [alarm] = [a for a in window.alarm_list.alarms() if a.parameter == "heartrate"]
    return alarm.alarm_id


def _ask_to_acknowledge(qtbot: QtBot, window: MainWindow, alarm_id: str) -> LoginDialog:
    window.alarm_list.table.selectRow(0)
    assert window.alarm_list.selected_id() == alarm_id
    window.alarm_list.acknowledge_selected()
    prompt = window.login_prompt
    assert prompt is not None
    qtbot.waitUntil(lambda: prompt.dialog is not None, timeout=2000)
    dialog = prompt.dialog
    assert dialog is not None
    assert dialog.isVisible()
    return dialog


def test_inactivity_locks_yet_a_new_alarm_shows_and_sounds_and_asks_for_a_reason(
    qtbot: QtBot,
    station: tuple[MainWindow, CoreWorker],
    actions: ActionLayer,
    clock: FakeClock,
    audit: AuditWriter,
) -> None:
    window, core = station
    _lock_by_inactivity(qtbot, actions, clock)
    assert window.header.user_label.text() == "LOCKED — actions need a login"
    alarm_id = _raise_alarm(window, core, clock)
    assert window.tiles["Bed 1"].banner.text().startswith("***")  # shown while locked
    assert window.audio.last_cue is not None  # and sounding
    assert window.audio.last_cue.priority.value == "high"
    dialog = _ask_to_acknowledge(qtbot, window, alarm_id)
    assert window.alarm_list.alarms()[0].state is AlarmState.ACTIVE  # nothing acknowledged yet
    dialog.reason.setText("no")  # too short: refused
    dialog.emergency.click()
    assert "reason" in dialog.message.text()
    dialog.reason.setText("patient crashing, nurse gloved")
    dialog.emergency.click()
    acked = window.alarm_list.alarms()[0]
    assert (acked.state, acked.by) == (AlarmState.ACKNOWLEDGED, EMERGENCY_USER)
    rows = records(audit)
    denied = [r for r in rows if r["action"] == "access.denied"]
    assert [r["details"]["action"] for r in denied] == ["acknowledge"]  # type: ignore[index]
    [emergency] = [r for r in rows if r["action"] == "alarm.emergency_acknowledge"]
    assert emergency["details"]["reason"] == "patient crashing, nurse gloved"  # type: ignore[index]
    assert emergency["target"] == alarm_id
    locks = [r for r in rows if r["action"] == "session.lock"]
    assert locks[0]["details"] == {"reason": "inactive 300 s"}


def test_while_locked_logging_in_acknowledges_as_that_nurse(
    qtbot: QtBot, station: tuple[MainWindow, CoreWorker], actions: ActionLayer, clock: FakeClock
) -> None:
    window, core = station
    _lock_by_inactivity(qtbot, actions, clock)
    alarm_id = _raise_alarm(window, core, clock)
    dialog = _ask_to_acknowledge(qtbot, window, alarm_id)
    dialog.user.setCurrentText("ann")
    dialog.secret.setText(PASSWORD)
    dialog.submit()
    assert dialog.secret.text() == ""  # not kept in the widget
    qtbot.waitUntil(lambda: window.alarm_list.alarms()[0].state is AlarmState.ACKNOWLEDGED)
    assert window.alarm_list.alarms()[0].by == "ann"
    assert window.header.user_label.text() == "User: ann (nurse)"


def test_pausing_the_audio_while_locked_asks_for_a_login(
    qtbot: QtBot, station: tuple[MainWindow, CoreWorker], actions: ActionLayer, clock: FakeClock
) -> None:
    window, core = station
    _lock_by_inactivity(qtbot, actions, clock)
    _raise_alarm(window, core, clock)
    window.audio.pause_button.click()
    assert window.audio.policy.pause_remaining() == 0  # not paused
    prompt = window.login_prompt
    assert prompt is not None
    qtbot.waitUntil(lambda: prompt.dialog is not None, timeout=2000)


def test_plain_mqtt_to_another_host_is_shown_for_as_long_as_it_lasts(
    qtbot: QtBot, tmp_path: Path
) -> None:
    remote = from_mapping(
        {
            "station": {"data_dir": str(tmp_path)},
            "mqtt": {"host": "broker.ward.example", "allow_plain_remote": True},
        }
    )
    window = MainWindow(remote, "ann", lambda: None)
    qtbot.addWidget(window)
    assert window.plain_warning is not None
    assert "UNENCRYPTED MQTT to broker.ward.example" in window.plain_warning.text()
    local = MainWindow(from_mapping({"station": {"data_dir": str(tmp_path)}}), "ann", lambda: None)
    qtbot.addWidget(local)
    assert local.plain_warning is None


def test_an_admin_dialog_closes_when_the_station_locks(
    qtbot: QtBot, screen: Screen, actions: ActionLayer
) -> None:
    log_in(qtbot, actions, "root-admin")
    menu = screen.window.header.manage_button.menu()
    [users] = [entry for entry in menu.actions() if entry.text() == "Users…"]
    users.trigger()  # Manage ▾ Users…
    [dialog] = screen.dialogs.kept
    assert dialog.isVisible()
    actions.lock()
    assert not dialog.isVisible()  # its authority ended with the session
    assert screen.dialogs.kept == ()


def test_resuming_the_audio_while_locked_is_audited_as_nobody(
    qtbot: QtBot,
    station: tuple[MainWindow, CoreWorker],
    actions: ActionLayer,
    clock: FakeClock,
    audit: AuditWriter,
) -> None:
    window, core = station
    log_in(qtbot, actions, "ann")
    _raise_alarm(window, core, clock)
    window.audio.pause_button.click()  # ann pauses
    actions.lock()
    window.audio.pause_button.click()  # anyone may resume
    rows = [r for r in records(audit) if r["action"].startswith("alarm.audio")]  # type: ignore[union-attr]
    assert [(r["action"], r["actor"], r["role"]) for r in rows] == [
        ("alarm.audio_pause", "ann", "nurse"),
        ("alarm.audio_resume", "nobody (station locked)", "none"),
    ]


def test_a_trend_export_needs_a_login_and_names_who_exported(
    qtbot: QtBot,
    wire: Wiring,
    settings: Settings,
    clock: FakeClock,
    actions: ActionLayer,
    audit: AuditWriter,
    tmp_path: Path,
) -> None:
    store = TrendStore(tmp_path / "trends.sqlite", clock=clock)
    store.open()
    store.add([TrendSample("Bed 1", "mon-1", round((clock.now - 60) * 1000), {"heartrate": 70})])
    window = wire(
        settings, clock, audit, actions=actions, user="ann", core=False, trends=store
    ).window
    exported: list[tuple[str, str, int, str]] = []
    window.trends_exported.connect(lambda *args: exported.append(args))
    target = tmp_path / "out.csv"
    try:
        window.tiles["Bed 1"].trends_wanted.emit("Bed 1")  # the tile's Trends… link
        view = window.bed_windows.trend_views["Bed 1"]
        qtbot.waitUntil(lambda: view.data is not None, timeout=5000)
        view._ask_and_export()  # locked: refused, nothing written
        assert not view.findChildren(QFileDialog)  # refused before any chooser opens
        assert exported == []
        log_in(qtbot, actions, "ann")
        view._ask_and_export()
        choose(view, target)
        qtbot.waitUntil(target.exists, timeout=5000)  # written on the reports worker
        qtbot.waitUntil(lambda: bool(exported), timeout=5000)
        assert exported == [("Bed 1", str(target), 1, "ann")]
    finally:
        window.stop_timers()
        store.close()
    denied = [r for r in records(audit) if r["action"] == "access.denied"]
    assert [r["details"]["action"] for r in denied] == ["export_data"]  # type: ignore[index]


def _raise_two_on_bed_1(window: MainWindow, core: CoreWorker, clock: FakeClock) -> set[str]:
    core.on_accepted(accepted("mon-1", clock.now, heartrate=160, temperature=38.9))
    window.paint_frame()
    waiting = {a.alarm_id for a in window.alarm_list.alarms() if a.bed == "Bed 1"}
    assert len(waiting) == 2
    return waiting


def test_acknowledge_bed_acknowledges_every_alarm_of_that_bed_in_one_request(
    qtbot: QtBot, station: tuple[MainWindow, CoreWorker], actions: ActionLayer, clock: FakeClock
) -> None:
    window, core = station
    log_in(qtbot, actions, "ann")
    waiting = _raise_two_on_bed_1(window, core, clock)
    window.alarm_list.table.selectRow(1)
    assert window.alarm_list.ack_bed.isEnabled()
    qtbot.mouseClick(window.alarm_list.ack_bed, Qt.MouseButton.LeftButton)
    acked = {a.alarm_id: (a.state, a.by) for a in window.alarm_list.alarms()}
    assert acked == dict.fromkeys(waiting, (AlarmState.ACKNOWLEDGED, "ann"))
    window.paint_frame()
    window.alarm_list.table.selectRow(0)
    assert not window.alarm_list.ack_bed.isEnabled()  # nothing of Bed 1 waits any more


def test_while_locked_acknowledge_bed_asks_once_and_the_login_acknowledges_all(
    qtbot: QtBot,
    station: tuple[MainWindow, CoreWorker],
    actions: ActionLayer,
    clock: FakeClock,
    audit: AuditWriter,
) -> None:
    window, core = station
    _lock_by_inactivity(qtbot, actions, clock)
    waiting = _raise_two_on_bed_1(window, core, clock)
    window.tiles["Bed 1"].acknowledge_bed_wanted.emit("Bed 1")  # the tile's menu entry
    prompt = window.login_prompt
    assert prompt is not None
    dialog = prompt.dialog
    assert dialog is not None
    assert "Acknowledge all 2 alarms of Bed 1?" in dialog.why.text()
    assert {a.state for a in window.alarm_list.alarms()} == {AlarmState.ACTIVE}
    dialog.user.setCurrentText("ann")
    dialog.secret.setText(PASSWORD)
    dialog.submit()
    qtbot.waitUntil(
        lambda: {a.state for a in window.alarm_list.alarms()} == {AlarmState.ACKNOWLEDGED}
    )
    assert {a.alarm_id for a in window.alarm_list.alarms() if a.by == "ann"} == waiting
    denied = [r for r in records(audit) if r["action"] == "access.denied"]
    assert [(r["target"], r["details"]["action"]) for r in denied] == [("Bed 1", "acknowledge")]  # type: ignore[index]
