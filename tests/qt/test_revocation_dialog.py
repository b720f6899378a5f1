"""pytest-qt: decommissioning a device in the devices dialog shows what to remove on the broker.

The station refuses the device's messages at once, but its broker login stays valid until the
admin deletes it there: the dialog shows the ``mosquitto_passwd -D`` command and the ACL lines
(the inverse of what onboarding showed). In the demo the embedded broker has refused the device
already, and the dialog says so instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.config.settings import from_mapping
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.demo.broker import DemoCredentials
from station.ui.devices_dialog import DevicesDialog
from tests.device_kit import trusted_maker, voucher_for
from tests.fakes import FakeClock


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditWriter]:
    writer = AuditWriter(tmp_path / "data" / "audit", clock=FakeClock())
    writer.start()
    yield writer
    writer.close(5.0)


def _revoke_in_dialog(
    qtbot: QtBot, tmp_path: Path, audit: AuditWriter, credentials: DemoCredentials | None
) -> DevicesDialog:
    data = tmp_path / "data"
    settings = from_mapping({"station": {"data_dir": str(data)}, "ward": {"beds": 4}})
    admin = WardAdmin(
        settings,
        audit,
        apply_credential=None
        if credentials is None
        else lambda c: credentials.add(c.username, c.password),
        remove_credential=None if credentials is None else credentials.remove,
    )
    text, _key = voucher_for(trusted_maker(data / "trust"), "mon-r")
    admin.onboard_now(text, "Bed 1", False, "root-admin")
    dialog = DevicesDialog(admin, "root-admin", lambda: (), lambda: None)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.registry.rowCount() == 1, timeout=5000)
    dialog.registry.selectRow(0)
    with qtbot.waitSignal(dialog.answered, timeout=5000) as got:
        assert dialog.revoke_selected()
    assert got.args == [True], dialog.message.text()
    assert admin.stop(5.0)
    return dialog


def test_the_dialog_shows_the_lines_that_remove_the_broker_login(
    qtbot: QtBot, tmp_path: Path, audit: AuditWriter
) -> None:
    dialog = _revoke_in_dialog(qtbot, tmp_path, audit, None)
    assert "mon-r decommissioned" in dialog.message.text()
    assert "broker login is still valid" in dialog.message.text()
    assert not dialog.broker_lines.isHidden()
    lines = dialog.broker_lines.toPlainText().splitlines()
    assert "mosquitto_passwd -D /etc/mosquitto/passwd mon-r" in lines
    assert "user mon-r" in lines
    assert "topic write healthcare/devices/mon-r/vitals" in lines


def test_in_the_demo_the_embedded_broker_refuses_it_already(
    qtbot: QtBot, tmp_path: Path, audit: AuditWriter
) -> None:
    credentials = DemoCredentials()
    dialog = _revoke_in_dialog(qtbot, tmp_path, audit, credentials)
    assert "embedded broker refuses its login already" in dialog.message.text()
    assert dialog.broker_lines.isHidden()
    assert credentials.check("mon-r", "any") is False
