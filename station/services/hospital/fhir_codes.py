"""The code systems, profiles and identifier systems of the FHIR export, in one place.

Why a module of its own: every resource of a bundle names a system, and a receiving system maps
by these strings. The vital signs' own codes (LOINC, MDC, UCUM) live in
:mod:`station.domain.vital_codes`, shared with the HL7 interface; what is here is FHIR's side:
the terminology servers' URIs, the vital-signs profiles, the security labels that say a
resource is pseudonymised or anonymised, and the station's own identifier systems.

The station has no web domain of its own, so its identifier systems are URNs built from the
station id (``urn:station:<id>:patient``): unique per station, and a reader sees at once whose
local identifier it is. Codes that are not the station's but the software's (alarm kinds,
alarm actions) are under ``urn:station:code:``.
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MDC = "urn:iso:std:iso:11073:10101"
"""IEEE 11073-10101 (MDC), as FHIR names it; the HL7 interface sends the same codes."""
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
SECURITY_LABELS = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
PSEUDONYMISED = "PSEUDED"
"""HL7's security label for a resource whose identity was replaced by a pseudonym."""
ANONYMISED = "ANONYED"
"""HL7's security label for a resource about nobody who can be named (a bed with no patient)."""

PROFILE = "http://hl7.org/fhir/StructureDefinition/"
VITAL_SIGNS_PROFILE = PROFILE + "vitalsigns"
SPECIFIC_PROFILES = {
    "heartrate": PROFILE + "heartrate",
    "temperature": PROFILE + "bodytemp",
    "bloodpressure": PROFILE + "bp",
}
"""The specific vital-signs profiles an Observation also claims. Oxygen saturation claims only
the generic one: FHIR's ``oxygensat`` profile requires LOINC 2708-6, and the station codes SpO2
as 59408-5 (by pulse oximetry), which that profile allows only beside 2708-6."""

ALARM_KIND = "urn:station:code:alarm-kind"
ALARM_ACTION = "urn:station:code:alarm-action"
SEVERITY = {"high": "high", "medium": "moderate", "low": "low"}
"""Alarm priority → DetectedIssue severity: FHIR's three levels match IEC 60601-1-8's three."""


@dataclass(frozen=True, slots=True)
class Systems:
    """The identifier systems of one station (see the module docstring)."""

    station_id: str

    def _urn(self, what: str) -> str:
        return f"urn:station:{self.station_id}:{what}"

    @property
    def patient(self) -> str:
        """The station's pseudonymous patient id (``Patient.patient_id``)."""
        return self._urn("patient")

    @property
    def mrn(self) -> str:
        """The medical record number typed in at admission (identified exports only)."""
        return self._urn("mrn")

    @property
    def device(self) -> str:
        """A device's id as it publishes it (CONTRACT §1 ``device_id``)."""
        return self._urn("device")

    @property
    def alarm(self) -> str:
        """An alarm's id (the alarms topic's ``alarm_id``)."""
        return self._urn("alarm")

    @property
    def export(self) -> str:
        """One export (the bundle's identifier)."""
        return self._urn("fhir-export")


def coding(system: str, code: str, display: str = "") -> dict[str, str]:
    """One Coding; the display only when there is one."""
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out
