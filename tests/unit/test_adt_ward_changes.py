"""The admission path's operations the ADT feed adds or names differently: an identity
correction (A08), a discharge taken back (A13), a cancelled admission or transfer audited as
such. Each is saved to the real encrypted patient table (memory keyring) and audited under the
interface's actor and role, naming the patient by pseudonym only; a refusal saves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from station.config.settings import from_mapping
from station.domain.adt.table_edits import corrected_identity, discharge_cancelled
from station.domain.patients.records import PatientError
from station.domain.patients.table import PatientTable
from station.domain.roles import INTERFACE_ROLE, interface_actor
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.patient_store import PatientStore, PatientStoreError
from station.services.ward_changes import WardChanges
from tests.fakes import RecordingAudit

T0 = 1_700_000_000.0
BEDS = ("Bed 1", "Bed 2", "Bed 3", "Bed 4")
NAME, MRN, BORN = "Ottilie Vandersloot", "MRN-4711", date(1950, 1, 2)
ACTOR = interface_actor("adt", "HOSP")


class FailingStore(PatientStore):
    """A store whose disk is full: every save fails."""

    def save(self, table: PatientTable) -> None:
        raise OSError(28, "No space left on device")


@dataclass
class Ward:
    changes: WardChanges
    audit: RecordingAudit
    store: PatientStore
    clock: list[float]


def make_ward(tmp_path: Path, store_class: type[PatientStore] = PatientStore) -> Ward:
    settings = from_mapping({"station": {"id": "ward-x", "data_dir": str(tmp_path)}})
    store = store_class(tmp_path / "patients.enc", "ward-x")
    audit, clock = RecordingAudit(), [T0]
    changes = WardChanges(
        settings, audit, lambda: clock[0], None, store, DeviceRegistry(tmp_path / "devices.json"),
        tmp_path / "trust", BEDS,
    )  # fmt: skip
    return Ward(changes, audit, store, clock)


def admitted(ward: Ward, bed: str = "Bed 1") -> str:
    outcome = ward.changes.admit(bed, NAME, MRN, BORN, ACTOR, INTERFACE_ROLE)
    assert outcome.value is not None
    ward.clock[0] += 60
    return outcome.value.patient_id


def test_the_interface_actor_keeps_only_safe_characters() -> None:
    assert interface_actor("adt", "HOSP 1\x1b[31m|x") == "adt:HOSP131mx"
    assert interface_actor("adt", "\u202e") == "adt:unnamed"


def test_an_identity_correction_is_saved_and_audited_by_field(tmp_path: Path) -> None:
    ward = make_ward(tmp_path)
    patient_id = admitted(ward)
    outcome = ward.changes.correct_identity(
        patient_id, "Ottilie Vander-Sloot", date(1950, 1, 3), ACTOR, INTERFACE_ROLE
    )
    assert outcome.error is None
    kept = ward.store.load().patient(patient_id)
    assert kept is not None
    assert (kept.name, kept.birth_date, kept.mrn) == ("Ottilie Vander-Sloot", date(1950, 1, 3), MRN)
    record = ward.audit.records[-1]
    assert (record["action"], record["actor"], record["role"], record["target"]) == (
        "patient.identity_update",
        ACTOR,
        INTERFACE_ROLE,
        "Bed 1",
    )
    assert record["details"] == {"patient": patient_id, "fields": ["name", "birth_date"]}
    assert "Vander" not in repr(ward.audit.records)


def test_an_identity_already_right_is_not_recorded_again(tmp_path: Path) -> None:
    ward = make_ward(tmp_path)
    patient_id = admitted(ward)
    before = len(ward.audit.records)
    outcome = ward.changes.correct_identity(patient_id, NAME, BORN, ACTOR, INTERFACE_ROLE)
    assert outcome.error is None
    assert len(ward.audit.records) == before


def test_a_correction_the_rules_refuse_saves_nothing(tmp_path: Path) -> None:
    ward = make_ward(tmp_path)
    patient_id = admitted(ward)
    outcome = ward.changes.correct_identity(patient_id, "", date(2999, 1, 1), ACTOR, INTERFACE_ROLE)
    assert isinstance(outcome.error, PatientError)
    kept = ward.store.load().patient(patient_id)
    assert kept is not None
    assert kept.birth_date == BORN


def test_a_discharge_taken_back_reopens_the_stay(tmp_path: Path) -> None:
    ward = make_ward(tmp_path)
    patient_id = admitted(ward, "Bed 2")
    ward.changes.discharge("Bed 2", ACTOR, INTERFACE_ROLE)
    ward.clock[0] += 60
    outcome = ward.changes.cancel_discharge(patient_id, ACTOR, INTERFACE_ROLE)
    assert outcome.error is None
    kept = ward.store.load()
    again = kept.occupant("Bed 2")
    assert again is not None
    assert again.patient_id == patient_id
    assert [s.until for s in again.stays] == [None]
    assert ward.audit.actions()[-2:] == ["patient.discharge", "patient.discharge_cancel"]
    assert ward.audit.records[-1]["details"] == {"patient": patient_id}


def test_a_discharge_cannot_be_taken_back_into_a_taken_bed(tmp_path: Path) -> None:
    ward = make_ward(tmp_path)
    patient_id = admitted(ward, "Bed 2")
    ward.changes.discharge("Bed 2", ACTOR, INTERFACE_ROLE)
    ward.changes.admit("Bed 2", "Someone Else", "MRN-9", BORN, "nurse", "nurse")
    outcome = ward.changes.cancel_discharge(patient_id, ACTOR, INTERFACE_ROLE)
    assert isinstance(outcome.error, PatientError)
    assert "Bed 2" in str(outcome.error)
    kept = ward.store.load().patient(patient_id)
    assert kept is not None
    assert not kept.active


def test_cancels_are_named_as_such_in_the_trail(tmp_path: Path) -> None:
    ward = make_ward(tmp_path)
    admitted(ward, "Bed 1")
    ward.changes.transfer("Bed 1", "Bed 3", ACTOR, INTERFACE_ROLE, "patient.transfer_cancel")
    ward.changes.discharge("Bed 3", ACTOR, INTERFACE_ROLE, "patient.admit_cancel")
    assert ward.audit.actions()[-2:] == ["patient.transfer_cancel", "patient.admit_cancel"]
    assert {r["actor"] for r in ward.audit.records} == {ACTOR}


def test_a_correction_that_cannot_be_saved_changes_nothing_and_says_so(tmp_path: Path) -> None:
    ward = make_ward(tmp_path)
    table = PatientTable()
    patient = table.admit("Bed 1", name=NAME, mrn=MRN, birth_date=BORN, by="n", at=T0)
    PatientStore(tmp_path / "patients.enc", "ward-x").save(table)
    failing = make_ward(tmp_path, FailingStore)
    outcome = failing.changes.correct_identity(
        patient.patient_id, "New Name", None, ACTOR, INTERFACE_ROLE
    )
    assert isinstance(outcome.error, PatientStoreError)
    assert failing.changes.saved.occupant("Bed 1") == patient
    assert failing.audit.actions()[-1] == "patients.fault"
    assert ward.store.load().occupant("Bed 1") == patient


# -- the table edits themselves (pure) -----------------------------------------------------------


def test_edits_leave_the_table_given_unchanged_and_refuse_unknown_patients() -> None:
    table = PatientTable()
    patient = table.admit("Bed 1", name=NAME, mrn=MRN, birth_date=BORN, by="n", at=T0)
    before = table.to_dict()
    new, changed = corrected_identity(table, patient.patient_id, name="X Y", birth_date=None)
    assert changed == ("name",)
    assert table.to_dict() == before
    assert new.occupant("Bed 1") is not None
    with pytest.raises(PatientError):
        corrected_identity(table, "0" * 32, name="X", birth_date=None)
    with pytest.raises(PatientError, match="not discharged"):
        discharge_cancelled(table, patient.patient_id)


def test_a_discharge_cannot_be_taken_back_while_the_mrn_is_admitted_again() -> None:
    table = PatientTable()
    first = table.admit("Bed 1", name=NAME, mrn=MRN, birth_date=BORN, by="n", at=T0)
    table.discharge("Bed 1", by="n", at=T0 + 60)
    table.admit("Bed 2", name=NAME, mrn=MRN, birth_date=BORN, by="n", at=T0 + 120)
    with pytest.raises(PatientError, match="MRN"):
        discharge_cancelled(table, first.patient_id)
