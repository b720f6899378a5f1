"""The two changes to the patient table that the ADT feed makes and the dialogs never do: a
corrected identity (A08) and a discharge taken back (A13).

Why through the table's document and not new methods on the table: both rewrite a record the
table otherwise keeps as it was made (an admission's identity; a closed stay), and the document
form is where every rule across records is checked again (:meth:`PatientTable.from_dict`: one
active patient per bed, an MRN admitted once, stays in order, a birth date before the
admission). So a correction the rules would refuse raises :class:`PatientError`, and the table
passed in is never changed: the caller gets a new one.
"""

from __future__ import annotations

from datetime import date

from station.domain.patients.records import PatientError
from station.domain.patients.rules import check_name
from station.domain.patients.table import PatientTable


def corrected_identity(
    table: PatientTable, patient_id: str, *, name: str, birth_date: date | None
) -> tuple[PatientTable, tuple[str, ...]]:
    """A copy of ``table`` with the patient's name and birth date as given (an empty name or a
    None birth date: kept as they were), and the fields that changed (``name``,
    ``birth_date``; empty: nothing to correct). The MRN is the key and never changes.

    Raises:
        PatientError: no such patient, or the corrected record breaks a rule.
    """
    doc = table.to_dict()
    record = _record(doc, patient_id)
    changed: list[str] = []
    if name.strip():
        clean = check_name(name)
        if clean != record.get("name"):
            record["name"] = clean
            changed.append("name")
    if birth_date is not None and birth_date.isoformat() != record.get("birth_date"):
        record["birth_date"] = birth_date.isoformat()
        changed.append("birth_date")
    if not changed:
        return table, ()
    return PatientTable.from_dict(doc), tuple(changed)


def discharge_cancelled(table: PatientTable, patient_id: str) -> PatientTable:
    """A copy of ``table`` where the patient's discharge never happened: the last stay open
    again, in the same bed, from the same time. The devices released at the discharge are not
    brought back here (the caller associates the bed's device, as an admission does).

    Raises:
        PatientError: no such patient, not discharged, or the bed or the MRN is taken since.
    """
    doc = table.to_dict()
    record = _record(doc, patient_id)
    stays = record.get("stays")
    if record.get("discharged_at") is None or not isinstance(stays, list) or not stays:
        raise PatientError("the patient is not discharged; there is no discharge to cancel")
    last = stays[-1]
    if not isinstance(last, dict):
        raise PatientError("the patient record cannot be read")
    last["until"] = None
    record["discharged_at"] = None
    record["discharged_by"] = None
    return PatientTable.from_dict(doc)


def _record(doc: dict[str, object], patient_id: str) -> dict[str, object]:
    patients = doc.get("patients")
    if isinstance(patients, list):
        for record in patients:
            if isinstance(record, dict) and record.get("patient_id") == patient_id:
                return record
    raise PatientError("unknown patient")
