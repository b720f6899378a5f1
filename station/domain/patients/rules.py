"""The rule for each field of a patient record or a consent, one function per field.

Why a module of their own: the table's methods and the stored document must accept exactly the
same values, so both call these. Each ``check_*`` returns the value as it is kept (text stripped
of surrounding blanks) or raises :class:`~station.domain.patients.records.PatientError`, whose
message names the field and never quotes its value.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime

from station.domain.patients.records import ConsentEvent, PatientError, Purpose

NAME_MAX = 120
NOTE_MAX = 500
DEVICE_ID_MAX = 128
EARLIEST_BIRTH = date(1900, 1, 1)
GIVEN_BY = ("patient", "representative")

_MRN = re.compile(r"[A-Za-z0-9./-]{1,32}")
_PATIENT_ID = re.compile(r"[0-9a-f]{32}")
# Bidirectional overrides and isolates: a name holding them can display as another name.
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def check_time(value: object, what: str = "time") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PatientError(f"the {what} is not a valid time")
    return float(value)


def local_date(at: float) -> date:
    """The station's local date at ``at``: a birth date is judged on the ward's calendar."""
    try:
        return date.fromtimestamp(at)
    except (OverflowError, OSError, ValueError):
        raise PatientError("the time is out of range") from None


def check_text(value: object, what: str, limit: int) -> str:
    """Stripped text of 1…``limit`` characters without control or direction-override
    characters (which could hide or disguise what the screen shows)."""
    if not isinstance(value, str):
        raise PatientError(f"the {what} must be text")
    text = value.strip()
    if not text:
        raise PatientError(f"the {what} is empty")
    if len(text) > limit:
        raise PatientError(f"the {what} is longer than {limit} characters")
    if any(_hidden(c) for c in text):
        raise PatientError(f"the {what} contains control characters")
    return text


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Zl", "Zp"} or char in _BIDI


def check_name(value: object) -> str:
    return check_text(value, "name", NAME_MAX)


def check_bed(value: object) -> str:
    return check_text(value, "bed", NAME_MAX)


def check_user(value: object, what: str) -> str:
    return check_text(value, what, NAME_MAX)


def check_mrn(value: object) -> str:
    if not isinstance(value, str):
        raise PatientError("the MRN must be text")
    text = value.strip()
    if not _MRN.fullmatch(text):
        raise PatientError("the MRN must be 1 to 32 letters, digits, '-', '/' or '.'")
    return text


def check_device_id(value: object) -> str:
    text = check_text(value, "device id", DEVICE_ID_MAX)
    if text != value:
        raise PatientError("the device id has blanks around it")
    return text


def check_birth_date(value: object, today: date) -> date:
    """A real date between 1900 and ``today`` (the station's local date of the admission)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise PatientError("the date of birth must be a date")
    if value > today:
        raise PatientError("the date of birth is in the future")
    if value < EARLIEST_BIRTH:
        raise PatientError("the date of birth is before 1900")
    return value


def check_patient_id(value: object) -> str:
    if not isinstance(value, str) or not _PATIENT_ID.fullmatch(value):
        raise PatientError("the patient id must be 32 lowercase hex digits (a uuid4 hex)")
    return value


def check_purpose(value: object) -> Purpose:
    if isinstance(value, str) and value in {p.value for p in Purpose}:
        return Purpose(value)
    raise PatientError(
        f"unknown consent purpose {value!r}; one of {', '.join(p.value for p in Purpose)}"
    )


def check_consent(
    *,
    patient_id: object,
    purpose: object,
    granted: object,
    given_by: object,
    representative: object,
    captured_by: object,
    policy_version: object,
    at: object,
    note: object,
) -> ConsentEvent:
    if not isinstance(granted, bool):
        raise PatientError("consent must be granted (true) or withdrawn (false)")
    if given_by not in GIVEN_BY:
        raise PatientError("consent is given by the patient or by a representative")
    if not isinstance(representative, str):
        raise PatientError("the representative's name must be text")
    if given_by == "representative":
        representative = check_text(representative, "representative's name", NAME_MAX)
    elif representative.strip():
        raise PatientError("the patient gave this consent: leave the representative empty")
    else:
        representative = ""
    if not isinstance(note, str):
        raise PatientError("the note must be text")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise PatientError(f"the note is longer than {NOTE_MAX} characters")
    if any(_hidden(c) for c in note.replace("\n", "")):
        raise PatientError("the note contains control characters")
    return ConsentEvent(
        patient_id=check_patient_id(patient_id),
        purpose=check_purpose(purpose),
        granted=granted,
        given_by=str(given_by),
        representative=representative,
        captured_by=check_user(captured_by, "capturing user"),
        policy_version=check_text(policy_version, "policy version", NAME_MAX),
        at=check_time(at),
        note=note,
    )
