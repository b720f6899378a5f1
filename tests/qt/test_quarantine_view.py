"""pytest-qt: the admin's quarantine view (issue 15, point 7).

Forged and malformed messages are parsed exactly as ingest parses them and handed to the core;
after a "restart" (a second window, core and store on the same data folder, as the station does)
the admin opens Manage ▾ Quarantine… and finds them by reason and by claimed device, with the
HTML an attacker put in a payload shown literally. The view is not modal, carries the ward's
alarm strip, reads the store only on its worker, follows new rejections, and is refused to a
nurse (audited) until an admin logs in.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain import ingest
from station.domain.messages import Rejection
from station.domain.roles import Role
from station.presenters.actions import ActionLayer
from station.services.audit.writer import AuditWriter
from station.services.storage.accounts import Accounts
from station.services.storage.quarantine_store import QUARANTINE_FILE, QuarantineStore
from station.ui.alarm_strip import AlarmStrip
from station.ui.quarantine_dialog import NONE_NAMED, THREAD_NAME, QuarantineDialog
from tests.fakes import FakeClock
from tests.payloads import FILTERS, vitals
from tests.qt.wiring import Screen, Wiring

PASSWORD = "a long password"
ADMIN, NURSE = "root-admin", "ann"
OWN = "healthcare/devices/{}/vitals"
HTML_DEVICE = "<i>rogue</i>"
HTML_VALUE = "<b>fast</b><img src=x>"


@dataclass
class Folder:
    """One data folder, its settings, clock and audit trail, and a way to start a station."""

    data: Path
    settings: Settings
    clock: FakeClock
    audit: AuditWriter
    wire: Wiring
    qtbot: QtBot
    layers: list[ActionLayer]
    stores: list[QuarantineStore]

    def start(self, user: str | None = ADMIN, *, kept: bool = True) -> Screen:
        """A window, core and quarantine store on this folder, as after a restart, with
        ``user`` logged in (None: the wiring's nurse that never locks)."""
        store = None
        if kept:
            store = QuarantineStore(self.data / QUARANTINE_FILE)
            store.open()
            self.stores.append(store)
        if user is None:
            return self.wire(self.settings, self.clock, self.audit, quarantine=store)
        accounts = Accounts(self.data / "users.json", clock=self.clock, scrypt_n=2**10)
        if not accounts.has_users():
            accounts.create(ADMIN, Role.ADMIN, PASSWORD)
            accounts.create(NURSE, Role.NURSE, PASSWORD)
        actions = ActionLayer(accounts, self.audit, "ward-test", lock_after_s=300, clock=self.clock)
        self.layers.append(actions)
        with self.qtbot.waitSignal(actions.session_changed, timeout=5000):
            actions.login(user, PASSWORD)
        return self.wire(self.settings, self.clock, self.audit, actions=actions, quarantine=store)

    def reject(self, screen: Screen, topic: str, raw: bytes) -> Rejection:
        """A message refused by ingest's own parser, handed to the core as the MQTT worker does."""
        result = ingest.parse(topic, raw, self.clock.now, FILTERS)
        assert isinstance(result, Rejection), result
        assert screen.core is not None
        screen.core.on_rejected(result)
        return result

    def records(self, action: str) -> list[dict[str, object]]:
        assert self.audit.close(5.0)
        lines = self.audit.path.read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["action"] == action]


@pytest.fixture
def folder(wire: Wiring, qtbot: QtBot, tmp_path: Path) -> Iterator[Folder]:
    data = tmp_path / "data"
    settings = from_mapping({"station": {"data_dir": str(data)}, "ward": {"beds": 4}})
    clock = FakeClock()
    audit = AuditWriter(data / "audit", clock=clock)
    audit.start()
    here = Folder(data, settings, clock, audit, wire, qtbot, [], [])
    yield here
    for actions in here.layers:
        actions.shutdown(5.0)
    for store in here.stores:
        store.close()
    audit.close(5.0)


def open_from_menu(screen: Screen) -> None:
    """Manage ▾ Quarantine…, as the admin clicks it."""
    menu = screen.window.header.manage_button.menu()
    [entry] = [a for a in menu.actions() if a.text() == "Quarantine…"]
    entry.trigger()


def shown(qtbot: QtBot, screen: Screen) -> QuarantineDialog:
    """The view the menu opened, once its first answer is on screen."""
    qtbot.waitUntil(lambda: screen.dialogs.quarantine_dialog is not None, timeout=5000)
    dialog = screen.dialogs.quarantine_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.page is not None and not dialog.busy, timeout=5000)
    return dialog


def column(dialog: QuarantineDialog, col: int) -> list[str]:
    table = dialog.table
    return [table.item(r, col).text() for r in range(table.rowCount())]


def counted(dialog: QuarantineDialog, which: str) -> list[tuple[str, str]]:
    table = dialog.reasons if which == "reason" else dialog.devices
    return [(table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())]


