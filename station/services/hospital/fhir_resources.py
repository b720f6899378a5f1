"""The resources of a stay's bundle, as plain JSON-ready dictionaries: Patient, Device,
Observation (vital-signs profile) and DetectedIssue (an alarm).

Built as dictionaries, not as ``fhir.resources`` models one by one: a 72 h stay is some 17,000
Observations, and the export validates the whole bundle once, from exactly the bytes it writes
(:mod:`station.services.hospital.fhir_export`), which proves more than validating each part.

Why alarms are ``DetectedIssue`` and not ``Flag`` (also in ``docs/fhir-export.md``): a Flag is a
standing caution for whoever treats the patient ("falls risk"), with a period and no more. An
alarm episode is a finding about the patient's monitored state at a moment: DetectedIssue has
what it needs, a severity (high, moderate, low: IEC 60601-1-8's three priorities), the period
it was identified over (raised to cleared), what it implicates (the device), its evidence (the
vital sign) and its mitigation (the acknowledgement: what, when and by whom).

No free text a person typed goes into a resource but the identity an identified export carries:
a nurse's comment on an alarm may name anyone, so only its mark (from a fixed list) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from station.domain.alarm_history import AlarmEpisode
from station.domain.devices import DeviceRecord
from station.domain.patients.records import Patient
from station.domain.timefmt import iso_ms
from station.domain.vital_codes import BLOOD_PRESSURE_PANEL, VITAL_CODES, VitalCode
from station.services.hospital.fhir_codes import (
    ALARM_ACTION,
    ALARM_KIND,
    ANONYMISED,
    IDENTIFIER_TYPE,
    LOINC,
    MDC,
    OBSERVATION_CATEGORY,
    PSEUDONYMISED,
    SECURITY_LABELS,
    SEVERITY,
    SPECIFIC_PROFILES,
    UCUM,
    VITAL_SIGNS_PROFILE,
    Systems,
    coding,
)
from station.services.storage.trends import RAW, TrendData

Resource = dict[str, Any]
MINUTE_S = 60.0
SINGLE = ("heartrate", "oxygen", "temperature")
"""The vital signs that are one Observation each; blood pressure is one with two components."""
PRESSURE = ("systolic", "diastolic")
_CATEGORY = [{"coding": [coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")]}]
_KIND_TEXT = {
    "physiological": "Physiological alarm",
    "technical": "Technical alarm",
    "device": "Alarm of the device",
}


def reference(url: str) -> dict[str, str]:
    """A Reference to an entry of the bundle by its ``fullUrl``."""
    return {"reference": url}


def patient_resource(patient: Patient | None, identified: bool, systems: Systems) -> Resource:
    """The Patient: identified (name, MRN, birth date: export consent given), pseudonymous (the
    station's pseudonym only) or, for a bed with nobody admitted, anonymous (nothing)."""
    if patient is None:
        return {
            "resourceType": "Patient",
            "meta": {"security": [coding(SECURITY_LABELS, ANONYMISED, "anonymized")]},
        }
    pseudonym = {"system": systems.patient, "value": patient.patient_id}
    if not identified:
        return {
            "resourceType": "Patient",
            "meta": {"security": [coding(SECURITY_LABELS, PSEUDONYMISED, "pseudonymized")]},
            "identifier": [pseudonym],
            "active": patient.active,
        }
    mrn = {
        "use": "usual",
        "type": {"coding": [coding(IDENTIFIER_TYPE, "MR", "Medical record number")]},
        "system": systems.mrn,
        "value": patient.mrn,
    }
    return {
        "resourceType": "Patient",
        "identifier": [mrn, pseudonym],
        "active": patient.active,
        "name": [{"text": patient.name}],
        "birthDate": patient.birth_date.isoformat(),
    }


def device_resource(device_id: str, record: DeviceRecord | None, systems: Systems) -> Resource:
    """A Device: what its voucher said when it was onboarded, or only its id when it never
    was (open admission, or pinned in the config)."""
    out: Resource = {
        "resourceType": "Device",
        "identifier": [{"system": systems.device, "value": device_id}],
    }
    if record is None:
        out["status"] = "unknown"
        out["note"] = [{"text": "Not onboarded at the station: known only by the id it sends."}]
        return out
    out["status"] = "active" if record.active else "inactive"
    for key, value in (
        ("manufacturer", record.manufacturer),
        ("serialNumber", record.serial),
        ("modelNumber", record.model),
    ):
        if value.strip():
            out[key] = value
    if record.model.strip():
        out["deviceName"] = [{"name": record.model, "type": "model-name"}]
    return out


def _number(value: float) -> int | float:
    """A value as the CSV export writes it: three decimals at most, whole numbers as such."""
    rounded = round(value, 3)
    return int(rounded) if rounded.is_integer() else rounded


def _quantity(value: float, code: VitalCode) -> dict[str, Any]:
    return {"value": _number(value), "unit": code.ucum, "system": UCUM, "code": code.ucum}


def _concept(code: VitalCode) -> dict[str, Any]:
    return {
        "coding": [
            coding(LOINC, code.loinc, code.loinc_display),
            coding(MDC, str(code.mdc), code.mdc_refid),
        ],
        "text": code.loinc_display,
    }


def _observation(
    profile: str | None, subject: str, device: str | None, t: float, aggregate: bool
) -> Resource:
    profiles = [VITAL_SIGNS_PROFILE] + ([profile] if profile else [])
    out: Resource = {
        "resourceType": "Observation",
        "meta": {"profile": profiles},
        "status": "final",
        "category": _CATEGORY,
    }
    out["subject"] = reference(subject)
    if aggregate:
        out["effectivePeriod"] = {"start": iso_ms(t), "end": iso_ms(t + MINUTE_S)}
    else:
        out["effectiveDateTime"] = iso_ms(t)
    if device is not None:
        out["device"] = reference(device)
    return out


def observations(
    data: TrendData, rows: list[int], subject: str, device: str | None
) -> Iterator[tuple[str, Resource]]:
    """The Observations of the chosen ``rows`` of ``data``: ``(key, resource)``, the key unique
    per bed, parameter, time and resolution (for a stable ``fullUrl``).

    A raw row is one sample at its time; an aggregate row is a minute: its mean over the
    minute as ``effectivePeriod``, with how many samples and their range in a note.
    """
    aggregate = data.resolution != RAW
    for i in rows:
        t = float(data.t[i])
        stamp = f"{data.bed}|{round(t * 1000)}|{data.resolution}"
        for param in SINGLE:
            value = float(data.mean[param][i])
            if not math.isfinite(value):
                continue
            code = VITAL_CODES[param]
            obs = _observation(SPECIFIC_PROFILES.get(param), subject, device, t, aggregate)
            obs["code"] = _concept(code)
            obs["valueQuantity"] = _quantity(value, code)
            if aggregate:
                obs["note"] = [{"text": _range_note(data, param, i)}]
            yield f"{param}|{stamp}", obs
        present = [p for p in PRESSURE if math.isfinite(float(data.mean[p][i]))]
        if present:
            yield f"bloodpressure|{stamp}", _pressure(data, i, present, subject, device, t)


def _pressure(
    data: TrendData, i: int, present: list[str], subject: str, device: str | None, t: float
) -> Resource:
    aggregate = data.resolution != RAW
    obs = _observation(SPECIFIC_PROFILES["bloodpressure"], subject, device, t, aggregate)
    code, display = BLOOD_PRESSURE_PANEL
    obs["code"] = {"coding": [coding(LOINC, code, display)], "text": "Blood pressure"}
    obs["component"] = [
        {
            "code": _concept(VITAL_CODES[p]),
            "valueQuantity": _quantity(float(data.mean[p][i]), VITAL_CODES[p]),
        }
        for p in present
    ]
    if aggregate:
        obs["note"] = [{"text": "; ".join(_range_note(data, p, i) for p in present)}]
    return obs


def _range_note(data: TrendData, param: str, i: int) -> str:
    n = int(data.count[param][i])
    low, high = _number(float(data.min[param][i])), _number(float(data.max[param][i]))
    what = VITAL_CODES[param].loinc_display
    return f"{what}: mean of {n} samples in the minute (min {low}, max {high})"


def detected_issue(
    episode: AlarmEpisode, subject: str, device: str | None, systems: Systems
) -> Resource:
    """One alarm episode as a DetectedIssue (see the module docstring)."""
    kind = episode.kind.value
    period = {"start": iso_ms(episode.raised_at)}
    if episode.cleared_at is not None and episode.cleared_at >= episode.raised_at:
        period["end"] = iso_ms(episode.cleared_at)
    out: Resource = {
        "resourceType": "DetectedIssue",
        "identifier": [{"system": systems.alarm, "value": episode.alarm_id}],
        "status": "final" if episode.cleared_at is not None else "preliminary",
        "code": {
            "coding": [coding(ALARM_KIND, kind, _KIND_TEXT.get(kind, kind))],
            "text": _KIND_TEXT.get(kind, kind),
        },
        "severity": SEVERITY[episode.priority.value],
        "patient": reference(subject),
        "identifiedPeriod": period,
    }
    if device is not None:
        out["implicated"] = [reference(device)]
    vital = VITAL_CODES.get(episode.parameter)
    if vital is not None:
        out["evidence"] = [{"code": [_concept(vital)]}]
    detail = _detail(episode)
    if detail:
        out["detail"] = detail
    if episode.acknowledged_at is not None:
        mitigation: Resource = {
            "action": {
                "coding": [coding(ALARM_ACTION, "acknowledged", "Acknowledged at the station")]
            },
            "date": iso_ms(episode.acknowledged_at),
        }
        if episode.acknowledged_by:
            mitigation["author"] = {"display": episode.acknowledged_by}
        out["mitigation"] = [mitigation]
    return out


def _detail(episode: AlarmEpisode) -> str:
    """The message the nurse saw, the escalation, and the review marks (never their text)."""
    parts = [episode.message.strip()] if episode.message.strip() else []
    parts.append(f"parameter {episode.parameter}")
    if episode.escalated_at is not None:
        parts.append(f"escalated at {iso_ms(episode.escalated_at)}")
    marks = sorted({c.mark for c in episode.comments})
    if marks:
        parts.append("marked " + ", ".join(marks))
    return " · ".join(parts)
