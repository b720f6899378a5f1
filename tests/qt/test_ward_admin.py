"""pytest-qt: onboarding puts a device on its bed, unknown devices wait in the unassigned panel,
admit / transfer / discharge move what a bed shows, and the consent dialog records and withdraws.

The window, the core (driven directly, no thread) and the ward admin are wired as the app wires
them (the ``wire`` fixture); the registry and the encrypted patient table are real files in a
temporary data folder, the keyring the tests' memory one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytestqt.qtbot import QtBot

from station.config.credentials import use_memory_keyring
from station.config.settings import Settings, from_mapping
from station.domain import ingest
from station.domain.devices import RegistryError, sign_message
from station.domain.messages import Accepted
from station.domain.patients.records import Purpose
from station.domain.vouchers.model import VoucherCheck
from station.presenters.ward_admin import PATIENT_FILE, WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.services.storage.bed_limits_file import BED_LIMITS_FILE, BedLimitsFile
from station.services.storage.device_registry import REGISTRY_FILE, DeviceRegistry
from station.ui.consent_dialog import ConsentDialog
from station.ui.devices_dialog import DevicesDialog
from station.ui.main_window import MainWindow
from station.ui.onboarding_dialog import OnboardingDialog
from station.ui.patient_dialog import PatientDialog
from tests.device_kit import trusted_maker, voucher_for
from tests.fakes import FakeClock
from tests.payloads import FILTERS, vitals
from tests.qt.wiring import Wiring

NAME, MRN = "Zelda Quixote-Marchetti", "MRN-99017"
Answering = PatientDialog | ConsentDialog | OnboardingDialog | DevicesDialog


@dataclass
class Ward:
    window: MainWindow
    core: CoreWorker
    admin: WardAdmin
    audit: AuditWriter
    settings: Settings
    maker: Ed25519PrivateKey
    clock: FakeClock
    qtbot: QtBot

    def answer(self, dialog: Answering, act: Callable[[], object]) -> bool:
        """Do ``act`` in the dialog and wait for the worker's answer: kept (True) or refused."""
        with self.qtbot.waitSignal(dialog.answered, timeout=5000) as got:
            act()
        return bool(got.args[0])

    def verify(self, dialog: OnboardingDialog) -> VoucherCheck | None:
        """Press Verify and wait for the verdict."""
        with self.qtbot.waitSignal(dialog.verified, timeout=5000) as got:
            dialog.verify()
        check = got.args[0]
        assert check is None or isinstance(check, VoucherCheck)
        return check

    def send(self, device: str, key: Ed25519PrivateKey | None = None, **values: object) -> None:
        raw = vitals(device, at=self.clock.now, **values)
        if key is not None:
            raw = sign_message(raw, key)
        msg = ingest.parse(f"healthcare/devices/{device}/vitals", raw, self.clock.now, FILTERS)
        assert isinstance(msg, Accepted), msg
        self.core.on_accepted(msg)

    def shown(self, bed: str) -> str:
        """The HR a nurse reads on the bed's tile."""
        tile = self.window.tiles[bed]
        tile.refresh(self.clock.now)
        return tile.hr.value.text()

    def records(self) -> list[dict[str, object]]:
        assert self.audit.close(5.0)
        return [json.loads(line) for line in self.audit.path.read_text().splitlines()]


@pytest.fixture
def ward(qtbot: QtBot, wire: Wiring, tmp_path: Path) -> Iterator[Ward]:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping({"station": {"data_dir": str(data)}, "ward": {"beds": 4}})
    with use_memory_keyring():
        audit = AuditWriter(data / "audit", clock=clock)
        audit.start()
        admin = WardAdmin(settings, audit, clock=clock)
        registry = DeviceRegistry(data / REGISTRY_FILE)
        limits = BedLimitsFile(data / BED_LIMITS_FILE)
        screen = wire(
            settings, clock, audit, user="ann", registry=registry, admin=admin, limits_store=limits
        )
        window, core = screen.window, screen.core
        assert core is not None
        maker = trusted_maker(data / "trust")
        yield Ward(window, core, admin, audit, settings, maker, clock, qtbot)
        audit.close(5.0)


