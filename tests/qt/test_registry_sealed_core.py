"""The core checks the device registry's seal (issue 17): a registry edited by hand while the
station was down is taken as it is (its beds stay monitored) but audited, with what changed since
the sealed copy, and alarmed until an admin accepts it; what the station writes raises nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytestqt.qtbot import QtBot

from station.config.settings import from_mapping
from station.domain.alarms import Alarm, AlarmKind, AlarmState
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import load_trust
from station.services.ingest.core import CoreWorker
from station.services.ingest.device_gate import SEAL_PARAMETER
from station.services.storage.device_registry import DeviceRegistry
from tests.device_kit import trusted_maker, voucher_for


class Trail:
    fault = None

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def record(self, action: str, **fields: Any) -> None:
        self.records.append((action, fields))

    def of(self, action: str) -> list[dict[str, Any]]:
        return [f for a, f in self.records if a == action]


def _core(tmp_path: Path, registry: DeviceRegistry, trail: Trail) -> tuple[CoreWorker, list[Alarm]]:
    settings = from_mapping({"station": {"data_dir": str(tmp_path)}, "ward": {"beds": 4}})
    alarms: list[Alarm] = []
    core = CoreWorker(settings, trail, None, None, lambda: True, time.time, registry=registry)
    core.alarm_changed.connect(alarms.append)
    return core, alarms


def _seal_alarms(alarms: list[Alarm]) -> list[Alarm]:
    return [a for a in alarms if a.kind is AlarmKind.TECHNICAL and a.parameter == SEAL_PARAMETER]


def test_a_hand_edit_while_down_is_audited_and_alarmed_until_accepted(
    qtbot: QtBot, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    registry = DeviceRegistry(tmp_path / "devices.json", key)
    maker = trusted_maker(tmp_path / "trust")
    text, _ = voucher_for(maker, "mon-1")
    check = check_voucher(text, load_trust(tmp_path / "trust"), now=time.time())
    registry.onboard(check, bed="Bed 1", signing=True, by="admin", at=1.0)

    trail = Trail()
    core, alarms = _core(tmp_path, registry, trail)
    assert trail.of("devices.unsealed") == []  # the station's own write
    core.start()
    assert _seal_alarms(alarms) == []
    core.shutdown()

    # While the station is down, someone switches the device's signing off by hand.
    doc = json.loads(registry.path.read_text())
    doc["devices"][0]["signing"] = False
    registry.path.write_text(json.dumps(doc))

    trail = Trail()
    core, alarms = _core(tmp_path, registry, trail)
    core.start()
    (unsealed,) = trail.of("devices.unsealed")
    assert unsealed["outcome"] == "failure"
    assert unsealed["details"]["problem"] == "it differs from what the station last wrote"
    assert unsealed["details"]["changes"] == [
        {"device": "mon-1", "change": "changed", "fields": {"signing": [True, False]}}
    ]
    book = core.book.get("mon-1")
    assert book is not None
    assert book.bed == "Bed 1"  # taken as it is: the bed stays monitored
    raised = _seal_alarms(alarms)
    assert [a.state for a in raised] == [AlarmState.ACTIVE]
    assert "station devices accept" in raised[0].message

    registry.accept()  # `station devices accept`, after the admin's review
    core.reload_devices()
    assert _seal_alarms(alarms)[-1].state is AlarmState.CLEARED
    assert len(trail.of("devices.unsealed")) == 1
    core.shutdown()
