"""A failed login that locks an account is audited (``account.lockout``) and raises a technical
alarm of the station through the action layer's ``station_alarm`` (low while the lockout ends by
itself, medium once an admin must unlock); the alarm ends when the user logs in or an admin
clears the account (the users dialog unlocks on the accounts' worker thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.domain.alarms import AlarmEngine, AlarmKind, AlarmState, Priority
from station.domain.roles import Role
from station.presenters.actions import LOCKOUT_ALARM, ActionLayer
from station.services.audit.writer import AuditWriter
from station.services.storage.accounts import BACKOFF_MAX_S, Accounts
from tests.fakes import FakeClock

PASSWORD = "a long password"
WAIT_MS = 5000
Emitted = tuple[str, bool, str, str]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def audit(tmp_path: Path, clock: FakeClock) -> Iterator[AuditWriter]:
    writer = AuditWriter(tmp_path / "audit", clock=clock)
    writer.start()
    yield writer
    writer.close(5.0)


@pytest.fixture
def accounts(tmp_path: Path, clock: FakeClock) -> Accounts:
    a = Accounts(tmp_path / "users.json", lockout_s=900, clock=clock, scrypt_n=2**10)
    a.create("root-admin", Role.ADMIN, PASSWORD)
    a.create("ann", Role.NURSE, PASSWORD, pin="4321")
    return a


@pytest.fixture
def actions(accounts: Accounts, audit: AuditWriter, clock: FakeClock) -> Iterator[ActionLayer]:
    layer = ActionLayer(accounts, audit, "ward-test", lock_after_s=300, clock=clock)
    yield layer
    layer.shutdown()


@pytest.fixture
def alarms(actions: ActionLayer) -> list[Emitted]:
    got: list[Emitted] = []
    actions.station_alarm.connect(lambda *args: got.append(args))
    return got


def fail(qtbot: QtBot, actions: ActionLayer, clock: FakeClock, times: int) -> None:
    for _ in range(times):
        with qtbot.waitSignal(actions.login_failed, timeout=WAIT_MS):
            actions.login("ann", "0000", pin=True)
        clock.now += BACKOFF_MAX_S


def records(audit: AuditWriter) -> list[dict[str, object]]:
    assert audit.close(5.0)
    return [json.loads(line) for line in audit.path.read_text().splitlines()]


def test_a_lockout_is_audited_and_raises_a_technical_alarm_until_she_logs_in(
    qtbot: QtBot,
    actions: ActionLayer,
    audit: AuditWriter,
    clock: FakeClock,
    alarms: list[Emitted],
) -> None:
    fail(qtbot, actions, clock, 4)
    assert alarms == []
    fail(qtbot, actions, clock, 1)
    parameter = LOCKOUT_ALARM + "ann"
    message = "Account ann locked after 5 failed logins"
    assert alarms == [(parameter, False, "low", ""), (parameter, True, "low", message)]
    clock.now += 900
    fail(qtbot, actions, clock, 5)  # the count went on: a second, longer lockout
    assert alarms[-1] == (parameter, True, "low", "Account ann locked after 10 failed logins")
    clock.now += 3600
    fail(qtbot, actions, clock, 5)
    assert alarms[-1] == (
        parameter,
        True,
        "medium",
        "Account ann locked after 15 failed logins: an admin must unlock it",
    )
    alarms.clear()
    actions.accounts.unlock("ann")  # an admin, here on the GUI thread: queued all the same
    qtbot.waitUntil(lambda: bool(alarms), timeout=WAIT_MS)
    assert alarms == [(parameter, False, "low", "")]
    alarms.clear()
    with qtbot.waitSignal(actions.session_changed, timeout=WAIT_MS):
        actions.login("ann", PASSWORD)
    assert alarms == []  # ended once; not again
    lockouts = [r for r in records(audit) if r["action"] == "account.lockout"]
    who = [(r["actor"], r["role"], r["target"], r["outcome"]) for r in lockouts]
    assert who == [("station", "system", "ann", "failure")] * 3
    details = [r["details"] for r in lockouts]
    assert [(d["failures"], d["lockout"], d["method"]) for d in details] == [  # type: ignore[index]
        (5, 1, "pin"),
        (10, 2, "pin"),
        (15, 3, "pin"),
    ]
    assert details[2]["until"] == "admin unlock"  # type: ignore[index]
    assert all(str(d["until"]).endswith("Z") for d in details[:2])  # type: ignore[index]


def test_what_the_signal_carries_is_a_technical_alarm_of_the_station(
    qtbot: QtBot, actions: ActionLayer, clock: FakeClock, alarms: list[Emitted]
) -> None:
    """The payload as the core's alarm engine takes it (what the core's slot hands on)."""
    engine = AlarmEngine({}, clock)
    fail(qtbot, actions, clock, 5)
    raised = [
        a
        for parameter, present, priority, message in alarms
        for a in engine.technical("", "", parameter, present, Priority(priority), message)
    ]
    [alarm] = raised
    assert (alarm.kind, alarm.bed, alarm.priority) == (AlarmKind.TECHNICAL, "", Priority.LOW)
    assert alarm.message == "Account ann locked after 5 failed logins"
    with qtbot.waitSignal(actions.station_alarm, timeout=WAIT_MS) as ended:
        actions.accounts.unlock("ann")
    parameter, present, priority, message = ended.args
    [gone] = engine.technical("", "", parameter, present, Priority(priority), message)
    assert gone.state is AlarmState.CLEARED


def test_an_unlock_on_the_users_worker_ends_the_alarm(
    qtbot: QtBot, actions: ActionLayer, clock: FakeClock, alarms: list[Emitted]
) -> None:
    fail(qtbot, actions, clock, 5)
    alarms.clear()
    worker = threading.Thread(target=actions.accounts.unlock, args=("ann",), name="accounts")
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: bool(alarms), timeout=WAIT_MS)
    assert alarms == [(LOCKOUT_ALARM + "ann", False, "low", "")]


def test_a_login_after_the_lockout_ends_the_alarm(
    qtbot: QtBot, actions: ActionLayer, clock: FakeClock, alarms: list[Emitted]
) -> None:
    fail(qtbot, actions, clock, 5)
    clock.now += 900
    alarms.clear()
    with qtbot.waitSignal(actions.session_changed, timeout=WAIT_MS):
        actions.login("ann", "4321", pin=True)
    assert alarms == [(LOCKOUT_ALARM + "ann", False, "low", "")]


def test_after_a_restart_a_standing_lockout_raises_its_alarm_again_until_cleared(
    qtbot: QtBot,
    tmp_path: Path,
    actions: ActionLayer,
    audit: AuditWriter,
    clock: FakeClock,
) -> None:
    for wait in (900, 3600, 0):  # three lockouts, each waited out: the last needs an admin
        fail(qtbot, actions, clock, 5)
        clock.now += wait
    actions.shutdown()
    # The station restarts: a new action layer on the same accounts file.
    again = Accounts(tmp_path / "users.json", lockout_s=900, clock=clock, scrypt_n=2**10)
    layer = ActionLayer(again, audit, "ward-test", lock_after_s=300, clock=clock)
    try:
        got: list[Emitted] = []
        layer.station_alarm.connect(lambda *args: got.append(args))
        layer.raise_standing_lockouts()
        parameter = LOCKOUT_ALARM + "ann"
        message = "Account ann locked after 15 failed logins: an admin must unlock it"
        assert got == [(parameter, True, "medium", message)]
        got.clear()
        again.unlock("ann")
        qtbot.waitUntil(lambda: bool(got), timeout=WAIT_MS)
        assert got == [(parameter, False, "low", "")]
    finally:
        layer.shutdown()


def test_a_timed_lockout_from_before_a_restart_is_raised_low(
    qtbot: QtBot, tmp_path: Path, actions: ActionLayer, audit: AuditWriter, clock: FakeClock
) -> None:
    fail(qtbot, actions, clock, 5)
    again = Accounts(tmp_path / "users.json", lockout_s=900, clock=clock, scrypt_n=2**10)
    layer = ActionLayer(again, audit, "ward-test", lock_after_s=300, clock=clock)
    try:
        got: list[Emitted] = []
        layer.station_alarm.connect(lambda *args: got.append(args))
        layer.raise_standing_lockouts()
        message = "Account ann locked after 5 failed logins (before the restart)"
        assert got == [(LOCKOUT_ALARM + "ann", True, "low", message)]
        assert Accounts(tmp_path / "users.json").standing_lockouts()[0][1].until is not None
    finally:
        layer.shutdown()
