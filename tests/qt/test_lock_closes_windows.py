"""Windows that act in a user's name end with that user's session.

The auditor's view of the trail stayed open after the station locked: anyone walking up could
export a signed bundle in the auditor's name. Now the view closes when the station locks or
changes hands, like every admin dialog; an export asked of a view still open after the lock goes
through the action layer's check (a login), and only the view's owner exports from it. A file
chooser opened for an export (alarm history, shift report) closes at the lock too: a path chosen
after it would export in the name of the nurse who clicked Export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QFileDialog, QMainWindow
from pytestqt.qtbot import QtBot
from shiboken6 import Shiboken

from station.config.settings import Settings, from_mapping
from station.domain.roles import Action, Role
from station.presenters.actions import ActionLayer
from station.services.audit.snapshot import AuditSnapshot
from station.services.audit.writer import AuditWriter
from station.services.storage.accounts import Accounts
from station.ui.admin_dialogs import AdminDialogs
from station.ui.audit.view import AuditView
from tests.fakes import FakeClock
from tests.qt.choosers import open_chooser
from tests.qt.wiring import Wiring

PASSWORD = "a long password"
WAIT_MS = 5000


class Source:
    """An audit source that names the user it exports for, and writes nothing."""

    def __init__(self, user: str, exports: list[tuple[str, Path]]) -> None:
        self.user, self._exports = user, exports

    def load(self) -> AuditSnapshot:
        return AuditSnapshot([], True, "OK 0 records, chain intact", "SHA256:test", None)

    def export(self, folder: Path, since: float | None, until: float | None) -> str:
        self._exports.append((self.user, folder))
        return f"OK 0 records exported to {folder}"


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
    for name, role in (
        ("root-admin", Role.ADMIN),
        ("aud", Role.AUDITOR),
        ("aud2", Role.AUDITOR),
        ("ann", Role.NURSE),
    ):
        accounts.create(name, role, PASSWORD)
    layer = ActionLayer(accounts, audit, "ward-test", lock_after_s=300, clock=clock)
    yield layer
    layer.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return from_mapping({"station": {"data_dir": str(tmp_path / "data")}, "ward": {"beds": 2}})


def log_in(qtbot: QtBot, actions: ActionLayer, name: str) -> None:
    with qtbot.waitSignal(actions.session_changed, timeout=WAIT_MS):
        actions.login(name, PASSWORD)


def records(audit: AuditWriter) -> list[dict[str, object]]:
    assert audit.close(5.0)
    return [json.loads(line) for line in audit.path.read_text().splitlines()]


def loaded(qtbot: QtBot, view: AuditView) -> None:
    qtbot.waitUntil(lambda: view.snapshot is not None and not view.loading, timeout=WAIT_MS)


def test_the_audit_view_and_its_chooser_close_when_the_station_locks(
    qtbot: QtBot, actions: ActionLayer, settings: Settings
) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    exports: list[tuple[str, Path]] = []
    dialogs = AdminDialogs(
        window, actions, settings, audit_source=lambda user: Source(user, exports)
    )
    log_in(qtbot, actions, "aud")
    view = dialogs.open(Action.AUDIT_EXPORT.value, "audit_export")
    assert isinstance(view, AuditView)
    assert view.isVisible()
    loaded(qtbot, view)
    view.export_button.click()  # the folder chooser opens over the view
    chooser = open_chooser(view)
    actions.check_idle()  # not idle yet: nothing happens
    assert view.isVisible()
    actions.lock()  # the auditor walks away
    assert not Shiboken.isValid(chooser) or not chooser.isVisible()
    assert not Shiboken.isValid(view) or not view.isVisible()
    assert not [d for d in window.findChildren(QFileDialog) if d.isVisible()]
    assert exports == []


def test_an_export_after_the_lock_needs_a_login_and_the_views_owner(
    qtbot: QtBot, actions: ActionLayer, audit: AuditWriter, tmp_path: Path
) -> None:
    exports: list[tuple[str, Path]] = []
    log_in(qtbot, actions, "aud")
    view = AuditView(Source("aud", exports))  # as the controller opens it, kept open here
    view.gate = partial(actions.request, Action.AUDIT_EXPORT, "audit", "audit_export")
    view.owner = "aud"
    qtbot.addWidget(view)
    loaded(qtbot, view)
    asked: list[str] = []
    actions.login_required.connect(lambda action, _request: asked.append(action))
    actions.lock()
    assert not view.export_to(tmp_path / "bundle")  # a folder chosen after the lock
    assert "needs an auditor's login" in view.export_status.text()
    assert asked == ["audit_export"]  # the login is asked for
    log_in(qtbot, actions, "aud2")  # another auditor: not in aud's name
    assert not view.export_to(tmp_path / "bundle")
    assert "in the name of aud" in view.export_status.text()
    assert exports == []
    log_in(qtbot, actions, "aud")
    with qtbot.waitSignal(view.exported, timeout=WAIT_MS):
        assert view.export_to(tmp_path / "bundle")
    assert exports == [("aud", tmp_path / "bundle")]
    view.close()
    denied = [r for r in records(audit) if r["action"] == "access.denied"]
    assert [(r["actor"], r["details"]["action"]) for r in denied] == [  # type: ignore[index]
        ("nobody logged in", "audit_export")
    ]


@pytest.mark.parametrize("window_kind", ["history", "report"])
def test_an_export_chooser_open_at_the_lock_closes(
    qtbot: QtBot,
    wire: Wiring,
    settings: Settings,
    clock: FakeClock,
    audit: AuditWriter,
    actions: ActionLayer,
    window_kind: str,
) -> None:
    window = wire(settings, clock, audit, actions=actions, user="ann", core=False).window
    try:
        log_in(qtbot, actions, "ann")
        bed_windows = window.bed_windows
        shown: QDialog
        if window_kind == "history":
            bed_windows.open_history()
            history = bed_windows.history_dialog
            assert history is not None
            history.export_button.click()
            shown = history
        else:
            bed_windows.open_report()
            report = bed_windows.report_dialog
            assert report is not None
            report.save_button.click()
            shown = report
        chooser = open_chooser(shown)  # ann's export: a path is being chosen
        actions.lock()
        assert not Shiboken.isValid(chooser) or not chooser.isVisible()
        assert shown.isVisible()  # the view itself shows the ward: it stays
        assert not [d for d in shown.findChildren(QFileDialog) if d.isVisible()]
    finally:
        window.stop_timers()
