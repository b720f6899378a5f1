"""A storage consent withdrawn during a historian outage: the bed's points already spooled never
reach the historian; the other beds' points all do. A real Mosquitto (TLS, password file, ACL), a
real victoria-metrics speaking the InfluxDB v2 write API, a real station.

Before: withdrawing consent stopped only the bed's *next* points; those spooled while the
historian was down went out as soon as it came back.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.app import Station
from station.domain.patients.records import Purpose
from tests.device_kit import trusted_maker, voucher_for
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.victoria import VictoriaMetrics
from tests.integration.station_harness import publish, running_station, station_settings
from tests.payloads import vitals

PATIENTS_DEVICE, OTHER_DEVICE = "mon-p", "mon-q"


@pytest.fixture
def mosquitto_devices() -> tuple[str, ...]:
    return (PATIENTS_DEVICE, OTHER_DEVICE)


def _records(station: Station) -> list[dict[str, object]]:
    return [json.loads(line) for line in station.audit.path.read_text().splitlines()]


def _policy_in_force(station: Station, bed: str) -> bool:
    """The core thread has the ward's admissions and consents for ``bed`` (sent queued)."""
    return station.core._policy.get(bed) == station.ward.policy()[bed]


def _backlog(station: Station) -> int:
    assert station.spool is not None
    return station.spool.backlog()[0]


def _heart_rates(victoria: VictoriaMetrics, bed: str) -> list[float]:
    victoria.flush()
    series = victoria.export(f'{{__name__="vitals_heartrate",bed="{bed}"}}')
    return sorted(v for s in series for v in s["values"])


def test_a_withdrawal_keeps_the_beds_spooled_points_from_the_historian(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STATION_INFLUX_TOKEN", "token-not-checked-by-vm")
    settings = station_settings(
        mosquitto,
        tmp_path / "data",
        ward={"beds": 4, "devices": {}},
        influx={"enabled": True, "url": victoria.url, "flush_interval_s": 0.2},
    )
    maker = trusted_maker(tmp_path / "data" / "trust")
    at = time.time()

    def send(device: str, heartrate: int) -> None:
        nonlocal at
        at += 0.01  # a distinct device time each: one point each in the historian
        publish(mosquitto, device, [vitals(device, at=at, heartrate=heartrate)])

    with running_station(qtbot, mosquitto, settings, monkeypatch) as st:
        for device, bed in ((PATIENTS_DEVICE, "Bed 1"), (OTHER_DEVICE, "Bed 2")):
            st.ward.onboard_now(voucher_for(maker, device)[0], bed, False, "admin-test")
        st.ward.admit_now("Bed 1", "Ada Example", "MRN-7", date(1961, 2, 3), "nurse-test")
        patient = st.ward.occupant("Bed 1")
        assert patient is not None
        st.ward.record_consent_now(
            patient, Purpose.STORAGE, granted=True, given_by="patient", representative="",
            user="nurse-test",
        )  # fmt: skip
        qtbot.waitUntil(lambda: _policy_in_force(st, "Bed 1"), timeout=5_000)
        send(PATIENTS_DEVICE, 70)
        send(OTHER_DEVICE, 90)
        qtbot.waitUntil(lambda: _heart_rates(victoria, "Bed 1") == [70.0], timeout=20_000)
        qtbot.waitUntil(lambda: _heart_rates(victoria, "Bed 2") == [90.0], timeout=20_000)
        qtbot.waitUntil(lambda: _backlog(st) == 0, timeout=10_000)

        # -- the historian is down: both beds' points wait in the spool --------------------------
        victoria.stop()
        for n in range(1, 5):
            send(PATIENTS_DEVICE, 70 + n)
            send(OTHER_DEVICE, 90 + n)
        qtbot.waitUntil(lambda: _backlog(st) >= 8, timeout=10_000)

        # -- the patient withdraws storage consent, then the historian is back -------------------
        st.ward.record_consent_now(
            patient, Purpose.STORAGE, granted=False, given_by="patient", representative="",
            user="nurse-test",
        )  # fmt: skip
        qtbot.waitUntil(lambda: _policy_in_force(st, "Bed 1"), timeout=5_000)
        with qtbot.waitSignal(st.core.stats_changed, timeout=5_000):
            pass  # the core's next tick: the slot that put the policy in force has returned
        victoria.start()
        qtbot.waitUntil(lambda: _backlog(st) == 0, timeout=60_000)  # all written (or purged)
        qtbot.waitUntil(
            lambda: _heart_rates(victoria, "Bed 2") == [90.0, 91.0, 92.0, 93.0, 94.0],
            timeout=20_000,
        )
        # Bed 1: what the historian had before the outage, nothing of what waited for it.
        assert _heart_rates(victoria, "Bed 1") == [70.0]
        assert st.window.beds["Bed 1"].latest is not None  # the display went on throughout

    [purge] = [r for r in _records(st) if r["action"] == "spool.purge"]
    assert purge["target"] == "Bed 1"
    details = purge["details"]
    assert isinstance(details, dict)
    assert details["purged_unsent"] == 4
    assert details["patient"] == patient.patient_id
    assert "Ada" not in json.dumps(purge)
