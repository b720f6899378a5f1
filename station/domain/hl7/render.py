"""A report rendered as an HL7 2.6 ER7 message with ``hl7apy``, strictly validated.

Why strict validation twice: ``hl7apy`` checks the message it built (cardinality, datatypes,
lengths), and then the text it wrote is parsed back under the same strict level, which is what a
receiving engine does; a message that fails either never leaves the station (the caller
quarantines it and says so). Every field is set component by component, never by joining
strings, and every text from the network or a person goes through :func:`~.text.clean`.

Structure (IHE PCD TF-2): MSH, PID, PV1, then per device an OBR with its OBX (ORU^R01); for an
alarm one OBR with its facets as OBX (ORU^R40). HL7 2.6 defines no ORU_R40 structure, so an alarm
report names the ORU_R01 structure it follows (``ORU^R40^ORU_R01``); its segments are the ones
PCD-04 lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL  # type: ignore[import-untyped]
from hl7apy.core import Message  # type: ignore[import-untyped]
from hl7apy.exceptions import HL7apyException  # type: ignore[import-untyped]
from hl7apy.parser import parse_message  # type: ignore[import-untyped]

from station.domain.hl7 import codes
from station.domain.hl7.codes import AlarmEvent, Code, Profile
from station.domain.hl7.content import AlarmReport, ObservationReport, Report, kind_of
from station.domain.hl7.subjects import Identity
from station.domain.hl7.text import clean, dt, dtm, number
from station.domain.vital_codes import VITAL_CODES, VitalCode

STRICT = VALIDATION_LEVEL.STRICT
NAME_MAX = 20
"""IS and HD-1 fields (points of care, beds, facilities): 20 characters in HL7 2.6."""
TEXT_MAX = 199
_LIMIT = re.compile(r"(-?\d+(?:\.\d+)?) ([<>]) (-?\d+(?:\.\d+)?)$")
"""The end of a physiological alarm's message: ``HR 134 > 120`` (value, sign, limit)."""
MEDIAN = Code("MEDIAN", "median of the period", "L")
"""OBX-17 of a summary's values: how the value was made (a local code)."""
UNKNOWN_PATIENT = "UNKNOWN"
"""PID-3 of an alarm from a bed with nobody admitted (PID-3 is required; PID-5 then says
``^^^^^^U``, IHE's unknown patient, and PV1-3 carries the bed)."""


@dataclass(frozen=True, slots=True)
class Header:
    """Who sends to whom (MSH-3…6), and whose MRNs these are (PID-3.4)."""

    sending_application: str
    sending_facility: str
    receiving_application: str = ""
    receiving_facility: str = ""
    mrn_authority: str = ""


class RenderError(ValueError):
    """The report cannot be rendered as a valid HL7 2.6 message."""