def _onboard(ward: Ward, device: str, bed: str, signing: bool = False) -> Ed25519PrivateKey:
    text, key = voucher_for(ward.maker, device)
    ward.admin.onboard_now(text, bed, signing, "root-admin")
    return key


def test_onboarding_through_the_dialog_puts_the_device_on_its_bed(ward: Ward) -> None:
    text, key = voucher_for(ward.maker, "mon-77")
    dialog = OnboardingDialog(ward.admin, "root-admin", parent=ward.window)
    dialog.voucher.setPlainText(text)
    check = ward.verify(dialog)
    assert check is not None
    assert check.ok
    assert "mon-77" in dialog.claims.text()
    assert "Acme Medical" in dialog.claims.text()
    assert dialog.onboard_button.isEnabled()
    dialog.bed.setCurrentIndex(dialog.bed.findData("Bed 3"))
    assert ward.answer(dialog, dialog.onboard)
    shown = dialog.credential.toPlainText()
    assert "mon-77:$7$" in shown
    assert "topic write healthcare/devices/mon-77/vitals" in shown
    ward.send("mon-77", key, heartrate=81)
    assert ward.shown("Bed 3") == "81"
    assert ward.window.beds["Bed 3"].device_id == "mon-77"
    assert all(ward.window.beds[b].latest is None for b in ("Bed 1", "Bed 2", "Bed 4"))
    # The same voucher a second time is refused, with its reason, and changes nothing.
    again = OnboardingDialog(ward.admin, "root-admin", parent=ward.window)
    again.voucher.setPlainText(text)
    check = ward.verify(again)
    assert check is not None
    assert not check.ok
    assert "already used" in again.message.text()
    onboard = [r for r in ward.records() if r["action"] == "device.onboard"]
    assert [(r["actor"], r["target"]) for r in onboard] == [("root-admin", "mon-77")]


def test_a_tampered_voucher_is_refused_in_the_dialog(ward: Ward) -> None:
    text, _ = voucher_for(ward.maker, "mon-78")
    doc = json.loads(text)
    doc["device"]["serial"] = "SN-OTHER"
    dialog = OnboardingDialog(ward.admin, "root-admin", parent=ward.window)
    dialog.voucher.setPlainText(json.dumps(doc))
    check = ward.verify(dialog)
    assert check is not None
    assert not check.ok
    assert dialog.message.text().startswith("Refused:")
    assert not dialog.onboard_button.isEnabled()
    assert len(ward.admin.book()) == 0


def test_an_unknown_device_waits_in_the_unassigned_panel_and_reaches_no_bed(ward: Ward) -> None:
    ward.send("stranger-1", heartrate=99)
    ward.clock.now += 2
    ward.send("stranger-1", heartrate=98)
    ward.core.tick()
    assert all(data.latest is None for data in ward.window.beds.values())
    assert "1 devices without a bed" in ward.window.ingest.text()
    dialog = DevicesDialog(
        ward.admin, "root-admin", lambda: ward.window.stats.unassigned if ward.window.stats else (),
        lambda: None, ward.window,
    )  # fmt: skip
    cells = [dialog.waiting.item(0, c).text() for c in range(5)]
    assert cells[0] == "stranger-1"
    assert cells[3] == "2"
    assert cells[4] == "not onboarded"
    assert cells[1] != cells[2]  # first and last seen