def test_rejections_survive_a_restart_and_show_by_reason_and_device(
    qtbot: QtBot, folder: Folder
) -> None:
    first = folder.start(None)  # the ward runs with a nurse at the station
    schema = folder.reject(
        first, OWN.format("mon-3"), vitals("mon-3", at=folder.clock.now, heartrate=HTML_VALUE)
    )
    forged = folder.reject(first, OWN.format("mon-1"), vitals(HTML_DEVICE, at=folder.clock.now))
    folder.clock.advance(5)
    folder.reject(first, OWN.format("mon-2"), b'{"device_id": "mon-2", ')  # cut short
    folder.reject(first, OWN.format("mon-3"), vitals("mon-3", heartrate="x"))
    assert (schema.reason, forged.reason, forged.device_id) == ("schema", "spoofed", HTML_DEVICE)
    assert HTML_VALUE in schema.excerpt
    assert first.core is not None
    first.core.shutdown()  # the station stops: the core writes what it staged

    again = folder.start(ADMIN)
    reads: list[str] = []
    store = folder.stores[-1]
    query = store.query

    def watched(*args: object, **kwargs: object) -> tuple[Rejection, ...]:
        reads.append(threading.current_thread().name)
        return query(*args, **kwargs)  # type: ignore[arg-type]

    store.query = watched  # type: ignore[method-assign]
    open_from_menu(again)
    dialog = shown(qtbot, again)
    assert reads == [THREAD_NAME]  # the GUI thread never touches SQLite

    assert dialog.isVisible()
    assert not dialog.isModal()  # the ward stays usable behind it
    assert dialog.findChild(AlarmStrip) is not None  # the ward's alarms stay in reach
    assert dialog in again.dialogs.kept  # closed with the session, like every admin dialog
    assert counted(dialog, "reason") == [("schema", "2"), ("json", "1"), ("spoofed", "1")]
    assert counted(dialog, "device") == [
        ("mon-3", "2"),
        (NONE_NAMED, "1"),
        (HTML_DEVICE, "1"),  # literally, not italic
    ]
    assert column(dialog, 1) == ["schema", "json", "spoofed", "schema"]  # newest first
    assert column(dialog, 2) == ["mon-3", NONE_NAMED, HTML_DEVICE, "mon-3"]
    assert column(dialog, 3)[1] == OWN.format("mon-2")
    assert column(dialog, 5)[3] == schema.excerpt  # the attacker's HTML, as typed
    assert HTML_VALUE in column(dialog, 5)[3]
    assert "4 rejected messages kept" in dialog.summary.text()

    dialog.set_filters("schema", None)
    qtbot.waitUntil(lambda: dialog.page is not None and dialog.page.reason == "schema")
    assert column(dialog, 1) == ["schema", "schema"]
    dialog.set_filters(None, "")  # the message that named no device
    qtbot.waitUntil(lambda: dialog.page is not None and dialog.page.device == "")
    assert column(dialog, 1) == ["json"]
    assert dialog.device_filter.currentText() == NONE_NAMED
    dialog.devices.cellClicked.emit(2, 0)  # a click on a device's count filters by it
    qtbot.waitUntil(lambda: dialog.page is not None and dialog.page.device == HTML_DEVICE)
    assert column(dialog, 2) == [HTML_DEVICE]
    assert dialog.device_filter.currentText() == HTML_DEVICE


def test_labels_show_plain_text_only(qtbot: QtBot, folder: Folder) -> None:
    screen = folder.start(ADMIN)
    open_from_menu(screen)
    dialog = shown(qtbot, screen)
    for label in (dialog.summary, dialog.message):
        assert label.textFormat().name == "PlainText"


def test_an_open_view_follows_new_rejections(qtbot: QtBot, folder: Folder) -> None:
    screen = folder.start(ADMIN)
    open_from_menu(screen)
    dialog = shown(qtbot, screen)
    assert dialog.table.rowCount() == 0
    assert screen.core is not None
    folder.reject(screen, OWN.format("mon-4"), b"not json")
    for _ in range(4):  # one second of the core's watch timer: written, then counted
        screen.core._on_timer()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=5000)
    assert column(dialog, 1) == ["json"]


def test_a_nurse_is_refused_and_the_admin_who_logs_in_gets_the_view(
    qtbot: QtBot, folder: Folder
) -> None:
    screen = folder.start(NURSE)
    open_from_menu(screen)
    assert screen.dialogs.quarantine_dialog is None
    assert screen.dialogs.kept == ()
    prompt = screen.window.login_prompt
    assert prompt is not None
    qtbot.waitUntil(lambda: prompt.dialog is not None, timeout=2000)
    login = prompt.dialog
    assert login is not None
    login.user.setCurrentText(ADMIN)
    login.secret.setText(PASSWORD)
    login.submit()  # the admin logs in where the nurse was refused: the view opens
    dialog = shown(qtbot, screen)
    assert dialog.isVisible()
    denied = folder.records("access.denied")
    assert [(r["actor"], r["target"], r["details"]) for r in denied] == [
        (NURSE, "quarantine", {"action": "devices", "reason": "role nurse"})
    ]


def test_without_a_store_the_admin_is_told_in_the_status_bar(qtbot: QtBot, folder: Folder) -> None:
    screen = folder.start(ADMIN, kept=False)
    open_from_menu(screen)
    assert screen.dialogs.quarantine_dialog is None
    assert "not kept" in screen.window.statusBar().currentMessage()