def render(report: Report, header: Header, identity: Identity | None = None) -> str:
    """The report as ER7 text (segments ended by CR), strictly valid HL7 2.6. ``identity`` is
    given only where the patient's export consent allows it.

    Raises:
        RenderError: the message does not validate (named, never quoting identity).
    """
    try:
        message = Message("ORU_R01", version=codes.VERSION, validation_level=STRICT)
        _msh(message.msh, report, header)
        result = message.add_group("ORU_R01_PATIENT_RESULT")
        _patient(result.add_group("ORU_R01_PATIENT"), report, header, identity)
        if isinstance(report, ObservationReport):
            _observations(result, report, header)
        else:
            _alarm(result, report, header)
        message.validate()
        text: str = message.to_er7()
        parse_message(text, validation_level=STRICT, find_groups=True).validate()
    except (HL7apyException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RenderError(
            f"{kind_of(report)} {report.control_id} does not validate: {type(exc).__name__}"
        ) from exc
    return text


def _set(element: Any, **components: str) -> None:
    """Set named components of a field (``cwe_1="…"``), skipping empty ones."""
    for name, value in components.items():
        if value:
            setattr(element, name, value)


def _code(field: Any, code: Code, alternate: Code | None = None) -> None:
    _set(field, cwe_1=code.code, cwe_2=code.text, cwe_3=code.system)
    if alternate is not None:
        _set(field, cwe_4=alternate.code, cwe_5=alternate.text, cwe_6=alternate.system)


def _msh(msh: Any, report: Report, header: Header) -> None:
    _set(msh.msh_3, hd_1=header.sending_application)
    _set(msh.msh_4, hd_1=header.sending_facility)
    _set(msh.msh_5, hd_1=header.receiving_application)
    _set(msh.msh_6, hd_1=header.receiving_facility)
    msh.msh_7 = dtm(report.created_at)
    _set(msh.msh_9, msg_1="ORU", msg_2=kind_of(report), msg_3="ORU_R01")
    msh.msh_10 = report.control_id
    _set(msh.msh_11, pt_1="P")
    _set(msh.msh_12, vid_1=codes.VERSION)
    msh.msh_15 = "AL"  # IHE PCD: an accept acknowledgement for every message
    msh.msh_16 = "NE"  # ... and no application acknowledgement
    msh.msh_18 = "UNICODE UTF-8"
    profile: Profile = codes.PCD01 if isinstance(report, ObservationReport) else codes.PCD04
    _set(
        msh.add_field("MSH_21"),
        ei_1=profile.entity,
        ei_2=profile.namespace,
        ei_3=profile.oid,
        ei_4=profile.kind,
    )


def _patient(group: Any, report: Report, header: Header, identity: Identity | None) -> None:
    pid = group.add_segment("PID")
    if identity is not None:
        mrn = pid.add_field("PID_3")
        _set(mrn, cx_1=clean(identity.mrn, TEXT_MAX), cx_5="MR")
        if header.mrn_authority:
            _set(mrn.cx_4, hd_1=header.mrn_authority)
    if report.patient_id is not None:
        pseudonym = pid.add_field("PID_3")
        _set(pseudonym, cx_1=report.patient_id, cx_5="PI")
        _set(pseudonym.cx_4, hd_1=header.sending_facility)
    else:
        _set(pid.add_field("PID_3"), cx_1=UNKNOWN_PATIENT)
    name = pid.add_field("PID_5")
    if identity is not None:
        # The station keeps one name field: it goes whole as the family name, typed legal.
        _set(name.xpn_1, fn_1=clean(identity.name, TEXT_MAX))
        _set(name, xpn_7="L")
        pid.pid_7 = dt(identity.birth_date)
    else:
        _set(name, xpn_7="U")
    pv1 = group.add_group("ORU_R01_VISIT").pv1
    pv1.pv1_2 = "I" if report.patient_id is not None else "U"
    _set(
        pv1.pv1_3,
        pl_1=clean(header.sending_facility, NAME_MAX),
        pl_3=clean(report.bed, NAME_MAX),
    )


def _obx(
    group: Any, set_id: int, sub_id: str, value_type: str, code: Code, alternate: Code | None = None
) -> Any:
    obx = group.add_group("ORU_R01_OBSERVATION").obx
    obx.obx_1 = str(set_id)
    obx.obx_2 = value_type
    _code(obx.obx_3, code, alternate)
    obx.obx_4 = sub_id
    return obx


def _vital(vital: VitalCode) -> tuple[Code, Code]:
    """A vital sign's MDC code with its LOINC code as the alternate (OBX-3)."""
    return Code(str(vital.mdc), vital.mdc_refid, "MDC"), Code(
        vital.loinc, vital.loinc_display, "LN"
    )


def _unit(obx: Any, vital: VitalCode) -> None:
    """OBX-6: the MDC unit with its UCUM spelling as the alternate."""
    _code(
        obx.obx_6,
        Code(str(vital.unit_mdc), vital.unit_refid, "MDC"),
        Code(vital.ucum, vital.ucum, "UCUM"),
    )


def _device(obx: Any, device: str) -> None:
    """OBX-18: the device that measured (the equipment instance)."""
    if device:
        _set(obx.add_field("OBX_18"), ei_1=clean(device, TEXT_MAX))


def _observations(result: Any, report: ObservationReport, header: Header) -> None:
    set_id = 0
    for n, device in enumerate(report.devices, start=1):
        order = result.add_group("ORU_R01_ORDER_OBSERVATION")
        obr = order.obr
        obr.obr_1 = str(n)
        _set(obr.obr_3, ei_1=f"{report.control_id}.{n}", ei_2=header.sending_application)
        _code(obr.obr_4, codes.MONITORING)
        obr.obr_7 = dtm(report.start)
        if report.summary:
            obr.obr_8 = dtm(report.end)
        for m, metric in enumerate(device.metrics, start=1):
            vital = VITAL_CODES[metric.parameter]
            set_id += 1
            obx = _obx(order, set_id, f"{n}.1.1.{m}", "NM", *_vital(vital))
            obx.obx_5 = number(metric.value)
            _unit(obx, vital)
            obx.obx_11 = "R"  # device data, not validated by a clinician yet
            obx.obx_14 = dtm(report.end)
            if report.summary:
                _code(obx.add_field("OBX_17"), MEDIAN)
            _device(obx, device.device)


def _alarm(result: Any, report: AlarmReport, header: Header) -> None:
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    obr = order.obr
    obr.obr_1 = "1"
    _set(obr.obr_3, ei_1=report.alarm_id, ei_2=header.sending_application)
    _code(obr.obr_4, codes.EVT_ALARM)
    obr.obr_7 = dtm(report.raised_at)
    vital = VITAL_CODES.get(report.parameter)
    limit = _LIMIT.search(report.message) if report.kind == "physiological" else None
    event = codes.EVT_ALARM
    if vital is not None and limit is not None:
        event = codes.EVT_HI if limit.group(2) == ">" else codes.EVT_LO
    prefix = f"1.1.1.{vital.mdc if vital is not None else 0}"
    priority = codes.PRIORITY_FLAGS[report.priority]
    kind = codes.ALERT_KINDS[report.kind]

    obx = _obx(order, 1, f"{prefix}.1", "ST", event)
    obx.obx_5 = clean(report.message, TEXT_MAX)
    flags = (("H" if event is codes.EVT_HI else "L"),) if event is not codes.EVT_ALARM else ()
    for flag in (*flags, priority, kind):
        obx.add_field("OBX_8").value = flag
    _facet_common(obx, report)
    if report.by is not None:
        _set(obx.add_field("OBX_16"), xcn_1=clean(report.by, TEXT_MAX))

    if vital is not None and limit is not None:
        obx = _obx(order, 2, f"{prefix}.2", "NM", *_vital(vital))
        obx.obx_5 = number(float(limit.group(1)))
        _unit(obx, vital)
    else:
        obx = _obx(order, 2, f"{prefix}.2", "ST", codes.ALERT_SOURCE)
        obx.obx_5 = clean(report.parameter, TEXT_MAX)
    _facet_common(obx, report)

    cleared = report.event is AlarmEvent.CLEAR
    values = (
        report.event.phase,
        "inactive" if cleared else "active",
        "alert-acknowledged" if report.acknowledged else "enabled",
        priority,
        kind,
    )  # in the order of codes.ALARM_ATTRIBUTES: phase, state, inactivation, priority, type
    facets = zip(codes.ALARM_ATTRIBUTES, values, strict=True)
    for n, (code, value) in enumerate(facets, start=3):
        obx = _obx(order, n, f"{prefix}.{n}", "ST", code)
        obx.obx_5 = value
        _facet_common(obx, report)


def _facet_common(obx: Any, report: AlarmReport) -> None:
    obx.obx_11 = "F"
    obx.obx_14 = dtm(report.at)
    _device(obx, report.device_id)
