"""Unit tests of :mod:`station.domain.patients`: every admission rule, transfer and discharge,
devices, consent history, the JSON document, and that identity never reaches a ``repr``."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from station.domain.patients.records import (
    LABELS,
    ConsentEvent,
    Patient,
    PatientError,
    Purpose,
    Stay,
)
from station.domain.patients.table import PatientTable

T0 = 1_700_000_000.0
NAME = "Ada Lovelace"
MRN = "MRN-0042/7"
BIRTH = date(1951, 3, 14)


def admit(table: PatientTable, bed: str = "Bed 1", **changes: object) -> Patient:
    fields: dict[str, object] = {
        "name": NAME,
        "mrn": MRN,
        "birth_date": BIRTH,
        "by": "nurse.kim",
        "at": T0,
    }
    fields.update(changes)
    return table.admit(bed, **fields)  # type: ignore[arg-type]


def consent(
    table: PatientTable,
    patient_id: str,
    purpose: Purpose = Purpose.DISPLAY,
    *,
    granted: bool = True,
    at: float = T0 + 10,
    **changes: object,
) -> ConsentEvent:
    fields: dict[str, object] = {
        "granted": granted,
        "given_by": "patient",
        "representative": "",
        "captured_by": "nurse.kim",
        "policy_version": "2024-01",
        "at": at,
    }
    fields.update(changes)
    return table.record_consent(patient_id, purpose, **fields)  # type: ignore[arg-type]


@pytest.fixture
def table() -> PatientTable:
    return PatientTable()


# -- purposes ------------------------------------------------------------------------------------


def test_purposes_and_their_labels() -> None:
    assert [p.value for p in Purpose] == ["display", "storage", "export"]
    assert isinstance(Purpose.DISPLAY, str)
    assert LABELS[Purpose.DISPLAY] == "Display at the station"
    assert LABELS[Purpose.STORAGE] == "Storage in the historian"
    assert LABELS[Purpose.EXPORT] == "Export and sharing"


# -- admission -----------------------------------------------------------------------------------


def test_admit_creates_an_active_patient_in_the_bed(table: PatientTable) -> None:
    p = admit(table, name="  Ada Lovelace ", mrn=" MRN-0042/7\n")
    assert len(p.patient_id) == 32
    assert int(p.patient_id, 16) >= 0
    assert p.name == NAME
    assert p.mrn == MRN
    assert p.birth_date == BIRTH
    assert (p.admitted_at, p.admitted_by) == (T0, "nurse.kim")
    assert p.stays == (Stay("Bed 1", T0, None),)
    assert p.bed == "Bed 1"
    assert p.active
    assert p.devices == ()
    assert (p.discharged_at, p.discharged_by) == (None, None)
    assert table.occupant("Bed 1") == p
    assert table.patient(p.patient_id) == p
    assert table.active() == (p,)
    assert table.occupant("Bed 2") is None


def test_admit_uses_a_given_patient_id(table: PatientTable) -> None:
    pid = "0123456789abcdef0123456789abcdef"
    assert admit(table, patient_id=pid).patient_id == pid
    with pytest.raises(PatientError, match="already in use"):
        admit(table, "Bed 2", mrn="OTHER", patient_id=pid)


@pytest.mark.parametrize("pid", ["", "0123", "0123456789ABCDEF0123456789ABCDEF", "x" * 32])
def test_admit_refuses_a_malformed_patient_id(table: PatientTable, pid: str) -> None:
    with pytest.raises(PatientError, match="patient id"):
        admit(table, patient_id=pid)


def test_patient_ids_are_fresh(table: PatientTable) -> None:
    a = admit(table, "Bed 1", mrn="A1")
    b = admit(table, "Bed 2", mrn="B2")
    assert a.patient_id != b.patient_id


def test_an_occupied_bed_is_refused(table: PatientTable) -> None:
    admit(table, "Bed 1", mrn="A1")
    with pytest.raises(PatientError, match="Bed 1 is occupied"):
        admit(table, "Bed 1", mrn="B2")
    assert len(table.active()) == 1


def test_an_mrn_already_admitted_is_refused_naming_its_bed(table: PatientTable) -> None:
    admit(table, "Bed 1")
    with pytest.raises(PatientError, match="already admitted in Bed 1") as info:
        admit(table, "Bed 2", mrn=MRN.lower())  # case does not make another patient
    assert MRN not in str(info.value)
    assert table.occupant("Bed 2") is None


def test_a_discharged_mrn_may_be_admitted_again(table: PatientTable) -> None:
    first = admit(table, "Bed 1")
    table.discharge("Bed 1", by="nurse.kim", at=T0 + 100)
    again = admit(table, "Bed 2", at=T0 + 200)
    assert again.patient_id != first.patient_id
    assert table.patient(first.patient_id) is not None


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "name is empty"),
        ("   \t", "name is empty"),
        ("x" * 121, "longer than 120"),
        ("Ada\nLovelace", "control characters"),
        ("Ada\x00", "control characters"),
        ("Ada\u202eecalevoL", "control characters"),
        (None, "must be text"),
    ],
)
def test_a_bad_name_is_refused(table: PatientTable, name: object, match: str) -> None:
    with pytest.raises(PatientError, match=match):
        admit(table, name=name)
    assert table.active() == ()


def test_names_at_the_limit_and_in_any_script_are_accepted(table: PatientTable) -> None:
    assert admit(table, "Bed 1", name="x" * 120, mrn="A1").name == "x" * 120
    assert admit(table, "Bed 2", name="Zoë Ñúñez-Øster 李小龙", mrn="B2").name.startswith("Zoë")


@pytest.mark.parametrize(
    "mrn", ["", "   ", "A" * 33, "MRN 42", "MRN_42", "MRN#42", "Ünï", "12\n34", None]
)
def test_a_bad_mrn_is_refused(table: PatientTable, mrn: object) -> None:
    with pytest.raises(PatientError, match="MRN"):
        admit(table, mrn=mrn)


@pytest.mark.parametrize("mrn", ["1", "A" * 32, "ab-12/3.4", "0000"])
def test_good_mrns_are_accepted(table: PatientTable, mrn: str) -> None:
    assert admit(table, mrn=mrn).mrn == mrn


def test_birth_date_rules(table: PatientTable) -> None:
    today = date.fromtimestamp(T0)
    with pytest.raises(PatientError, match="in the future"):
        admit(table, birth_date=today + timedelta(days=1))
    with pytest.raises(PatientError, match="before 1900"):
        admit(table, birth_date=date(1899, 12, 31))
    with pytest.raises(PatientError, match="must be a date"):
        admit(table, birth_date="1951-03-14")
    with pytest.raises(PatientError, match="must be a date"):
        admit(table, birth_date=datetime(1951, 3, 14))
    assert admit(table, "Bed 1", mrn="A1", birth_date=today).birth_date == today
    assert admit(table, "Bed 2", mrn="B2", birth_date=date(1900, 1, 1)).active


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"by": ""}, "admitting user"),
        ({"at": float("nan")}, "not a valid time"),
        ({"at": True}, "not a valid time"),
    ],
)
def test_admit_needs_a_user_and_a_time(
    table: PatientTable, changes: dict[str, Any], match: str
) -> None:
    with pytest.raises(PatientError, match=match):
        admit(table, **changes)


def test_an_empty_bed_name_is_refused(table: PatientTable) -> None:
    with pytest.raises(PatientError, match="bed is empty"):
        admit(table, " ")


def test_error_messages_never_quote_identity(table: PatientTable) -> None:
    admit(table, "Bed 1")
    messages = []
    for changes in (
        {"mrn": MRN},
        {"mrn": "bad mrn!"},
        {"name": "Ada\x07", "mrn": "A2"},
        {"mrn": "A3", "birth_date": date(3000, 1, 1)},
    ):
        with pytest.raises(PatientError) as info:
            admit(table, "Bed 2", **changes)
        messages.append(str(info.value))
    for text in messages:
        for secret in (NAME, MRN, "bad mrn!", "Ada", "3000"):
            assert secret not in text


# -- discharge -----------------------------------------------------------------------------------


def test_discharge_keeps_the_record_closes_the_stay_and_releases_devices(
    table: PatientTable,
) -> None:
    p = admit(table)
    table.associate_device("Bed 1", "mon-7", at=T0 + 5)
    done = table.discharge("Bed 1", by="dr.ruiz", at=T0 + 100)
    assert done.patient_id == p.patient_id
    assert not done.active
    assert done.bed is None
    assert done.stays == (Stay("Bed 1", T0, T0 + 100),)
    assert (done.discharged_at, done.discharged_by) == (T0 + 100, "dr.ruiz")
    assert done.devices == ()
    assert table.patient(p.patient_id) == done  # kept (retention)
    assert table.all_patients() == (done,)
    assert table.occupant("Bed 1") is None
    assert table.active() == ()
    assert table.bed_of_device("mon-7") is None
    assert table.history_beds(p.patient_id) == done.stays


def test_discharge_of_an_empty_bed_is_refused(table: PatientTable) -> None:
    with pytest.raises(PatientError, match="no patient is admitted to Bed 3"):
        table.discharge("Bed 3", by="nurse.kim", at=T0)
    admit(table)
    table.discharge("Bed 1", by="nurse.kim", at=T0 + 1)
    with pytest.raises(PatientError, match="no patient"):
        table.discharge("Bed 1", by="nurse.kim", at=T0 + 2)


def test_discharge_before_admission_is_refused(table: PatientTable) -> None:
    admit(table)
    with pytest.raises(PatientError, match="before the patient's current stay"):
        table.discharge("Bed 1", by="nurse.kim", at=T0 - 1)
    assert table.occupant("Bed 1") is not None
    with pytest.raises(PatientError, match="discharging user"):
        table.discharge("Bed 1", by=" ", at=T0 + 1)


def test_a_discharged_bed_can_take_a_new_patient(table: PatientTable) -> None:
    admit(table)
    table.discharge("Bed 1", by="nurse.kim", at=T0 + 1)
    newcomer = admit(table, mrn="NEW-1", at=T0 + 2)
    assert table.occupant("Bed 1") == newcomer


# -- transfer ------------------------------------------------------------------------------------


def test_transfer_keeps_history_and_devices(table: PatientTable) -> None:
    p = admit(table)
    table.associate_device("Bed 1", "mon-7", at=T0 + 1)
    table.associate_device("Bed 1", "spo2-3", at=T0 + 2)
    moved = table.transfer("Bed 1", "Bed 4", by="nurse.kim", at=T0 + 50)
    assert moved.patient_id == p.patient_id
    assert moved.bed == "Bed 4"
    assert moved.stays == (Stay("Bed 1", T0, T0 + 50), Stay("Bed 4", T0 + 50, None))
    assert moved.devices == ("mon-7", "spo2-3")
    assert table.bed_of_device("mon-7") == "Bed 4"
    assert table.occupant("Bed 1") is None
    assert table.occupant("Bed 4") == moved
    again = table.transfer("Bed 4", "Bed 2", by="nurse.kim", at=T0 + 90)
    assert [s.bed for s in table.history_beds(p.patient_id)] == ["Bed 1", "Bed 4", "Bed 2"]
    assert again.stays[-1] == Stay("Bed 2", T0 + 90, None)
    done = table.discharge("Bed 2", by="nurse.kim", at=T0 + 120)
    assert done.stays[-1] == Stay("Bed 2", T0 + 90, T0 + 120)


def test_transfer_refusals(table: PatientTable) -> None:
    admit(table, "Bed 1", mrn="A1")
    admit(table, "Bed 2", mrn="B2")
    with pytest.raises(PatientError, match="Bed 2 is occupied"):
        table.transfer("Bed 1", "Bed 2", by="nurse.kim", at=T0 + 1)
    with pytest.raises(PatientError, match="already in Bed 1"):
        table.transfer("Bed 1", "Bed 1", by="nurse.kim", at=T0 + 1)
    with pytest.raises(PatientError, match="no patient is admitted to Bed 3"):
        table.transfer("Bed 3", "Bed 5", by="nurse.kim", at=T0 + 1)
    with pytest.raises(PatientError, match="before the patient's current stay"):
        table.transfer("Bed 1", "Bed 5", by="nurse.kim", at=T0 - 1)
    with pytest.raises(PatientError, match="transferring user"):
        table.transfer("Bed 1", "Bed 5", by="", at=T0 + 1)
    occupant = table.occupant("Bed 1")
    assert occupant is not None
    assert occupant.stays == (Stay("Bed 1", T0, None),)  # nothing changed


# -- devices -------------------------------------------------------------------------------------


def test_associate_and_release_devices(table: PatientTable) -> None:
    admit(table)
    p = table.associate_device("Bed 1", "mon-7", at=T0 + 1)
    assert p.devices == ("mon-7",)
    assert table.bed_of_device("mon-7") == "Bed 1"
    p = table.release_device("Bed 1", "mon-7", at=T0 + 2)
    assert p.devices == ()
    assert table.bed_of_device("mon-7") is None


def test_a_device_belongs_to_one_active_patient(table: PatientTable) -> None:
    admit(table, "Bed 1", mrn="A1")
    admit(table, "Bed 2", mrn="B2")
    table.associate_device("Bed 1", "mon-7", at=T0 + 1)
    with pytest.raises(PatientError, match="associated with the patient in Bed 1"):
        table.associate_device("Bed 2", "mon-7", at=T0 + 2)
    with pytest.raises(PatientError, match="already associated with Bed 1"):
        table.associate_device("Bed 1", "mon-7", at=T0 + 2)
    table.discharge("Bed 1", by="nurse.kim", at=T0 + 3)
    assert table.associate_device("Bed 2", "mon-7", at=T0 + 4).devices == ("mon-7",)


def test_device_refusals(table: PatientTable) -> None:
    with pytest.raises(PatientError, match="no patient"):
        table.associate_device("Bed 1", "mon-7", at=T0)
    admit(table)
    with pytest.raises(PatientError, match="not associated with Bed 1"):
        table.release_device("Bed 1", "mon-7", at=T0 + 1)
    for bad in ("", " mon-7", "mon\n7", "m" * 129):
        with pytest.raises(PatientError, match="device id"):
            table.associate_device("Bed 1", bad, at=T0 + 1)
    with pytest.raises(PatientError, match="before the patient's current stay"):
        table.associate_device("Bed 1", "mon-7", at=T0 - 1)
    assert table.occupant("Bed 1") is not None
    assert table.bed_of_device("mon-7") is None


# -- consent -------------------------------------------------------------------------------------


def test_no_consent_is_not_given(table: PatientTable) -> None:
    p = admit(table)
    assert table.consent_events(p.patient_id) == ()
    for purpose in Purpose:
        assert not table.allows(p.patient_id, purpose)
    assert not table.allows("f" * 32, Purpose.DISPLAY)


def test_consent_is_per_purpose_and_the_latest_wins(table: PatientTable) -> None:
    p = admit(table)
    given = consent(table, p.patient_id, Purpose.DISPLAY, granted=True, at=T0 + 1)
    assert given == ConsentEvent(
        p.patient_id, Purpose.DISPLAY, True, "patient", "", "nurse.kim", "2024-01", T0 + 1, ""
    )
    assert table.allows(p.patient_id, Purpose.DISPLAY)
    assert not table.allows(p.patient_id, Purpose.STORAGE)
    consent(table, p.patient_id, Purpose.STORAGE, granted=True, at=T0 + 2)
    withdrawn = consent(
        table, p.patient_id, Purpose.DISPLAY, granted=False, at=T0 + 3, note="asked at night"
    )
    assert not withdrawn.granted
    assert not table.allows(p.patient_id, Purpose.DISPLAY)
    assert table.allows(p.patient_id, Purpose.STORAGE)
    # Recording order decides, not the clock: a late-recorded event with an earlier time wins.
    consent(table, p.patient_id, Purpose.DISPLAY, granted=True, at=T0)
    assert table.allows(p.patient_id, Purpose.DISPLAY)
    history = table.consent_events(p.patient_id)
    assert [(e.purpose, e.granted) for e in history] == [
        (Purpose.DISPLAY, True),
        (Purpose.STORAGE, True),
        (Purpose.DISPLAY, False),
        (Purpose.DISPLAY, True),
    ]


def test_consent_history_is_per_patient(table: PatientTable) -> None:
    a = admit(table, "Bed 1", mrn="A1")
    b = admit(table, "Bed 2", mrn="B2")
    consent(table, a.patient_id, Purpose.EXPORT)
    assert table.allows(a.patient_id, Purpose.EXPORT)
    assert not table.allows(b.patient_id, Purpose.EXPORT)
    assert table.consent_events(b.patient_id) == ()


def test_consent_may_be_withdrawn_after_discharge(table: PatientTable) -> None:
    p = admit(table)
    consent(table, p.patient_id, Purpose.STORAGE)
    table.discharge("Bed 1", by="nurse.kim", at=T0 + 100)
    consent(table, p.patient_id, Purpose.STORAGE, granted=False, at=T0 + 200)
    assert not table.allows(p.patient_id, Purpose.STORAGE)


def test_a_representative_gives_consent_by_name(table: PatientTable) -> None:
    p = admit(table)
    event = consent(
        table, p.patient_id, given_by="representative", representative="  Byron Lovelace "
    )
    assert (event.given_by, event.representative) == ("representative", "Byron Lovelace")
    assert table.allows(p.patient_id, Purpose.DISPLAY)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"given_by": "representative", "representative": ""}, "representative's name is empty"),
        ({"given_by": "representative", "representative": "  "}, "representative's name"),
        ({"given_by": "patient", "representative": "Byron"}, "leave the representative empty"),
        ({"given_by": "doctor"}, "patient or by a representative"),
        ({"policy_version": ""}, "policy version is empty"),
        ({"policy_version": "  "}, "policy version is empty"),
        ({"captured_by": ""}, "capturing user"),
        ({"granted": "yes"}, "granted"),
        ({"at": float("inf")}, "not a valid time"),
        ({"note": "x" * 501}, "note is longer"),
        ({"note": "bell\x07"}, "note contains control"),
    ],
)
def test_consent_refusals(table: PatientTable, changes: dict[str, Any], match: str) -> None:
    p = admit(table)
    with pytest.raises(PatientError, match=match):
        consent(table, p.patient_id, **changes)
    assert table.consent_events(p.patient_id) == ()


def test_consent_for_an_unknown_patient_or_purpose_is_refused(table: PatientTable) -> None:
    p = admit(table)
    with pytest.raises(PatientError, match="unknown patient"):
        consent(table, "e" * 32)
    with pytest.raises(PatientError, match="patient id"):
        consent(table, "not-a-pseudonym")
    with pytest.raises(PatientError, match="unknown consent purpose"):
        consent(table, p.patient_id, "research")  # type: ignore[arg-type]
    assert consent(table, p.patient_id, "export").purpose is Purpose.EXPORT  # type: ignore[arg-type]


def test_a_multiline_note_is_kept(table: PatientTable) -> None:
    p = admit(table)
    assert consent(table, p.patient_id, note="line one\nline two").note == "line one\nline two"


# -- repr ----------------------------------------------------------------------------------------


def test_repr_hides_identity(table: PatientTable) -> None:
    p = admit(table)
    event = consent(
        table, p.patient_id, given_by="representative", representative="Byron", note="by phone"
    )
    for text in (repr(p), str(p), repr(table.active()), f"{p!r}", repr(event), repr(table)):
        for secret in (NAME, MRN, BIRTH.isoformat(), "1951", "Byron", "by phone"):
            assert secret not in text
    assert repr(p) == f"Patient(patient_id={p.patient_id!r}, bed='Bed 1')"
    table.discharge("Bed 1", by="nurse.kim", at=T0 + 1)
    discharged = table.patient(p.patient_id)
    assert repr(discharged) == f"Patient(patient_id={p.patient_id!r}, bed=None)"


# -- the document --------------------------------------------------------------------------------


def busy_table() -> PatientTable:
    table = PatientTable()
    a = admit(table, "Bed 1", mrn="A1")
    b = admit(table, "Bed 2", mrn="B2", name="Grace Hopper", birth_date=date(1906, 12, 9))
    table.associate_device("Bed 1", "mon-1", at=T0 + 1)
    table.associate_device("Bed 2", "mon-2", at=T0 + 1)
    table.transfer("Bed 1", "Bed 3", by="nurse.kim", at=T0 + 10)
    table.discharge("Bed 2", by="dr.ruiz", at=T0 + 20)
    consent(table, a.patient_id, Purpose.DISPLAY)
    consent(table, a.patient_id, Purpose.STORAGE, given_by="representative", representative="Kin")
    consent(table, b.patient_id, Purpose.EXPORT, granted=False, note="no\nthanks")
    return table


def test_round_trip_through_json_is_equal() -> None:
    table = busy_table()
    doc = table.to_dict()
    assert doc["version"] == 1
    again = PatientTable.from_dict(json.loads(json.dumps(doc)))
    assert again == table
    assert again.to_dict() == doc
    assert again.active() == table.active()
    for p in table.all_patients():
        assert again.consent_events(p.patient_id) == table.consent_events(p.patient_id)
    assert PatientTable.from_dict(PatientTable().to_dict()) == PatientTable()
    assert table != PatientTable()


def _doc() -> dict[str, object]:
    return json.loads(json.dumps(busy_table().to_dict()))  # type: ignore[no-any-return]


def _patients(doc: dict[str, object]) -> list[dict[str, object]]:
    return doc["patients"]  # type: ignore[return-value]


def _edit_patient(index: int, **changes: object) -> dict[str, object]:
    doc = _doc()
    _patients(doc)[index].update(changes)
    return doc


def _bad_docs() -> list[tuple[object, str]]:
    active_first = 0  # Bed 3, devices ["mon-1"]
    discharged = 1
    first = _patients(_doc())[active_first]
    two_in_a_bed = _doc()
    clone = dict(first, patient_id="a" * 32, mrn="C3", devices=[])
    _patients(two_in_a_bed).append(clone)
    same_mrn = _doc()
    _patients(same_mrn).append(
        dict(first, patient_id="b" * 32, stays=[{"bed": "Bed 9", "since": T0, "until": None}])
    )
    same_device = _doc()
    _patients(same_device).append(
        dict(
            first,
            patient_id="c" * 32,
            mrn="C3",
            stays=[{"bed": "Bed 9", "since": T0, "until": None}],
        )
    )
    twice = _doc()
    _patients(twice).append(dict(_patients(twice)[discharged]))
    orphan_consent = _doc()
    orphan_consent["consents"][0]["patient_id"] = "d" * 32  # type: ignore[index]
    bad_consent = _doc()
    bad_consent["consents"][1]["representative"] = ""  # type: ignore[index]
    return [
        ([], "not a JSON object"),
        (
            {"version": 2, "patients": [], "consents": []},
            r"written by a newer release of the station \(format 2",
        ),
        ({"version": 0, "patients": [], "consents": []}, r"format 0, older than"),
        ({"patients": [], "consents": []}, "names no format this station knows"),
        ({"version": 1, "patients": {}, "consents": []}, "patients is not a JSON list"),
        ({"version": 1, "patients": []}, "consents is not a JSON list"),
        ({"version": 1, "patients": [1], "consents": []}, "not a JSON object"),
        (_edit_patient(0, name=""), r"patients\[0\]: the name is empty"),
        (_edit_patient(0, mrn="a b"), "MRN"),
        (_edit_patient(0, patient_id="xyz"), "patient id"),
        (_edit_patient(0, birth_date="1951-02-30"), "not an ISO date"),
        (_edit_patient(0, birth_date="1890-01-01"), "before 1900"),
        (_edit_patient(0, birth_date="2999-01-01"), "in the future"),
        (_edit_patient(0, admitted_at="yesterday"), "admission time"),
        (_edit_patient(0, stays=[]), "no stay"),
        (_edit_patient(0, devices=["mon-1", "mon-1"]), "listed twice"),
        (_edit_patient(0, discharged_by="x"), "discharging user without"),
        (_edit_patient(discharged, devices=["mon-9"]), "still has devices"),
        (_edit_patient(discharged, discharged_by=None), "discharging user"),
        (
            _edit_patient(0, stays=[{"bed": "Bed 1", "since": T0 + 1, "until": None}]),
            "first stay does not begin at admission",
        ),
        (
            _edit_patient(
                0,
                stays=[
                    {"bed": "Bed 1", "since": T0, "until": T0 + 10},
                    {"bed": "Bed 3", "since": T0 + 11, "until": None},
                ],
            ),
            "do not follow",
        ),
        (
            _edit_patient(
                0,
                stays=[
                    {"bed": "Bed 1", "since": T0, "until": None},
                    {"bed": "Bed 3", "since": T0 + 10, "until": None},
                ],
            ),
            "do not follow",
        ),
        (
            _edit_patient(0, stays=[{"bed": "Bed 1", "since": T0, "until": T0 + 5}]),
            "open exactly while",
        ),
        (
            _edit_patient(
                discharged,
                stays=[{"bed": "Bed 2", "since": T0, "until": T0 + 5}],
            ),
            "does not end at discharge",
        ),
        (
            _edit_patient(
                discharged,
                stays=[{"bed": "Bed 2", "since": T0, "until": T0 - 5}],
                discharged_at=T0 - 5,
            ),
            "ends before it begins",
        ),
        (two_in_a_bed, "Bed 3 holds two active patients"),
        (same_mrn, "MRN is already admitted in Bed 3"),
        (same_device, "device mon-1 is also associated with Bed 3"),
        (twice, "patient id used twice"),
        (orphan_consent, "consent for an unknown patient"),
        (bad_consent, r"consents\[1\]: the representative's name is empty"),
    ]


@pytest.mark.parametrize(("doc", "match"), _bad_docs())
def test_from_dict_refuses_a_bad_document(doc: object, match: str) -> None:
    with pytest.raises(PatientError, match=match):
        PatientTable.from_dict(doc)


def test_the_document_is_plain_json() -> None:
    doc = busy_table().to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
