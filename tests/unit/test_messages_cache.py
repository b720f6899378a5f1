"""What :class:`VitalsPayload` computes once per message (its numbers and its epoch time) stays
invisible: equal to computing it afresh, never shared with a caller, never stale in a copy."""

from __future__ import annotations

from station.domain.messages import VitalsPayload


def _payload(**values: object) -> VitalsPayload:
    return VitalsPayload.model_validate(
        {"device_id": "dev-1", "timestamp": "2025-02-01T12:00:00.250+01:00", **values}
    )


def test_numeric_fields_is_a_fresh_dict_each_time() -> None:
    p = _payload(heartrate=72, bloodpressure={"systolic": 120, "diastolic": 80}, battery=50)
    first = p.numeric_fields()
    first["heartrate"] = 0.0
    del first["battery"]
    assert p.numeric_fields() == {"heartrate": 72, "systolic": 120, "diastolic": 80, "battery": 50}
    assert p.numeric_fields() is not p.numeric_fields()


def test_timestamp_s_is_the_timestamps_epoch() -> None:
    p = _payload()
    assert p.timestamp_s == p.timestamp.timestamp() == 1738407600.25


def test_cache_leaves_equality_hash_dump_and_repr_alone() -> None:
    a, b = _payload(oxygen=97), _payload(oxygen=97)
    a.numeric_fields()
    assert a == b
    assert hash(a) == hash(b)
    assert a.model_dump() == b.model_dump()
    assert repr(a) == repr(b)
    assert a != _payload(oxygen=96)


def test_a_changed_copy_computes_afresh() -> None:
    p = _payload(heartrate=72)
    assert p.numeric_fields() == {"heartrate": 72}
    assert p.timestamp_s == 1738407600.25
    changed = p.model_copy(update={"heartrate": 90.0, "timestamp": p.timestamp.replace(hour=13)})
    assert changed.numeric_fields() == {"heartrate": 90.0}
    assert changed.timestamp_s == 1738411200.25
    assert p.model_copy().numeric_fields() == {"heartrate": 72}
