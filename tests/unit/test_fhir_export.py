"""The FHIR export of a stay, from a demo-like data folder written through the station's own
stores: an encrypted patient table (three admissions, one without export consent), a device
registry with an onboarded monitor, a trend store with hours of samples and an alarm store with
episodes and a nurse's comment. No stand-ins: the bundle is read from those files as the trend
view and ``station export fhir`` read it, and checked with ``fhir.resources``' R4B models.

:func:`make_ward` is shared with the Qt test of the trend view's action.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from station.config.private_file import write_export
from station.config.settings import Settings, from_mapping
from station.domain.alarm_history import AlarmComment, AlarmEpisode
from station.domain.alarms import AlarmKind, Priority
from station.domain.patients.records import Patient, Purpose
from station.domain.patients.table import PatientTable
from station.domain.timefmt import iso_ms
from station.domain.vital_codes import BLOOD_PRESSURE_PANEL, VITAL_CODES
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import load_trust
from station.services.backup.private_output import write_new_private
from station.services.hospital.fhir_export import (
    CHECK_PART,
    FhirExportError,
    build_stay_bundle,
    check_bundle,
    check_in_parts,
    export_stay,
)
from station.services.hospital.fhir_source import PATIENT_FILE, TREND_FILE, StayStores
from station.services.hospital.fhir_stay import BedOccupant, BedPeriod, PatientStay, StayError
from station.services.storage.alarm_store import ALARM_STORE_FILE, AlarmStore
from station.services.storage.device_registry import REGISTRY_FILE, DeviceRegistry
from station.services.storage.patient_store import PatientStore
from station.services.storage.trends import MINUTE, TrendSample, TrendStore
from tests.device_kit import trusted_maker, voucher_for

NOW = 1_738_411_200.0  # 2025-02-01T12:00:00Z, on a minute
STATION = "ward-7"
ADMITTED = NOW - 2 * 3600  # Bed 1's patient
REFUSED_AT = NOW - 90 * 60  # Bed 2's patient, no export consent
BRIEF_AT = NOW - 20 * 60  # Bed 3's patient: a stay short enough for every sample
ADA = ("Olga Fixture", "FIX-0001", date(1948, 3, 14))
BEN = ("Ivo Noconsent", "NOC-0002", date(1960, 7, 30))
CLEO = ("Cleo Brief", "BRF-0003", date(1975, 5, 5))
NURSE = "nurse-ann"
COMMENT = "moved Olga Fixture to the chair"  # free text naming the patient: must never leave


@dataclass
class Ward:
    """A data folder written by the station's stores, and who is in it."""

    settings: Settings
    data: Path
    consented: Patient
    refused: Patient
    brief: Patient

    def stores(self) -> StayStores:
        """What an export reads, on the ward's clock (the trend store's raw window)."""
        return StayStores.of(self.settings, trends=TrendStore(self.data / TREND_FILE, clock=now))


def now() -> float:
    return NOW


