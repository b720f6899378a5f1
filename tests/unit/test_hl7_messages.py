"""HL7 messages as the station renders them: each validates strictly against HL7 2.6 (hl7apy),
carries the shared vital-sign codes with UCUM units, the PCD-04 alarm facets per event, identity
only when given, and text from the network or a person can never change its structure."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from station.domain.hl7.codes import AlarmEvent
from station.domain.hl7.content import (
    AlarmReport,
    DeviceValues,
    Metric,
    ObservationReport,
    ReportError,
    from_json,
    to_json,
)
from station.domain.hl7.render import Header, RenderError, render
from station.domain.hl7.subjects import Identity
from station.domain.hl7.text import clean, control_id, dtm, number
from station.domain.vital_codes import VITAL_CODES

T0 = 1_790_000_000.0
HEADER = Header("CENTRAL-STATION", "ward-1", "EHR", "HOSP", "HOSP-MRN")
PSEUDONYM = "0f" * 16


def _observation(**values: float) -> ObservationReport:
    metrics = tuple(Metric(p, v) for p, v in values.items())
    device = DeviceValues("mon-1", metrics, 58)
    return ObservationReport("c" * 20, T0, "Bed 1", PSEUDONYM, T0 - 60, T0, (device,))


def _alarm(event: AlarmEvent, **changes: object) -> AlarmReport:
    fields: dict[str, object] = {
        "control_id": "d" * 20, "created_at": T0, "bed": "Bed 2", "patient_id": PSEUDONYM,
        "alarm_id": "a1" * 8, "event": event, "device_id": "mon-2", "kind": "physiological",
        "parameter": "oxygen", "priority": "high", "message": "SpO2 85 < 90",
        "raised_at": T0 - 30, "at": T0, "by": None, "acknowledged": False,
    }  # fmt: skip
    fields.update(changes)
    return AlarmReport(**fields)  # type: ignore[arg-type]


def _parsed(text: str):  # type: ignore[no-untyped-def]
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate()
    return message


def _segments(text: str, name: str) -> list[list[str]]:
    return [s.split("|") for s in text.split("\r") if s.startswith(name + "|")]


def test_an_observation_summary_validates_with_mdc_loinc_and_ucum() -> None:
    text = render(_observation(heartrate=72.5, oxygen=97.0, temperature=36.85), HEADER)
    message = _parsed(text)
    assert message.msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
    assert message.msh.msh_12.to_er7() == "2.6"
    assert message.msh.msh_10.to_er7() == "c" * 20
    assert message.msh.msh_21.to_er7().startswith("IHE_PCD_001^IHE PCD^")
    obx = _segments(text, "OBX")
    assert [o[5] for o in obx] == ["72.5", "97", "36.85"]
    for o, parameter in zip(obx, ("heartrate", "oxygen", "temperature"), strict=True):
        code = VITAL_CODES[parameter]
        assert o[2] == "NM"
        assert o[3].split("^") == [str(code.mdc), code.mdc_refid, "MDC", code.loinc,
                                   code.loinc_display, "LN"]  # fmt: skip
        assert o[6].split("^") == [str(code.unit_mdc), code.unit_refid, "MDC", code.ucum,
                                   code.ucum, "UCUM"]  # fmt: skip
        assert o[11] == "R"  # device data, unvalidated
        assert o[14] == dtm(T0)
        assert o[17].startswith("MEDIAN^")
        assert o[18] == "mon-1"
    (obr,) = _segments(text, "OBR")
    assert (obr[7], obr[8]) == (dtm(T0 - 60), dtm(T0))


def test_without_identity_the_patient_is_the_pseudonym_and_an_unknown_name() -> None:
    text = render(_observation(heartrate=70), HEADER)
    (pid,) = _segments(text, "PID")
    assert pid[3] == f"{PSEUDONYM}^^^ward-1^PI"
    assert pid[5] == "^^^^^^U"
    assert len(pid) <= 7  # no birth date


def test_with_identity_the_mrn_name_and_birth_date_go_out_beside_the_pseudonym() -> None:
    identity = Identity("Ada Example", "MRN-7", date(1961, 2, 3))
    text = render(_observation(heartrate=70), HEADER, identity)
    (pid,) = _segments(text, "PID")
    assert pid[3] == f"MRN-7^^^HOSP-MRN^MR~{PSEUDONYM}^^^ward-1^PI"
    assert (pid[5], pid[7]) == ("Ada Example^^^^^^L", "19610203")
    (pv1,) = _segments(text, "PV1")
    assert (pv1[2], pv1[3]) == ("I", "ward-1^^Bed 1")


@pytest.mark.parametrize(
    ("event", "phase", "state", "inactivation", "by"),
    [
        (AlarmEvent.RAISE, "start", "active", "enabled", ""),
        (AlarmEvent.ESCALATE, "escalate", "active", "enabled", ""),
        (AlarmEvent.ACKNOWLEDGE, "update", "active", "alert-acknowledged", "nurse-ann"),
        (AlarmEvent.CLEAR, "end", "inactive", "alert-acknowledged", "nurse-ann"),
    ],
)
def test_each_alarm_event_carries_its_pcd04_facets(
    event: AlarmEvent, phase: str, state: str, inactivation: str, by: str
) -> None:
    acked = bool(by)
    text = render(_alarm(event, by=by or None, acknowledged=acked), HEADER)
    message = _parsed(text)
    assert message.msh.msh_9.to_er7() == "ORU^R40^ORU_R01"
    assert message.msh.msh_21.to_er7().startswith("IHE_PCD_ACM_001^IHE PCD^")
    (obr,) = _segments(text, "OBR")
    assert obr[3] == "a1" * 8 + "^CENTRAL-STATION"
    assert obr[4] == "196616^MDC_EVT_ALARM^MDC"
    obx = _segments(text, "OBX")
    assert obx[0][3] == "196670^MDC_EVT_LO^MDC"
    assert obx[0][5] == "SpO2 85 < 90"
    assert obx[0][8] == "L~PH~SP"
    assert obx[0][16] == by
    assert (obx[1][2], obx[1][3].split("^")[0], obx[1][5]) == ("NM", "150456", "85")
    facets = {o[3]: o[5] for o in obx[2:]}
    assert facets == {  # the codes of the IHE PCD TF-2 PCD-04 examples
        "68481^MDC_ATTR_EVENT_PHASE^MDC": phase,
        "68482^MDC_ATTR_ALARM_STATE^MDC": state,
        "68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC": inactivation,
        "68484^MDC_ATTR_ALARM_PRIORITY^MDC": "PH",
        "68485^MDC_ATTR_ALERT_TYPE^MDC": "SP",
    }
    assert [o[4].rsplit(".", 1)[1] for o in obx] == ["1", "2", "3", "4", "5", "6", "7"]
    assert all(o[14] == dtm(T0) and o[18] == "mon-2" for o in obx)


def test_a_technical_alarm_of_an_empty_bed_names_the_bed_and_an_unknown_patient() -> None:
    report = _alarm(AlarmEvent.RAISE, patient_id=None, kind="technical", parameter="no_data",
                    priority="medium", message="No data")  # fmt: skip
    text = render(report, HEADER)
    _parsed(text)
    (pid,) = _segments(text, "PID")
    assert (pid[3], pid[5]) == ("UNKNOWN", "^^^^^^U")
    (pv1,) = _segments(text, "PV1")
    assert (pv1[2], pv1[3]) == ("U", "ward-1^^Bed 2")
    obx = _segments(text, "OBX")
    assert obx[0][3] == "196616^MDC_EVT_ALARM^MDC"
    assert obx[0][8] == "PM~ST"
    assert (obx[1][3], obx[1][5]) == ("68480^MDC_ATTR_ALERT_SOURCE^MDC", "no_data")


def test_delimiters_in_text_from_people_and_devices_cannot_change_the_structure() -> None:
    hostile = "Ann|X^Y~Z\\W&V\rOBX|99|ST|evil"
    identity = Identity(hostile, "MRN-1", date(1970, 1, 1))
    report = _alarm(AlarmEvent.RAISE, kind="device", parameter="device_alert", message=hostile,
                    device_id="dev|1", bed="Bed^3")  # fmt: skip
    text = render(report, HEADER, identity)
    _parsed(text)
    assert [s.split("|")[0] for s in text.split("\r") if s].count("OBX") == 7
    assert "evil" not in [o[3] for o in _segments(text, "OBX")]
    (pid,) = _segments(text, "PID")
    assert pid[5] == "Ann X Y Z W V OBX 99 ST evil^^^^^^L"
    assert _segments(text, "PV1")[0][3] == "ward-1^^Bed 3"


def test_a_report_that_cannot_be_valid_is_refused_by_name_not_sent() -> None:
    with pytest.raises(RenderError, match=f"R01 {'c' * 20} does not validate"):
        render(_observation(heartrate=math.nan), HEADER)
    unknown = _alarm(AlarmEvent.RAISE, priority="critical")  # no such priority
    with pytest.raises(RenderError):
        render(unknown, HEADER)


def test_reports_survive_the_outbox_as_json_and_bad_rows_are_named() -> None:
    for report in (_observation(heartrate=70, oxygen=95), _alarm(AlarmEvent.CLEAR, by="ann")):
        assert from_json(to_json(report)) == report
    for bad in ("{", '{"report": "R99"}', '{"report": "R40"}', "[]"):
        with pytest.raises(ReportError):
            from_json(bad)


def test_text_times_numbers_and_control_ids() -> None:
    assert clean("  a|b^c~d\\e&f\x00g\n h  ", 99) == "a b c d e f g h"
    assert clean("x" * 30, 20) == "x" * 20
    assert dtm(0.5) == "19700101000000.500+0000"
    assert [number(v) for v in (72.0, 36.85, 97.456, -0.0, 0.004)] == [
        "72", "36.85", "97.46", "0", "0",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="finite"):
        number(math.inf)
    first = control_id("ward-1", "R40", "abc", "raise")
    assert first == control_id("ward-1", "R40", "abc", "raise")
    assert len(first) == 20
    assert first != control_id("ward-1", "R40", "abc", "clear")
    assert first != control_id("ward-2", "R40", "abc", "raise")
