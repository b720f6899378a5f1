"""The codes each vital sign goes out under: LOINC (FHIR's vital-signs profile), IEEE 11073
MDC (IHE PCD's HL7 v2 messages) and UCUM units.

Why one table: the HL7 interface, the FHIR export and the Grafana dashboards name the same five
parameters, and a receiving system that maps one code must never see another for the same value.
The station's own names (:attr:`~station.domain.alarms.AlarmLimits.PARAMETERS`) stay internal.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class VitalCode:
    """One parameter's codes. ``mdc`` is the numeric MDC code (partition 2, SCADA) with its
    reference id; ``unit_mdc`` the unit's; ``ucum`` the unit as UCUM writes it."""

    loinc: str
    loinc_display: str
    mdc: int
    mdc_refid: str
    ucum: str
    unit_mdc: int
    unit_refid: str


VITAL_CODES = MappingProxyType(
    {
        "heartrate": VitalCode(
            "8867-4", "Heart rate", 147842, "MDC_ECG_HEART_RATE",
            "/min", 264864, "MDC_DIM_BEAT_PER_MIN",
        ),
        "oxygen": VitalCode(
            "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", 150456,
            "MDC_PULS_OXIM_SAT_O2", "%", 262688, "MDC_DIM_PERCENT",
        ),
        "systolic": VitalCode(
            "8480-6", "Systolic blood pressure", 150021, "MDC_PRESS_BLD_NONINV_SYS",
            "mm[Hg]", 266016, "MDC_DIM_MMHG",
        ),
        "diastolic": VitalCode(
            "8462-4", "Diastolic blood pressure", 150022, "MDC_PRESS_BLD_NONINV_DIA",
            "mm[Hg]", 266016, "MDC_DIM_MMHG",
        ),
        "temperature": VitalCode(
            "8310-5", "Body temperature", 150364, "MDC_TEMP_BODY",
            "Cel", 268192, "MDC_DIM_DEGC",
        ),
    }
)  # fmt: skip
"""Station parameter name → its codes; every parameter that can alarm has one."""

BLOOD_PRESSURE_PANEL = ("85354-9", "Blood pressure panel with all children optional")
"""FHIR's vital-signs blood pressure profile: one Observation with systolic and diastolic as
components under this code."""
