"""A scripted session at one station (issue 7): logins (and a failure), lock and unlock, an alarm
and its acknowledgement, a limit change, a settings change, onboarding and revocation, admit,
transfer and discharge, consent, a broker fault, and the auditor's view and export. Every event
type lands in the keyed trail with its AU-3 fields, the trail verifies, and the auditor can
filter and export but not acknowledge or change anything."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from pytestqt.qtbot import QtBot

from station.cli.audit import verify_path
from station.config.credentials import use_memory_keyring
from station.config.settings import from_mapping
from station.domain import ingest
from station.domain.alarms import Alarm, AlarmLimits
from station.domain.ingest import Accepted
from station.domain.patients.records import Purpose
from station.domain.roles import Role
from station.domain.status import ConnectionState
from station.presenters.actions import ActionLayer
from station.presenters.ward_admin import WardAdmin
from station.services.audit import keys as audit_keys
from station.services.audit.trail_source import AuditTrailSource
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.services.storage.accounts import Accounts
from station.services.storage.device_registry import REGISTRY_FILE, DeviceRegistry
from station.ui.audit.view import AuditView
from station.ui.settings.dialog import SettingsDialog
from tests.device_kit import trusted_maker, voucher_for
from tests.fakes import FakeClock
from tests.payloads import FILTERS, vitals

PASSWORD = "a long password"
AU3 = ("ts", "actor", "role", "action", "target", "outcome", "where")
LISTED = {
    "session.login",  # and its failure, below
    "session.logout",
    "session.lock",
    "session.unlock",
    "alarm.raise",
    "alarm.acknowledge",
    "alarm.limits_change",
    "settings.change",
    "device.onboard",
    "device.revoke",
    "patient.admit",
    "patient.transfer",
    "patient.discharge",
    "consent.give",
    "consent.withdraw",
    "audit.export",
    "mqtt.disconnected",
    "access.denied",
    "audit.checkpoint",
}


def test_a_scripted_session_leaves_every_event_with_its_au3_fields(
    qtbot: QtBot, tmp_path: Path
) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    settings = from_mapping(
        {"station": {"id": "ward-9", "data_dir": str(data)}, "ward": {"beds": 4}}
    )
    key = audit_keys.station_key("ward-9")  # from the run's STATION_AUDIT_KEY
    with use_memory_keyring():
        audit = AuditWriter(
            data / "audit", clock=clock, station_key=key, station="ward-9", where="ward-9@nuc"
        )
        audit.start()
        accounts = Accounts(data / "users.json", clock=clock, scrypt_n=2**10)
        for name, role in (("adm", Role.ADMIN), ("ann", Role.NURSE), ("aud", Role.AUDITOR)):
            accounts.create(name, role, PASSWORD)
        actions = ActionLayer(accounts, audit, "ward-9", lock_after_s=300, clock=clock)
        core = CoreWorker(
            settings, audit, None, None, lambda: True, clock,
            registry=DeviceRegistry(data / REGISTRY_FILE),
        )  # fmt: skip
        admin = WardAdmin(settings, audit, clock=clock)
        admin.policy_changed.connect(core.set_bed_policy)
        admin.devices_written.connect(core.reload_devices)
        actions.acknowledge.connect(core.acknowledge)
        actions.limits.connect(core.change_limits)
        alarms: list[Alarm] = []
        core.alarm_changed.connect(alarms.append)

        def login(name: str, password: str = PASSWORD) -> None:
            signal = actions.session_changed if password == PASSWORD else actions.login_failed
            with qtbot.waitSignal(signal, timeout=5000):
                actions.login(name, password)

        login("ann", "not the password")
        clock.now += 60  # past the wait a failed login imposes
        login("ann")
        actions.lock()
        login("ann")  # back at the station she locked: an unlock

        # Onboarding, a patient, consent, and an alarm acknowledged by the nurse.
        maker = trusted_maker(data / "trust")
        text, _device_key = voucher_for(maker, "mon-1")
        admin.onboard_now(text, "Bed 1", False, "adm")
        patient = admin.admit_now("Bed 1", "Test Person", "MRN-1", date(1950, 1, 1), "ann")
        for granted in (True, False):
            admin.record_consent_now(
                patient, Purpose.STORAGE, granted=granted, given_by="patient",
                representative="", user="ann",
            )  # fmt: skip
        raw = vitals("mon-1", at=clock.now, heartrate=190)
        msg = ingest.parse("healthcare/devices/mon-1/vitals", raw, clock.now, FILTERS)
        assert isinstance(msg, Accepted)
        core.on_accepted(msg)
        raised = [a for a in alarms if a.bed == "Bed 1" and a.parameter == "heartrate"]
        assert raised
        actions.on_acknowledge(raised[0].alarm_id, "ann")
        actions.on_limits("Bed 1", {"heartrate": AlarmLimits(low=40, high=150)}, None, "ann")
        admin.transfer_now("Bed 1", "Bed 2", "ann")
        admin.discharge_now("Bed 2", "ann")
        core.on_connection(ConnectionState(False, "broker gone", clock.now))

        # The admin changes a setting and revokes the device.
        login("adm")
        dialog = SettingsDialog(settings, tmp_path / "station.toml", "adm", audit, None)
        qtbot.addWidget(dialog)
        dialog.set_value("alarms.oxygen.latching", True)
        with qtbot.waitSignal(dialog.saved, timeout=5000):
            dialog.save_button.click()
        admin.revoke_now("mon-1", "adm")

        # The auditor: filters and exports, and cannot acknowledge or change anything.
        login("aud")
        forwarded: list[object] = []
        actions.acknowledge.connect(lambda *args: forwarded.append(args))
        actions.limits.connect(lambda *args: forwarded.append(args))
        actions.on_acknowledge(raised[0].alarm_id, "aud")
        actions.on_limits("Bed 1", {}, None, "aud")
        assert forwarded == []
        view = AuditView(AuditTrailSource(audit, key, "ward-9", "aud"))
        qtbot.addWidget(view)
        qtbot.waitUntil(lambda: view.snapshot is not None, timeout=10000)
        assert view.snapshot is not None
        assert view.snapshot.intact, view.snapshot.health
        view.user_box.setCurrentText("ann")
        view.apply_filter()
        shown = view.model.records()
        assert shown
        assert {r["actor"] for r in shown} == {"ann"}
        bundle = tmp_path / "bundle"
        with qtbot.waitSignal(view.exported, timeout=10000) as done:
            assert view.export_to(bundle)
        assert "records" in done.args[0]
        view.close()
        actions.logout()
        actions.shutdown()
        core.shutdown()
        assert audit.close(5.0)
        records = [json.loads(line) for line in audit.path.read_text().splitlines()]
    seen = {r["action"] for r in records}
    assert seen >= LISTED, LISTED - seen
    assert any(r["action"] == "session.login" and r["outcome"] == "failure" for r in records)
    for record in records:
        missing = [field for field in AU3 if not record.get(field)]
        assert not missing, (record["action"], missing)
    ack = next(r for r in records if r["action"] == "alarm.acknowledge")
    assert (ack["actor"], ack["role"]) == ("ann", "nurse")
    denied = [r for r in records if r["action"] == "access.denied"]
    assert {r["actor"] for r in denied} == {"aud"}
    change = next(r for r in records if r["action"] == "settings.change")
    assert "latching" in json.dumps(change["details"])
    assert verify_path(data)[0] == 0
    assert verify_path(bundle)[0] == 0