def make_ward(folder: Path) -> Ward:
    """Bed 1: Olga, export consent, 2 h, monitor ``mon-1`` onboarded, an hour of nobody before
    her; Bed 2: Ivo, no export consent, 90 min, device ``open-2`` never onboarded; Bed 3: Cleo,
    consent, 20 min of samples every 5 s (and 10 min of nobody before)."""
    data = folder / "data"
    settings = from_mapping(
        {"station": {"id": STATION, "data_dir": str(data)}, "ward": {"beds": 4}}
    )
    data.mkdir(mode=0o700, parents=True)
    table = PatientTable()
    patients = []
    for bed, (name, mrn, born), at, export in (
        ("Bed 1", ADA, ADMITTED, True),
        ("Bed 2", BEN, REFUSED_AT, False),
        ("Bed 3", CLEO, BRIEF_AT, True),
    ):
        patient = table.admit(bed, name=name, mrn=mrn, birth_date=born, by=NURSE, at=at)
        for purpose in Purpose:
            table.record_consent(
                patient.patient_id,
                purpose,
                granted=export or purpose is not Purpose.EXPORT,
                given_by="patient",
                representative="",
                captured_by=NURSE,
                policy_version="v1",
                at=at + 1,
            )
        patients.append(patient)
    PatientStore(data / PATIENT_FILE, STATION).save(table)

    maker = trusted_maker(folder / "trust")
    registry = DeviceRegistry(data / REGISTRY_FILE)
    voucher, _key = voucher_for(maker, "mon-1")
    book = registry.load()
    check = check_voucher(
        voucher, load_trust(folder / "trust"), now=time.time(), used=book.used_vouchers
    )
    registry.onboard(check, bed="Bed 1", signing=False, by="admin", at=ADMITTED - 7200)

    trends = TrendStore(data / TREND_FILE, clock=now)
    trends.open()
    samples = [_sample("Bed 1", "mon-1", t) for t in _times(NOW - 3 * 3600, 1.0)]
    samples += [_sample("Bed 2", "open-2", t) for t in _times(REFUSED_AT, 5.0)]
    samples += [
        TrendSample("Bed 3", "mon-3", round(t * 1000), {"heartrate": 80.0, "oxygen": 95.5})
        for t in _times(BRIEF_AT - 600, 5.0)
    ]
    for start in range(0, len(samples), 5000):
        trends.add(samples[start : start + 5000])
    trends.close()

    alarms = AlarmStore(data / ALARM_STORE_FILE, clock=now)
    alarms.open()
    alarms.save(
        [
            _episode("a0", "Bed 1", "mon-1", "heartrate", NOW - 150 * 60, "HR 38 < 40"),
            _episode(
                "a1",
                "Bed 1",
                "mon-1",
                "heartrate",
                ADMITTED + 1800,
                "HR 134 > 120",
                acked=ADMITTED + 1830,
                escalated=ADMITTED + 1860,
            ),
            _episode(
                "a2",
                "Bed 1",
                "mon-1",
                "no_data",
                ADMITTED + 3600,
                "No data",
                kind=AlarmKind.TECHNICAL,
                priority=Priority.MEDIUM,
            ),
            _episode("b1", "Bed 2", "open-2", "oxygen", NOW - 1800, "SpO2 85 < 90"),
        ]
    )
    alarms.add_comment("a1", AlarmComment(ADMITTED + 1900, NURSE, "artefact", COMMENT))
    alarms.close()
    return Ward(settings, data, *patients)


def _times(start: float, step: float) -> list[float]:
    return [start + i * step for i in range(int((NOW - start) / step))]


