"""Unit tests of the historian's line protocol in :mod:`station.domain.lineprotocol` (CONTRACT §5).

Exact strings: the measurement, tags sorted and escaped, numeric fields only (the device's alert
text never becomes a field), and the time in milliseconds from the device timestamp for vitals and
from the event time for alarms. Vitals come from :func:`station.domain.ingest.parse`, the way the
core receives them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from station.domain.alarms import Alarm, AlarmEngine, AlarmKind, AlarmLimits, AlarmState, Priority
from station.domain.ingest import parse
from station.domain.lineprotocol import alarm_line, escape_tag, line, vitals_line
from station.domain.messages import Accepted

NOW = 1738411200.0  # 2025-02-01T12:00:00Z
TOPIC = "healthcare/sensor_data"
FILTERS = ("healthcare/sensor_data", "healthcare/devices/+/vitals")
TS = "2025-02-01T11:59:58.123Z"
TS_MS = 1738411198123


def _accepted(topic: str = TOPIC, **values: Any) -> Accepted:
    doc: dict[str, Any] = {"device_id": "dev-1", "timestamp": TS, **values}
    msg = parse(topic, json.dumps(doc).encode(), NOW, FILTERS)
    assert isinstance(msg, Accepted), msg
    return msg


def _alarm(**changes: Any) -> Alarm:
    base: dict[str, Any] = {
        "alarm_id": "a001",
        "device_id": "dev-1",
        "bed": "Bed 1",
        "kind": AlarmKind.PHYSIOLOGICAL,
        "parameter": "heartrate",
        "priority": Priority.HIGH,
        "state": AlarmState.ACTIVE,
        "value": 134.0,
        "limit": 120.0,
        "message": "HR 134 > 120",
        "raised_at": NOW,
        "at": NOW + 1.5,
        "by": None,
    }
    base.update(changes)
    return Alarm(**base)


# -- escaping -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bed 1", r"Bed\ 1"),
        ("a,b", r"a\,b"),
        ("k=v", r"k\=v"),
        ("a b,c=d", r"a\ b\,c\=d"),
        ("back\\slash", "back\\\\slash"),
        ("dev-1.a_b:c", "dev-1.a_b:c"),
        ("", ""),
    ],
    ids=["space", "comma", "equals", "all-three", "backslash", "plain", "empty"],
)
def test_escape_tag(text: str, expected: str) -> None:
    assert escape_tag(text) == expected


# -- line -----------------------------------------------------------------------------------------


def test_line_sorts_tags_and_keeps_field_order() -> None:
    got = line("m", {"z": "1", "a": "2", "m": "3"}, {"y": 1, "b": 2.5}, 42)
    assert got == "m,a=2,m=3,z=1 y=1.0,b=2.5 42"


def test_line_omits_empty_tag_values() -> None:
    got = line("alarms", {"station": "ward-1", "bed": "", "device": "station"}, {"value": 1}, 7)
    assert got == "alarms,device=station,station=ward-1 value=1.0 7"


def test_line_escapes_tag_keys_values_and_field_keys() -> None:
    got = line("m", {"a key": "a,value"}, {"f=x": 2}, 1)
    assert got == r"m,a\ key=a\,value f\=x=2.0 1"


def test_line_drops_non_finite_fields() -> None:
    got = line("m", {"t": "x"}, {"a": float("nan"), "b": 3, "c": float("inf")}, 1)
    assert got == "m,t=x b=3.0 1"


# -- vitals ---------------------------------------------------------------------------------------


def test_vitals_line_full_payload() -> None:
    msg = _accepted(
        heartrate=72,
        bloodpressure={"systolic": 120, "diastolic": 80},
        temperature=36.8,
        oxygen=98,
        location={"latitude": 38.8977, "longitude": -77.0365},
        alert="Lead off",
        seq=5,
        battery=88,
    )
    assert vitals_line("ward-1", "Bed 1", msg) == (
        r"vitals,bed=Bed\ 1,device=dev-1,station=ward-1 "
        "heartrate=72.0,systolic=120.0,diastolic=80.0,temperature=36.8,oxygen=98.0,"
        "latitude=38.8977,longitude=-77.0365,battery=88.0 "
        f"{TS_MS}"
    )


@pytest.mark.parametrize(
    ("values", "fields"),
    [
        ({"heartrate": 72}, "heartrate=72.0"),
        ({"oxygen": 97.5}, "oxygen=97.5"),
        ({"bloodpressure": {"systolic": 130, "diastolic": 85}}, "systolic=130.0,diastolic=85.0"),
        ({"location": {"latitude": -33.5, "longitude": 151}}, "latitude=-33.5,longitude=151.0"),
        ({"battery": 5, "alert": "Low battery"}, "battery=5.0"),
        ({"temperature": 38.7, "seq": 9}, "temperature=38.7"),
    ],
    ids=["heartrate", "oxygen", "bloodpressure", "location", "battery-with-alert", "no-seq"],
)
def test_vitals_line_only_numbers_present(values: dict[str, Any], fields: str) -> None:
    msg = _accepted(**values)
    assert vitals_line("ward-1", "Bed 2", msg) == (
        rf"vitals,bed=Bed\ 2,device=dev-1,station=ward-1 {fields} {TS_MS}"
    )


@pytest.mark.parametrize(
    "alert", ["Lead off", "none", "probe=off, check"], ids=["text", "none", "separators"]
)
def test_vitals_line_never_carries_alert_text(alert: str) -> None:
    got = vitals_line("ward-1", "Bed 1", _accepted(heartrate=72, alert=alert))
    assert got is not None
    fields = got.split(" ")[-2]
    assert fields == "heartrate=72.0"
    assert "alert" not in got
    assert alert.split(" ", maxsplit=1)[0] not in got


def test_vitals_line_none_without_numbers() -> None:
    assert vitals_line("ward-1", "Bed 1", _accepted(alert="Lead off")) is None


@pytest.mark.parametrize(
    ("timestamp", "ms"),
    [
        ("2025-02-01T11:59:58.123Z", TS_MS),
        ("2025-02-01T12:59:58.123+01:00", TS_MS),
        ("2025-02-01T06:29:58.123-05:30", TS_MS),
        ("2025-02-01T11:59:58Z", TS_MS - 123),
        ("2025-01-01T00:00:00.001Z", 1735689600001),
    ],
    ids=["zulu", "plus-offset", "minus-offset", "whole-second", "long-ago"],
)
def test_vitals_line_time_is_device_timestamp_in_ms(timestamp: str, ms: int) -> None:
    doc = {"device_id": "dev-1", "timestamp": timestamp, "heartrate": 72}
    msg = parse(TOPIC, json.dumps(doc).encode(), NOW, FILTERS)
    assert isinstance(msg, Accepted)
    got = vitals_line("ward-1", "Bed 1", msg)
    assert got is not None
    assert got.endswith(f" {ms}")
    # The station's receive time is not the point's time.
    assert str(round(NOW * 1000)) not in got


def test_vitals_line_per_device_topic() -> None:
    msg = _accepted(topic="healthcare/devices/dev-1/vitals", heartrate=60)
    assert vitals_line("icu", "ICU 3", msg) == (
        rf"vitals,bed=ICU\ 3,device=dev-1,station=icu heartrate=60.0 {TS_MS}"
    )


def test_vitals_line_escapes_bed_with_separators() -> None:
    got = vitals_line("ward-1", "Bed=1, window", _accepted(heartrate=72))
    assert got == rf"vitals,bed=Bed\=1\,\ window,device=dev-1,station=ward-1 heartrate=72.0 {TS_MS}"


def test_vitals_line_empty_bed_omitted() -> None:
    got = vitals_line("ward-1", "", _accepted(heartrate=72))
    assert got == f"vitals,device=dev-1,station=ward-1 heartrate=72.0 {TS_MS}"


# -- alarms ---------------------------------------------------------------------------------------


def test_alarm_line_physiological() -> None:
    assert alarm_line("ward-1", _alarm()) == (
        r"alarms,bed=Bed\ 1,device=dev-1,parameter=heartrate,priority=high,state=active,"
        "station=ward-1 value=134.0,limit=120.0 1738411201500"
    )


@pytest.mark.parametrize(
    ("state", "by"),
    [
        (AlarmState.ACTIVE, None),
        (AlarmState.ACKNOWLEDGED, "nurse.ana"),
        (AlarmState.CLEARED, "nurse.ana"),
    ],
    ids=["active", "acknowledged", "cleared"],
)
def test_alarm_line_state_tag(state: AlarmState, by: str | None) -> None:
    got = alarm_line("ward-1", _alarm(state=state, by=by, at=NOW + 60))
    assert f",state={state.value}," in got
    assert got.endswith(" value=134.0,limit=120.0 1738411260000")
    assert "nurse" not in got  # who acknowledged goes to the audit trail, not the historian


def test_alarm_line_technical_has_value_one() -> None:
    alarm = _alarm(
        device_id="station",
        bed="",
        kind=AlarmKind.TECHNICAL,
        parameter="broker",
        priority=Priority.MEDIUM,
        value=None,
        limit=None,
        message="Broker: connection refused",
        at=NOW,
    )
    assert alarm_line("ward-1", alarm) == (
        "alarms,device=station,parameter=broker,priority=medium,state=active,station=ward-1 "
        "value=1.0 1738411200000"
    )


def test_alarm_line_device_alert_text_not_a_field() -> None:
    alarm = _alarm(
        kind=AlarmKind.DEVICE,
        parameter="alert",
        priority=Priority.MEDIUM,
        value=None,
        limit=None,
        message="Device alert: Lead off",
    )
    got = alarm_line("ward-1", alarm)
    assert got == (
        r"alarms,bed=Bed\ 1,device=dev-1,parameter=alert,priority=medium,state=active,"
        "station=ward-1 value=1.0 1738411201500"
    )
    assert "Lead" not in got


def test_alarm_line_value_without_limit() -> None:
    got = alarm_line("ward-1", _alarm(value=88.0, limit=None, parameter="oxygen"))
    assert " value=88.0 " in got
    assert "limit" not in got.split(" ")[1]


def test_alarm_line_from_engine_snapshot() -> None:
    clock = iter([NOW, NOW + 2.25])
    engine = AlarmEngine({"oxygen": AlarmLimits(low=90)}, lambda: next(clock), lambda: "x")
    raised = engine.evaluate("dev-9", "Bed 9", {"oxygen": 88}, at=NOW)[0]
    cleared = engine.evaluate("dev-9", "Bed 9", {"oxygen": 95}, at=NOW + 2.25)[0]
    assert alarm_line("w", raised) == (
        r"alarms,bed=Bed\ 9,device=dev-9,parameter=oxygen,priority=medium,state=active,station=w "
        "value=88.0,limit=90.0 1738411200000"
    )
    assert alarm_line("w", cleared) == (
        r"alarms,bed=Bed\ 9,device=dev-9,parameter=oxygen,priority=medium,state=cleared,station=w "
        "value=88.0,limit=90.0 1738411202250"
    )


# -- the fast vitals line is the generic line ----------------------------------------------------


@pytest.mark.parametrize(
    ("station", "bed"),
    [("ward-1", "Bed 1"), ("", "Bed 1"), ("ward-1", ""), ("", ""), ("w,1", "a=b c\\d\n")],
    ids=["both", "no-station", "no-bed", "neither", "separators"],
)
def test_vitals_line_equals_the_generic_line(station: str, bed: str) -> None:
    msg = _accepted(
        heartrate=72,
        bloodpressure={"systolic": 120.5, "diastolic": 80},
        oxygen=0.1,
        location={"latitude": -0.0, "longitude": 1e-7},
        battery=100,
    )
    tags = {"station": station, "device": msg.device_id, "bed": bed}
    fields = msg.payload.numeric_fields()
    want = line("vitals", tags, fields, round(msg.device_time * 1000))
    assert vitals_line(station, bed, msg) == want
    assert vitals_line(station, bed, msg) == want  # again, from the remembered escapes


def test_escape_cache_is_bounded() -> None:
    from station.domain import lineprotocol

    for i in range(lineprotocol._ESCAPE_CACHE_MAX + 10):
        assert escape_tag(f"bed {i}") == rf"bed\ {i}"
    assert len(lineprotocol._escaped) <= lineprotocol._ESCAPE_CACHE_MAX