def test_admit_transfer_and_discharge_move_what_the_bed_shows(ward: Ward) -> None:
    _onboard(ward, "mon-1", "Bed 1")
    ward.send("mon-1", heartrate=70)
    assert ward.shown("Bed 1") == "70"

    dialog = PatientDialog(ward.admin, "Bed 1", "ann", ward.window)
    dialog.name.setText(NAME)
    dialog.mrn.setText(MRN)
    assert ward.answer(dialog, dialog.admit), dialog.message.text()
    tile = ward.window.tiles["Bed 1"]
    # A new patient starts with a blank bed: never the previous occupant's values.
    assert ward.window.beds["Bed 1"].latest is None
    assert "Name hidden (no consent)" in tile.patient.text()
    assert "not stored" in tile.patient.text()
    patient = ward.admin.occupant("Bed 1")
    assert patient is not None
    assert patient.devices == ("mon-1",)
    ward.admin.record_consent_now(
        patient, Purpose.DISPLAY, granted=True, given_by="patient", representative="", user="ann"
    )
    assert NAME in tile.patient.text()
    ward.send("mon-1", heartrate=71)
    assert ward.shown("Bed 1") == "71"

    dialog.target.setCurrentIndex(dialog.target.findText("Bed 3"))
    assert ward.answer(dialog, dialog.transfer), dialog.message.text()
    assert ward.window.beds["Bed 1"].latest is None
    assert tile.patient.text() == ""
    assert NAME in ward.window.tiles["Bed 3"].patient.text()
    ward.clock.now += 1
    ward.send("mon-1", heartrate=72)  # the device went with the patient
    assert ward.shown("Bed 3") == "72"
    assert ward.window.beds["Bed 1"].latest is None
    stays = ward.admin.table.history_beds(patient.patient_id)
    assert [s.bed for s in stays] == ["Bed 1", "Bed 3"]

    out = PatientDialog(ward.admin, "Bed 3", "ann", ward.window)
    out.discharge_button.click()  # asks inline, nothing modal over the ward
    assert not out._confirm.isHidden()
    assert ward.answer(out, out.confirm_button.click), out.message.text()
    bed3 = ward.window.tiles["Bed 3"]
    bed3.refresh(ward.clock.now)
    assert bed3.banner.text().startswith("STANDBY")
    assert bed3.patient.text() == ""
    ward.clock.now += 1
    ward.send("mon-1", heartrate=175)  # discharged: neither shown nor alarmed
    assert ward.window.beds["Bed 3"].latest is None
    assert not [a for a in ward.window.alarm_list.alarms() if a.bed == "Bed 3"]
    actions = [r["action"] for r in ward.records()]
    for action in ("patient.admit", "patient.transfer", "patient.discharge"):
        assert action in actions


def test_consent_dialog_records_and_withdraws_and_storage_follows(ward: Ward) -> None:
    _onboard(ward, "mon-2", "Bed 2")
    ward.admin.admit_now("Bed 2", NAME, MRN, date(1950, 5, 17), "ann")
    patient = ward.admin.occupant("Bed 2")
    assert patient is not None
    assert ward.core._policy["Bed 2"].store is False  # no consent yet: not stored
    dialog = ConsentDialog(ward.admin, patient, "ann", ward.window)
    dialog.given_by.setCurrentIndex(dialog.given_by.findData("representative"))
    # A representative must be named.
    assert not ward.answer(dialog, lambda: dialog.record(Purpose.STORAGE, True))
    assert "representative" in dialog.message.text().lower()
    dialog.representative.setText("Paolo Marchetti (son)")
    assert ward.answer(dialog, lambda: dialog.record(Purpose.STORAGE, True))
    assert dialog.state[Purpose.STORAGE].text().startswith("GIVEN by Paolo Marchetti")
    assert "captured by ann" in dialog.state[Purpose.STORAGE].text()
    assert ward.core._policy["Bed 2"].store is True
    assert ward.answer(dialog, lambda: dialog.record(Purpose.STORAGE, False))
    assert dialog.state[Purpose.STORAGE].text().startswith("WITHDRAWN")
    assert ward.core._policy["Bed 2"].store is False
    assert dialog.history.count() == 2
    assert not ward.admin.exportable("Bed 2")
    records = [r for r in ward.records() if str(r["action"]).startswith("consent.")]
    assert [r["action"] for r in records] == ["consent.give", "consent.withdraw"]
    for r in records:
        details = r["details"]
        assert isinstance(details, dict)
        assert details["patient"] == patient.patient_id
        assert details["purpose"] == "storage"
        assert details["policy"] == "1"
        assert r["actor"] == "ann"
        assert "Paolo" not in json.dumps(r)
        assert NAME not in json.dumps(r)


