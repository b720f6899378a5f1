"""A purged patient's refusal of export outlives the purge, as an exclusion that names nobody.

``[patients] keep_discharged_days`` after a discharge the station forgets the patient's identity
and consent history. The trend store, the alarm store and the event captures still hold that
stay's data under the bed, so dropping the history also dropped the one record that said "not
for export": the trend CSV, the shift report and the alarm history CSV would include that stay
again. The table now keeps an exclusion (bed, since, until; no pseudonym, no identity) for each
stay of a purged patient without export consent, saved in the encrypted table, and
:meth:`PatientTable.withheld` (what the export paths ask, through
:meth:`WardAdmin.export_excluded`) keeps returning it.

Pure Python and real files (the encrypted store with the suite's memory keyring); no Qt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from station.config.settings import from_mapping
from station.domain.patients.records import PatientError, Purpose, WithheldStay
from station.domain.patients.table import PatientTable
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.patient_store import PatientStore
from station.services.ward_changes import WardChanges

T0 = 1_700_000_000.0
DAY = 86_400.0
NAME, MRN = "Ottilie Vandersloot", "MRN-4711"


def ward_table() -> PatientTable:
    """Two patients discharged on day 1: one refused export (after a transfer), one consented;
    a third still admitted without export consent."""
    table = PatientTable()
    refused = table.admit("Bed 1", name=NAME, mrn=MRN, birth_date=date(1950, 1, 2), by="n", at=T0)
    table.transfer("Bed 1", "Bed 3", by="n", at=T0 + 3600)
    table.discharge("Bed 3", by="n", at=T0 + DAY)
    table.record_consent(
        refused.patient_id, Purpose.EXPORT, granted=False, given_by="patient",
        representative="", captured_by="n", policy_version="1", at=T0 + 10,
    )  # fmt: skip
    agreed = table.admit("Bed 2", name="Ann Other", mrn="M2", birth_date=date(1960, 3, 4), by="n",
                         at=T0)  # fmt: skip
    table.record_consent(
        agreed.patient_id, Purpose.EXPORT, granted=True, given_by="patient",
        representative="", captured_by="n", policy_version="1", at=T0 + 10,
    )  # fmt: skip
    table.discharge("Bed 2", by="n", at=T0 + DAY)
    table.admit("Bed 4", name="Still Here", mrn="M3", birth_date=date(1970, 5, 6), by="n", at=T0)
    return table


def test_the_purge_keeps_an_exclusion_per_stay_of_a_patient_who_refused_export() -> None:
    table = ward_table()
    before = set(table.withheld(Purpose.EXPORT))
    assert {(s.bed, s.since, s.until) for s in before} == {
        ("Bed 1", T0, T0 + 3600),
        ("Bed 3", T0 + 3600, T0 + DAY),
        ("Bed 4", T0, None),  # admitted, no export consent yet
    }
    gone = table.purge_discharged(T0 + 40 * DAY)
    assert len(gone) == 2
    assert table.export_exclusions == (
        WithheldStay("Bed 1", T0, T0 + 3600),
        WithheldStay("Bed 3", T0 + 3600, T0 + DAY),
    )
    # Exports of those times leave the stays out, as they did before the purge.
    after = {(s.bed, s.since, s.until) for s in table.withheld(Purpose.EXPORT)}
    assert after == {(s.bed, s.since, s.until) for s in before}
    # Only export: storage is about points not yet sent, and those went with the consent.
    assert {s.bed for s in table.withheld(Purpose.STORAGE)} == {"Bed 4"}


def test_an_exclusion_names_nobody_and_survives_the_document() -> None:
    table = ward_table()
    table.purge_discharged(T0 + 40 * DAY)
    doc = json.loads(json.dumps(table.to_dict()))
    assert doc["version"] == 1
    assert doc["exclusions"] == [
        {"bed": "Bed 1", "since": T0, "until": T0 + 3600},
        {"bed": "Bed 3", "since": T0 + 3600, "until": T0 + DAY},
    ]
    text = json.dumps(doc["exclusions"])
    assert NAME not in text
    assert MRN not in text
    again = PatientTable.from_dict(doc)
    assert again == table
    assert again.export_exclusions == table.export_exclusions
    assert "exclusions" not in PatientTable().to_dict()  # a table without any: as before


@pytest.mark.parametrize(
    ("exclusions", "problem"),
    [
        ({}, "exclusions is not a JSON list"),
        ([{"bed": "", "since": T0, "until": T0 + 1}], r"exclusions\[0\]: the bed is empty"),
        ([{"bed": "Bed 1", "since": T0, "until": None}], r"exclusions\[0\]: .*end"),
        ([{"bed": "Bed 1", "since": T0 + 1, "until": T0}], "ends before it begins"),
    ],
)
def test_a_damaged_exclusion_is_refused(exclusions: object, problem: str) -> None:
    doc = PatientTable().to_dict()
    doc["exclusions"] = exclusions
    with pytest.raises(PatientError, match=problem):
        PatientTable.from_dict(doc)


@dataclass
class Audit:
    records: list[dict[str, Any]] = field(default_factory=list)
    fault: str | None = None

    def record(self, action: str, **fields: Any) -> None:
        self.records.append({"action": action, **fields})


def test_the_stations_purge_at_start_saves_the_exclusions_and_audits_them(tmp_path: Path) -> None:
    settings = from_mapping(
        {
            "station": {"id": "ward-x", "data_dir": str(tmp_path)},
            "ward": {"beds": 4},
            "patients": {"keep_discharged_days": 30},
        }
    )
    store = PatientStore(tmp_path / "patients.enc", "ward-x")
    store.save(ward_table())
    audit = Audit()
    changes = WardChanges(
        settings, audit, lambda: T0 + 40 * DAY, None, store,
        DeviceRegistry(tmp_path / "devices.json"), tmp_path / "trust",
        ("Bed 1", "Bed 2", "Bed 3", "Bed 4"),
    )  # fmt: skip
    [record] = [r for r in audit.records if r["action"] == "patient.purge"]
    assert record["details"]["export_exclusions_kept"] == 2
    assert len(changes.saved.all_patients()) == 1
    # Saved, so the next start (and every export until then) still knows them.
    kept = store.load()
    assert kept.export_exclusions == changes.saved.export_exclusions
    assert {s.bed for s in kept.withheld(Purpose.EXPORT)} == {"Bed 1", "Bed 3", "Bed 4"}
