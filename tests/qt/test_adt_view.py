"""pytest-qt: what the admin and the nurse see of the ADT feed. Manage ▾ ADT messages… opens the
journal for an admin (audited as a read, refused to a nurse), lists each message with its ACK and
reason, names a patient as the tile does, follows new messages and ends the "refused" alarm once
shown; the admit dialog finds a patient the feed announced and fills the form from it, so the
nurse admits without typing name, MRN or birth date.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.domain.adt.feed import AdtFeed, Announced, Received
from station.domain.patients.records import Purpose
from station.domain.roles import Role
from station.presenters.actions import ActionLayer
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.storage.accounts import Accounts
from station.ui.adt_view import AdtMessagesDialog
from station.ui.alarm_strip import AlarmStrip
from station.ui.patient_dialog import PatientDialog
from tests.fakes import FakeClock
from tests.qt.wiring import Screen, Wiring

PASSWORD = "a long password"
ADMIN, NURSE = "root-admin", "ann"
BORN = date(1950, 1, 2)


@dataclass
class Folder:
    settings: Settings
    clock: FakeClock
    audit: AuditWriter
    admin: WardAdmin
    feed: AdtFeed
    wire: Wiring
    qtbot: QtBot
    data: Path
    layers: list[ActionLayer]

    def start(self, user: str) -> Screen:
        accounts = Accounts(self.data / "users.json", clock=self.clock, scrypt_n=2**10)
        if not accounts.has_users():
            accounts.create(ADMIN, Role.ADMIN, PASSWORD)
            accounts.create(NURSE, Role.NURSE, PASSWORD)
        actions = ActionLayer(accounts, self.audit, "ward-test", lock_after_s=300, clock=self.clock)
        self.layers.append(actions)
        with self.qtbot.waitSignal(actions.session_changed, timeout=5000):
            actions.login(user, PASSWORD)
        return self.wire(
            self.settings, self.clock, self.audit, actions=actions, admin=self.admin, core=False
        )

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
    admin = WardAdmin(settings, audit, clock=clock)
    feed = AdtFeed.empty()
    feed.state = "listening :2576"
    admin.adt_feed = feed
    here = Folder(settings, clock, audit, admin, feed, wire, qtbot, data, [])
    yield here
    for actions in here.layers:
        actions.shutdown(5.0)
    assert admin.stop(5.0)
    audit.close(5.0)


def open_from_menu(screen: Screen) -> None:
    menu = screen.window.header.manage_button.menu()
    [entry] = [a for a in menu.actions() if a.text() == "ADT messages…"]
    entry.trigger()


def cells(dialog: AdtMessagesDialog, col: int) -> list[str]:
    return [dialog.table.item(r, col).text() for r in range(dialog.table.rowCount())]


def test_the_admin_sees_each_message_and_the_patient_as_the_tile_shows_them(
    qtbot: QtBot, folder: Folder
) -> None:
    shown = folder.admin.admit_now("Bed 1", "Ada Shown", "M-1", BORN, "nurse")
    folder.admin.record_consent_now(
        shown, Purpose.DISPLAY, granted=True, given_by="patient", representative="", user="n"
    )
    hidden = folder.admin.admit_now("Bed 2", "Bea Hidden", "M-2", BORN, "nurse")
    now = folder.clock.now
    folder.feed.record(
        Received(now, "A01", "C-1", "Bed 1", "AA", "applied", "admitted", shown.patient_id)
    )
    folder.feed.record(
        Received(now + 1, "A01", "C-2", "Bed 2", "AA", "applied", "admitted", hidden.patient_id)
    )
    folder.feed.record(
        Received(now + 2, "A02", "C-3", "Bed 2", "AE", "refused", "Bed 2 is occupied")
    )
    seen: list[bool] = []
    folder.feed.on_seen = lambda: seen.append(True)
    screen = folder.start(ADMIN)
    open_from_menu(screen)
    dialog = screen.dialogs.adt_dialog
    assert isinstance(dialog, AdtMessagesDialog)
    assert dialog.isVisible()
    assert seen == [True]
    assert dialog.findChild(AlarmStrip) is not None
    assert cells(dialog, 7) == ["C-3", "C-2", "C-1"]
    assert cells(dialog, 3) == ["AE", "AA", "AA"]
    assert cells(dialog, 5)[0] == "Bed 2 is occupied"
    assert cells(dialog, 6) == ["", "Name hidden (no consent)", "Ada Shown"]
    assert "listening :2576" in dialog.summary.text()
    assert "1 of the 3 listed refused" in dialog.summary.text()
    folder.feed.record(Received(now + 3, "A03", "C-4", "Bed 1", "AA", "applied", "discharged"))
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 4, timeout=3000)
    reads = folder.records("patient.read")
    assert [(r["actor"], r["details"]) for r in reads] == [(ADMIN, {"view": "adt messages"})]


def test_a_nurse_is_refused_the_view(folder: Folder) -> None:
    screen = folder.start(NURSE)
    open_from_menu(screen)
    assert screen.dialogs.adt_dialog is None
    denied = folder.records("access.denied")
    assert [(r["actor"], r["target"]) for r in denied] == [(NURSE, "adt")]


def test_with_the_feed_off_the_admin_is_told(folder: Folder) -> None:
    folder.admin.adt_feed = None
    screen = folder.start(ADMIN)
    open_from_menu(screen)
    assert screen.dialogs.adt_dialog is None
    assert "ADT feed is off" in screen.window.statusBar().currentMessage()


def announce(feed: AdtFeed, mrn: str, name: str, bed: str | None) -> None:
    feed.census.announce(Announced(mrn, name, BORN, bed, "A01", 1.0))
    feed.touched()


def test_the_admit_dialog_admits_a_patient_looked_up_in_the_census(
    qtbot: QtBot, folder: Folder
) -> None:
    folder.admin.admit_now("Bed 1", "Already Here", "M-1", BORN, "nurse")
    announce(folder.feed, "M-1", "Already Here", "Bed 1")
    announce(folder.feed, "M-3", "Carla Elsewhere", "Bed 4")
    announce(folder.feed, "M-2", "Dora Forthisbed", "Bed 2")
    dialog = PatientDialog(folder.admin, "Bed 2", NURSE)
    qtbot.addWidget(dialog)
    lookup = dialog.lookup
    assert lookup is not None
    listed = [lookup.matches.item(r).text() for r in range(lookup.matches.count())]
    assert listed == [
        "Dora Forthisbed · MRN M-2 · 1950-01-02 · Bed 2 (A01)",
        "Carla Elsewhere · MRN M-3 · 1950-01-02 · Bed 4 (A01)",
    ]  # this bed's first; an admitted patient is not offered
    lookup.search.setText("carla")
    assert lookup.matches.count() == 1
    lookup.use()
    assert (dialog.name.text(), dialog.mrn.text()) == ("Carla Elsewhere", "M-3")
    assert dialog.birth.date().toPython() == BORN
    with qtbot.waitSignal(dialog.answered, timeout=5000) as got:
        dialog.admit()
    assert got.args == [True]
    patient = folder.admin.occupant("Bed 2")
    assert patient is not None
    assert (patient.name, patient.mrn, patient.admitted_by) == ("Carla Elsewhere", "M-3", NURSE)
    lookup.search.clear()
    qtbot.waitUntil(lambda: lookup.matches.count() == 1, timeout=3000)  # M-3 is admitted now


def test_without_the_feed_the_admit_dialog_has_no_lookup(qtbot: QtBot, folder: Folder) -> None:
    folder.admin.adt_feed = None
    dialog = PatientDialog(folder.admin, "Bed 2", NURSE)
    qtbot.addWidget(dialog)
    assert dialog.lookup is None