def test_the_patient_file_holds_no_readable_identity(ward: Ward) -> None:
    ward.admin.admit_now("Bed 4", NAME, MRN, date(1950, 5, 17), "ann")
    raw = (ward.settings.station.data_path / PATIENT_FILE).read_bytes()
    for text in (NAME, MRN, "Zelda", "99017", "1950-05-17"):
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert text.encode(encoding) not in raw, (text, encoding)
    # ...and it reads back with the keyring's key: a restart keeps the admission.
    again = WardAdmin(ward.settings, ward.audit, clock=ward.clock)
    patient = again.occupant("Bed 4")
    assert patient is not None
    assert patient.name == NAME
    assert patient.mrn == MRN
    for path in ward.settings.station.data_path.rglob("*"):
        if path.is_file():
            assert NAME.encode() not in path.read_bytes(), path


def test_exports_leave_out_a_patient_without_export_consent(ward: Ward, tmp_path: Path) -> None:
    _onboard(ward, "mon-3", "Bed 2")
    _onboard(ward, "mon-4", "Bed 4")
    ward.admin.admit_now("Bed 2", NAME, MRN, date(1950, 5, 17), "ann")  # no export consent
    ward.send("mon-3", heartrate=170)
    ward.send("mon-4", heartrate=171)  # Bed 4: no patient admitted, nobody to ask
    ward.clock.now += 15
    ward.send("mon-3", heartrate=172)
    ward.send("mon-4", heartrate=173)
    assert {a.bed for a in ward.window.history.episodes() if a.parameter == "heartrate"} == {
        "Bed 2",
        "Bed 4",
    }
    ward.window.header.history_button.click()
    dialog = ward.window.bed_windows.history_dialog
    assert dialog is not None
    target = tmp_path / "alarms.csv"
    assert dialog.export_to(target) >= 1
    text = target.read_text()
    assert "Bed 4" in text
    assert "Bed 2" not in text
    assert "left out: no export consent" in dialog.status.text()
    patient = ward.admin.occupant("Bed 2")
    assert patient is not None
    ward.admin.record_consent_now(
        patient, Purpose.EXPORT, granted=True, given_by="patient", representative="", user="ann"
    )
    assert dialog.export_to(target) >= 2
    assert "Bed 2" in target.read_text()


def test_transfer_takes_only_the_devices_still_on_the_patients_bed(ward: Ward) -> None:
    _onboard(ward, "mon-a", "Bed 1")
    ward.admin.admit_now("Bed 1", NAME, MRN, date(1950, 5, 17), "ann")
    ward.admin.reassign_now("mon-a", "Bed 3", "root-admin")  # the monitor now feeds someone else
    patient = ward.admin.occupant("Bed 1")
    assert patient is not None
    assert patient.devices == ()  # released from the patient with the move
    ward.admin.transfer_now("Bed 1", "Bed 2", "ann")
    rec = ward.admin.book().get("mon-a")
    assert rec is not None
    assert rec.bed == "Bed 3"