def _sample(bed: str, device: str, t: float) -> TrendSample:
    """HR and SpO2 every sample, temperature once a minute, NIBP every 5 minutes."""
    values = {"heartrate": 70.0 + (t // 60) % 10 + (t % 60) / 100, "oxygen": 97.0}
    if t % 60 == 0:
        values["temperature"] = 36.9
    if t % 300 == 0:
        values["systolic"], values["diastolic"] = 121.0, 79.0
    return TrendSample(bed, device, round(t * 1000), values)


def _episode(
    alarm_id: str,
    bed: str,
    device: str,
    parameter: str,
    raised: float,
    message: str,
    *,
    kind: AlarmKind = AlarmKind.PHYSIOLOGICAL,
    priority: Priority = Priority.HIGH,
    acked: float | None = None,
    escalated: float | None = None,
) -> AlarmEpisode:
    return AlarmEpisode(
        alarm_id=alarm_id,
        bed=bed,
        device_id=device,
        kind=kind,
        parameter=parameter,
        priority=priority,
        message=message,
        raised_at=raised,
        acknowledged_at=acked,
        acknowledged_by=NURSE if acked is not None else None,
        escalated_at=escalated,
        cleared_at=raised + 300,
    )


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ward]:
    """One ward for the module (its files are only read). The patient table's key comes from
    the environment, as for a service: each test's own memory keyring would not have it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STATION_PATIENT_KEY", base64.b64encode(os.urandom(32)).decode())
        yield make_ward(tmp_path_factory.mktemp("fhir"))


def entries(payload: bytes) -> list[dict[str, Any]]:
    """The bundle's entries, after the library has parsed the bundle."""
    Bundle.model_validate_json(payload)
    document: dict[str, Any] = json.loads(payload)
    assert document["resourceType"] == "Bundle"
    assert document["type"] == "collection"
    return list(document["entry"])


def of_type(found: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in found if e["resource"]["resourceType"] == kind]


def url_of(found: list[dict[str, Any]], kind: str) -> str:
    (url,) = [e["fullUrl"] for e in found if e["resource"]["resourceType"] == kind]
    return str(url)


def codes(concept: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in concept["coding"] if c["system"] == system]


LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LOINC_TO_PARAM = {code.loinc: name for name, code in VITAL_CODES.items()}


def test_a_consented_stay_is_identified_and_holds_what_the_stores_hold(ward: Ward) -> None:
    bundle = build_stay_bundle(ward.stores(), BedOccupant("Bed 1"), NOW)
    found = entries(bundle.payload)

    (patient,) = of_type(found, "Patient")
    assert patient["name"] == [{"text": ADA[0]}]
    assert patient["birthDate"] == "1948-03-14"
    assert {"system": f"urn:station:{STATION}:mrn", "value": ADA[1]}.items() <= next(
        i for i in patient["identifier"] if i.get("system", "").endswith(":mrn")
    ).items()
    assert "meta" not in patient  # no pseudonymisation label on an identified patient

    (device,) = of_type(found, "Device")
    assert device["identifier"] == [{"system": f"urn:station:{STATION}:device", "value": "mon-1"}]
    assert (device["manufacturer"], device["modelNumber"], device["serialNumber"]) == (
        "Acme Medical",
        "VM-7",
        "SN-mon-1",
    )
    assert device["status"] == "active"

    subject, monitor = url_of(found, "Patient"), url_of(found, "Device")
    observations = of_type(found, "Observation")
    # 120 whole minutes of HR, SpO2 and temperature, and NIBP every 5 minutes.
    assert len(observations) == 120 * 3 + 24 == bundle.summary.observations
    hr: dict[str, float] = {}
    for obs in observations:
        assert obs["status"] == "final"
        assert obs["category"][0]["coding"][0]["code"] == "vital-signs"
        assert obs["subject"] == {"reference": subject}
        assert obs["device"] == {"reference": monitor}
        assert "http://hl7.org/fhir/StructureDefinition/vitalsigns" in obs["meta"]["profile"]
        period = obs["effectivePeriod"]
        assert iso_ms(ADMITTED) <= period["start"] < period["end"] <= iso_ms(NOW)
        (loinc,) = codes(obs["code"], LOINC)
        if loinc == BLOOD_PRESSURE_PANEL[0]:
            parts = {codes(c["code"], LOINC)[0]: c["valueQuantity"] for c in obs["component"]}
            assert set(parts) == {VITAL_CODES["systolic"].loinc, VITAL_CODES["diastolic"].loinc}
            assert all(q["code"] == "mm[Hg]" for q in parts.values())
            assert all(q["system"] == UCUM for q in parts.values())
            continue
        code = VITAL_CODES[LOINC_TO_PARAM[loinc]]
        quantity = obs["valueQuantity"]
        assert (quantity["code"], quantity["system"]) == (code.ucum, UCUM)
        assert str(code.mdc) in codes(obs["code"], "urn:iso:std:iso:11073:10101")
        if loinc == VITAL_CODES["heartrate"].loinc:
            hr[period["start"]] = quantity["value"]
            assert "mean of 60 samples" in obs["note"][0]["text"]

    stored = ward.stores().trend("Bed 1", ADMITTED, NOW)
    assert stored.resolution == MINUTE
    expected = {
        iso_ms(t): round(v, 3)
        for t, v in zip(stored.t.tolist(), stored.mean["heartrate"].tolist(), strict=True)
        if t >= ADMITTED and t + 60 <= NOW and math.isfinite(v)
    }
    assert hr == pytest.approx(expected)


def test_alarms_are_detected_issues_with_their_acknowledgement(ward: Ward) -> None:
    bundle = build_stay_bundle(ward.stores(), BedOccupant("Bed 1"), NOW)
    found = entries(bundle.payload)
    issues = {i["identifier"][0]["value"]: i for i in of_type(found, "DetectedIssue")}
    assert set(issues) == {"a1", "a2"}  # a0 was raised before the admission
    high, silent = issues["a1"], issues["a2"]
    assert high["severity"] == "high"
    assert silent["severity"] == "moderate"
    assert high["status"] == "final"
    assert high["patient"] == {"reference": url_of(found, "Patient")}
    assert high["implicated"] == [{"reference": url_of(found, "Device")}]
    assert high["identifiedPeriod"] == {
        "start": iso_ms(ADMITTED + 1800),
        "end": iso_ms(ADMITTED + 2100),
    }
    (ack,) = high["mitigation"]
    assert ack["date"] == iso_ms(ADMITTED + 1830)
    assert ack["author"] == {"display": NURSE}
    assert codes(high["evidence"][0]["code"][0], LOINC) == [VITAL_CODES["heartrate"].loinc]
    assert "HR 134 > 120" in high["detail"]
    assert "marked artefact" in high["detail"]
    assert "escalated at " + iso_ms(ADMITTED + 1860) in high["detail"]
    assert "mitigation" not in silent
    assert "evidence" not in silent
    assert codes(silent["code"], "urn:station:code:alarm-kind") == ["technical"]
    # A nurse's free text may name anyone: only the mark leaves.
    assert COMMENT not in bundle.payload.decode()


def _no_identity(payload: bytes, *who: tuple[str, str, date]) -> None:
    text = payload.decode().lower()
    for name, mrn, born in who:
        for value in (*name.split(), mrn, born.isoformat(), born.strftime("%Y%m%d")):
            assert value.lower() not in text, value


def test_a_patient_without_export_consent_appears_only_pseudonymously(ward: Ward) -> None:
    bundle = build_stay_bundle(ward.stores(), BedOccupant("Bed 2"), NOW)
    found = entries(bundle.payload)
    _no_identity(bundle.payload, BEN)
    (patient,) = of_type(found, "Patient")
    assert patient["identifier"] == [
        {"system": f"urn:station:{STATION}:patient", "value": ward.refused.patient_id}
    ]
    assert not {"name", "birthDate", "telecom", "address"} & patient.keys()
    assert patient["meta"]["security"][0]["code"] == "PSEUDED"
    assert json.loads(bundle.payload)["meta"]["security"][0]["code"] == "PSEUDED"
    # The consent rule of the CSV export: none of their values leave, pseudonym or not.
    summary = bundle.summary
    assert summary.withheld
    assert not summary.identified
    assert (summary.observations, summary.alarms) == (0, 0)
    assert summary.left_out > 0
    assert summary.alarms_left_out == 1
    assert not of_type(found, "Observation")
    assert not of_type(found, "DetectedIssue")


def test_a_pseudonymous_export_keeps_the_values_and_drops_the_identity(ward: Ward) -> None:
    bundle = build_stay_bundle(
        ward.stores(), PatientStay(ward.consented.patient_id, pseudonymous=True), NOW
    )
    found = entries(bundle.payload)
    _no_identity(bundle.payload, ADA)
    assert bundle.summary.observations == 120 * 3 + 24
    (patient,) = of_type(found, "Patient")
    assert patient["identifier"][0]["value"] == ward.consented.patient_id
    assert patient["meta"]["security"][0]["code"] == "PSEUDED"


def test_a_bed_with_nobody_admitted_leaves_every_patient_out(ward: Ward) -> None:
    bundle = build_stay_bundle(ward.stores(), BedPeriod("Bed 1", NOW - 3 * 3600, NOW), NOW)
    found = entries(bundle.payload)
    _no_identity(bundle.payload, ADA)
    (patient,) = of_type(found, "Patient")
    assert patient == {
        "resourceType": "Patient",
        "meta": {"security": [patient["meta"]["security"][0]]},
    }
    assert patient["meta"]["security"][0]["code"] == "ANONYED"
    observations = of_type(found, "Observation")
    assert len(observations) == 60 * 3 + 12  # the hour before Olga came
    assert all(o["effectivePeriod"]["end"] <= iso_ms(ADMITTED) for o in observations)
    assert [i["identifier"][0]["value"] for i in of_type(found, "DetectedIssue")] == ["a0"]
    assert bundle.summary.left_out == 120  # Olga's minutes
    assert bundle.summary.alarms_left_out == 2


def test_a_short_stay_carries_every_sample(ward: Ward) -> None:
    bundle = build_stay_bundle(ward.stores(), BedOccupant("Bed 3"), NOW)
    found = entries(bundle.payload)
    observations = of_type(found, "Observation")
    times = {o["effectiveDateTime"] for o in observations}
    assert len(observations) == 2 * len(times) == 2 * 240  # HR and SpO2, every 5 s, 20 min
    assert min(times) == iso_ms(BRIEF_AT)
    assert max(times) == iso_ms(NOW - 5)
    spo2 = [o for o in observations if codes(o["code"], LOINC) == [VITAL_CODES["oxygen"].loinc]]
    assert {o["valueQuantity"]["value"] for o in spo2} == {95.5}
    # mon-3 was never onboarded: a Device with its id only, said so.
    (device,) = of_type(found, "Device")
    assert device["status"] == "unknown"
    assert "manufacturer" not in device


def test_the_file_is_owner_only_and_never_replaced(ward: Ward, tmp_path: Path) -> None:
    out = tmp_path / "stay.json"
    summary = export_stay(ward.stores(), BedOccupant("Bed 1"), out, NOW, write_new_private)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert summary.size == out.stat().st_size
    check_bundle(out.read_bytes())
    before = out.read_bytes()
    with pytest.raises(FhirExportError, match="exists"):
        export_stay(ward.stores(), BedOccupant("Bed 1"), out, NOW, write_new_private)
    assert out.read_bytes() == before
    with pytest.raises(FhirExportError, match="could not write"):
        export_stay(
            ward.stores(), BedOccupant("Bed 1"), tmp_path / "no" / "x.json", NOW, write_export
        )
    assert summary.details(out)["patient"] == ward.consented.patient_id


def test_a_stay_that_does_not_exist_is_said_so(ward: Ward) -> None:
    with pytest.raises(StayError, match="no patient is admitted to Bed 4"):
        build_stay_bundle(ward.stores(), BedOccupant("Bed 4"), NOW)
    with pytest.raises(StayError, match="no patient 0123"):
        build_stay_bundle(ward.stores(), PatientStay("0123"), NOW)
    with pytest.raises(StayError, match="empty"):
        build_stay_bundle(ward.stores(), BedPeriod("Bed 4", NOW, NOW - 60), NOW)


def test_unreadable_stores_are_named(ward: Ward, tmp_path: Path) -> None:
    def damaged(name: str) -> StayStores:
        data = tmp_path / name
        shutil.copytree(ward.data, data)
        (data / name).write_bytes(b"not what the station wrote")
        settings = from_mapping({"station": {"id": STATION, "data_dir": str(data)}})
        return StayStores.of(settings)

    for name, said in (
        (PATIENT_FILE, "patient table cannot be read"),
        (TREND_FILE, "trend or alarm store cannot be read"),
        (ALARM_STORE_FILE, "trend or alarm store cannot be read"),
        (REGISTRY_FILE, "device registry cannot be read"),
    ):
        with pytest.raises(FhirExportError, match=said):
            build_stay_bundle(damaged(name), BedOccupant("Bed 1"), NOW)


def test_validation_names_the_place_never_the_value() -> None:
    bad = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:8c2b5b1e-0f2c-4c7e-9a55-7f1f4a3b2c1d",
                "resource": {"resourceType": "Patient", "birthDate": "Secret Person"},
            }
        ],
    }
    with pytest.raises(FhirExportError) as caught:
        check_bundle(json.dumps(bad).encode())
    assert "entry.0.resource.birthDate" in str(caught.value)
    assert "Secret" not in str(caught.value)


def test_a_part_past_the_first_is_named_by_its_place_in_the_whole_bundle() -> None:
    good = {"resourceType": "Device", "status": "unknown"}
    entry = [
        {"fullUrl": f"urn:uuid:{i:08x}-0f2c-4c7e-9a55-7f1f4a3b2c1d", "resource": dict(good)}
        for i in range(CHECK_PART + 5)
    ]
    entry[CHECK_PART + 3]["resource"]["status"] = ""
    document = {"resourceType": "Bundle", "type": "collection", "entry": entry}
    with pytest.raises(FhirExportError, match=rf"entry\.{CHECK_PART + 3}\.resource\.status"):
        check_in_parts(document)
    entry[CHECK_PART + 3]["resource"]["status"] = "unknown"
    check_in_parts(document)
