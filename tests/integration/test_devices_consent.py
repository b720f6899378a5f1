"""Onboarded devices, signatures, revocation and storage consent, end to end: a real Mosquitto
(TLS, password file, ACL), a real victoria-metrics, a real station.

- a device enrolled as signing that sends a bad signature (or none) is rejected and audited,
  while its signed messages reach its bed;
- after the patient's storage consent is withdrawn, no further point of that bed reaches the
  historian, while the bed's display carries on;
- a decommissioned device's messages are rejected.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytestqt.qtbot import QtBot

from station.app import Station
from station.domain.devices import sign_message
from station.domain.patients.records import Purpose
from tests.device_kit import trusted_maker, voucher_for
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.victoria import VictoriaMetrics
from tests.integration.station_harness import publish, running_station, station_settings
from tests.payloads import vitals

SIGNER, OLD, CONSENTING = "mon-sig", "mon-old", "mon-consent"


@pytest.fixture
def mosquitto_devices() -> tuple[str, ...]:
    return (SIGNER, OLD, CONSENTING)


def _records(station: Station) -> list[dict[str, object]]:
    return [json.loads(line) for line in station.audit.path.read_text().splitlines()]


def _quarantined(station: Station, device: str, reason: str) -> list[str]:
    stats = station.window.stats
    assert stats is not None
    return [r.detail for r in stats.quarantine if r.device_id == device and r.reason == reason]


def _revoked_in_core(station: Station, device: str) -> bool:
    """The core thread has reloaded the registry (queued) and refuses ``device`` from now on."""
    rec = station.core.book.get(device)
    return rec is not None and not rec.active


def _policy_in_force(station: Station, bed: str) -> bool:
    """The core thread has the ward's admissions and consents for ``bed`` (sent queued)."""
    return station.core._policy.get(bed) == station.ward.policy()[bed]


def _all_written(station: Station) -> bool:
    """Every point handed to the historian is written: none left unwritten in the spool."""
    assert station.spool is not None
    return station.spool.backlog()[0] == 0


def _onboard(
    station: Station, maker: Ed25519PrivateKey, device: str, bed: str, signing: bool
) -> Ed25519PrivateKey:
    text, key = voucher_for(maker, device)
    station.ward.onboard_now(text, bed, signing, "admin-test")
    return key


def _send(broker: Mosquitto, device: str, key: Ed25519PrivateKey | None, **values: object) -> None:
    raw = vitals(device, **values)
    publish(broker, device, [raw if key is None else sign_message(raw, key)])


def test_signatures_revocation_and_consent_through_broker_and_historian(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = station_settings(
        mosquitto,
        tmp_path / "data",
        ward={"beds": 4, "devices": {}},
        influx={"enabled": True, "url": victoria.url, "flush_interval_s": 0.2},
    )
    maker = trusted_maker(tmp_path / "data" / "trust")
    # The patient table's key goes to the suite's memory keyring (tests/conftest.py).
    with running_station(qtbot, mosquitto, settings, monkeypatch) as st:
        window = st.window
        key = _onboard(st, maker, SIGNER, "Bed 1", signing=True)
        _onboard(st, maker, OLD, "Bed 2", signing=False)
        _onboard(st, maker, CONSENTING, "Bed 3", signing=False)

        # -- signing device: good signature shown; forged and missing ones rejected, audited --
        _send(mosquitto, SIGNER, key, heartrate=64)
        qtbot.waitUntil(lambda: window.beds["Bed 1"].latest is not None, timeout=10_000)
        forger = Ed25519PrivateKey.generate()
        _send(mosquitto, SIGNER, forger, heartrate=190)
        _send(mosquitto, SIGNER, None, heartrate=191)
        qtbot.waitUntil(lambda: len(_quarantined(st, SIGNER, "spoofed")) == 2, timeout=10_000)
        details = _quarantined(st, SIGNER, "spoofed")
        assert any("bad signature" in d for d in details)
        assert any("unsigned" in d for d in details)
        latest = window.beds["Bed 1"].latest
        assert latest is not None
        assert latest.payload.heartrate == 64  # the forged 190 never reached the bed
        assert not [a for a in window.alarm_list.alarms() if a.parameter == "heartrate"]

        # -- decommissioned device: accepted before, rejected after ------------------------------
        _send(mosquitto, OLD, None, heartrate=70)
        qtbot.waitUntil(lambda: window.beds["Bed 2"].latest is not None, timeout=10_000)
        st.ward.revoke_now(OLD, "admin-test")
        qtbot.waitUntil(lambda: _revoked_in_core(st, OLD), timeout=5_000)
        _send(mosquitto, OLD, None, heartrate=71)
        qtbot.waitUntil(lambda: bool(_quarantined(st, OLD, "revoked")), timeout=10_000)

        # -- storage consent: stored while given, nothing after withdrawal, display goes on --
        st.ward.admit_now("Bed 3", "Ada Example", "MRN-1", date(1960, 1, 2), "nurse-test")
        patient = st.ward.occupant("Bed 3")
        assert patient is not None
        for purpose in (Purpose.DISPLAY, Purpose.STORAGE):
            st.ward.record_consent_now(
                patient, purpose, granted=True, given_by="patient", representative="",
                user="nurse-test",
            )  # fmt: skip
        qtbot.waitUntil(lambda: _policy_in_force(st, "Bed 3"), timeout=5_000)
        _send(mosquitto, CONSENTING, None, heartrate=80)
        victoria.wait_for('{__name__="vitals_heartrate",bed="Bed 3"}', bool, timeout=20)
        st.ward.record_consent_now(
            patient, Purpose.STORAGE, granted=False, given_by="patient", representative="",
            user="nurse-test",
        )  # fmt: skip
        qtbot.waitUntil(lambda: _policy_in_force(st, "Bed 3"), timeout=5_000)
        withdrawn_at = time.time()
        for hr in (81, 82, 83):
            _send(mosquitto, CONSENTING, None, heartrate=hr)
        qtbot.waitUntil(
            lambda: (m := window.beds["Bed 3"].latest) is not None and m.payload.heartrate == 83,
            timeout=10_000,
        )
        # The other devices' points still flow: proof the historian is writing meanwhile.
        _send(mosquitto, SIGNER, key, heartrate=66)
        victoria.wait_for(
            '{__name__="vitals_heartrate",device="mon-sig"}',
            lambda s: any(len(x["timestamps"]) >= 2 for x in s),
            timeout=20,
        )
        qtbot.waitUntil(lambda: _all_written(st), timeout=10_000)  # Bed 3's too, had any gone
        victoria.flush()
        bed3 = victoria.export('{__name__="vitals_heartrate",bed="Bed 3"}')
        stamps = [t for s in bed3 for t in s["timestamps"]]
        values = [v for s in bed3 for v in s["values"]]
        assert values == [80], values
        assert all(t < withdrawn_at * 1000 for t in stamps)

    actions = [(r["action"], r["target"]) for r in _records(st)]
    assert ("device.spoofed", SIGNER) in actions
    assert ("device.revoke", OLD) in actions
    assert ("device.revoked_message", OLD) in actions
    assert [a for a, _ in actions if a.startswith("consent.")] == [
        "consent.give",
        "consent.give",
        "consent.withdraw",
    ]
    spoofed = next(r for r in _records(st) if r["action"] == "device.spoofed")
    assert spoofed["outcome"] == "failure"