def test_a_pinned_bed_cannot_be_given_to_an_onboarded_device(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = from_mapping(
        {"station": {"data_dir": str(data)}, "ward": {"beds": 2, "devices": {"wired-1": 1}}}
    )
    with use_memory_keyring():
        audit = AuditWriter(data / "audit")
        audit.start()
        admin = WardAdmin(settings, audit)
        text, _ = voucher_for(trusted_maker(data / "trust"), "mon-b")
        with pytest.raises(RegistryError, match="Bed 1 is fed by wired-1"):
            admin.onboard_now(text, "Bed 1", False, "root-admin")
        assert len(admin.book()) == 0
        assert audit.close(5.0)


def test_a_device_moved_while_silent_raises_no_data_again_at_its_new_bed(ward: Ward) -> None:
    _onboard(ward, "mon-q", "Bed 1")
    ward.send("mon-q")
    ward.clock.now += ward.settings.alarms.no_data_s + 5
    ward.core.tick()
    silent = [a for a in ward.window.alarm_list.alarms() if a.parameter == "no_data"]
    assert [a.bed for a in silent] == ["Bed 1"]
    ward.admin.reassign_now("mon-q", "Bed 2", "root-admin")
    assert not [a for a in ward.window.alarm_list.alarms() if a.parameter == "no_data"]
    ward.clock.now += ward.settings.alarms.no_data_s + 5
    ward.core.tick()
    again = [a.bed for a in ward.window.alarm_list.alarms() if a.parameter == "no_data"]
    assert again == ["Bed 2"]


def test_a_new_patient_gets_the_wards_limits_not_the_previous_ones(ward: Ward) -> None:
    default = ward.core._engine.limits_for("Bed 1")["heartrate"]
    tight = default.model_copy(update={"high": 100.0})
    ward.core.change_limits("Bed 1", {"heartrate": tight}, None, "ann")
    assert ward.core._engine.limits_for("Bed 1")["heartrate"].high == 100.0
    ward.admin.admit_now("Bed 1", NAME, MRN, date(1950, 5, 17), "ann")
    assert ward.core._engine.limits_for("Bed 1")["heartrate"] == default
    # ...and limits set for that patient follow them on a transfer.
    ward.core.change_limits("Bed 1", {"heartrate": tight}, None, "ann")
    ward.admin.transfer_now("Bed 1", "Bed 2", "ann")
    assert ward.core._engine.limits_for("Bed 2")["heartrate"].high == 100.0
    assert ward.core._engine.limits_for("Bed 1")["heartrate"] == default


def test_an_unsigned_device_on_the_shared_topic_is_refused(ward: Ward) -> None:
    _onboard(ward, "mon-u", "Bed 1", signing=False)
    raw = vitals("mon-u", at=ward.clock.now)
    msg = ingest.parse("healthcare/sensor_data", raw, ward.clock.now, FILTERS)
    assert isinstance(msg, Accepted)
    ward.core.on_accepted(msg)
    assert ward.window.beds["Bed 1"].latest is None
    ward.send("mon-u", heartrate=66)  # its own topic: accepted
    assert ward.shown("Bed 1") == "66"


def test_admission_with_a_damaged_registry_is_refused_and_changes_nothing(ward: Ward) -> None:
    (ward.settings.station.data_path / REGISTRY_FILE).write_text("{broken")
    dialog = PatientDialog(ward.admin, "Bed 1", "ann", ward.window)
    dialog.name.setText(NAME)
    dialog.mrn.setText(MRN)
    assert not ward.answer(dialog, dialog.admit)
    assert "not JSON" in dialog.message.text()
    assert ward.admin.occupant("Bed 1") is None


def test_the_devices_dialog_moves_and_decommissions_on_the_worker(ward: Ward) -> None:
    _onboard(ward, "mon-d", "Bed 1")
    dialog = DevicesDialog(ward.admin, "root-admin", lambda: (), lambda: None, ward.window)
    ward.qtbot.waitUntil(lambda: dialog.registry.rowCount() == 1, timeout=5000)
    dialog.registry.selectRow(0)
    dialog.target.setCurrentIndex(dialog.target.findData("Bed 2"))
    assert ward.answer(dialog, dialog.move_selected), dialog.message.text()
    assert dialog.message.text() == "mon-d → Bed 2."
    rec = ward.admin.book().get("mon-d")
    assert rec is not None
    assert rec.bed == "Bed 2"
    with ward.qtbot.waitSignal(dialog.refreshed, timeout=5000):
        pass  # the table follows the registry file the worker just wrote
    item = dialog.registry.item(0, 3)
    assert item is not None
    assert item.text() == "Bed 2"
    dialog.registry.selectRow(0)
    assert ward.answer(dialog, dialog.revoke_selected), dialog.message.text()
    assert "decommissioned" in dialog.message.text()
    rec = ward.admin.book().get("mon-d")
    assert rec is not None
    assert not rec.active
