"""The fast decoder of :mod:`station.domain.ingest` never changes a verdict.

``parse`` reads most messages with orjson and falls back to the strict ``json`` decoder when it
cannot prove orjson's document is the one the strict decoder would return. These tests run every
payload of the ingest tests (the corpus, random bytes, mutations of a valid payload) and targeted
hostile ones through both and require the same result, field for field: a duplicate key, NaN, an
integer beyond 64 bits or deep nesting must be judged exactly as the strict decoder judges it.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from station.domain import ingest
from station.domain.ingest import parse
from station.domain.messages import Accepted, Rejection
from tests.unit.test_ingest import CORPUS, FILTERS, NOW, SEED_EXAMPLE, SHARED_TOPIC, _mutate, build

PER_DEVICE_TOPIC = "healthcare/devices/dev1/vitals"


def _strict_only(topic: str, raw: bytes, now: float) -> Accepted | Rejection:
    """``parse`` as it was before the fast decoder: the strict decoder for every message."""
    saved = ingest._fast_document
    ingest._fast_document = lambda _raw: None
    try:
        return parse(topic, raw, now, FILTERS)
    finally:
        ingest._fast_document = saved


def _same_json(a: Any, b: Any) -> bool:
    """Equal documents down to the type of every number and the sign of every zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


def _strict_document(raw: bytes) -> Any:
    return json.loads(
        raw.decode("utf-8"),
        object_pairs_hook=ingest._no_duplicates,
        parse_constant=ingest._no_constants,
    )


def assert_same_verdict(topic: str, raw: bytes, now: float = NOW) -> bool:
    """Both decoders agree on ``raw``; True if the fast decoder took it."""
    fast_doc = ingest._fast_document(raw)
    if fast_doc is not None:
        assert _same_json(fast_doc, _strict_document(raw)), raw[:200]
    got = parse(topic, raw, now, FILTERS)
    want = _strict_only(topic, raw, now)
    assert got == want, raw[:200]
    if isinstance(got, Accepted):
        assert isinstance(want, Accepted)
        assert got.payload.model_dump() == want.payload.model_dump()
        assert got.signed == want.signed
    return fast_doc is not None


def _payloads() -> list[tuple[str, bytes]]:
    out = [build(case) for case in CORPUS["cases"]]
    out.append((SHARED_TOPIC, SEED_EXAMPLE))
    rng = random.Random(13)
    topics = (SHARED_TOPIC, PER_DEVICE_TOPIC, "healthcare/devices/sensor_123/vitals")
    for _ in range(3000):
        out.append((rng.choice(topics), _mutate(rng)))
    for _ in range(500):
        raw = rng.randbytes(rng.choice((0, 1, 8, 64, 512)))
        out.append((SHARED_TOPIC, b"{" + raw + b"}" if rng.random() < 0.5 else raw))
    return out


def test_every_ingest_test_payload_gets_the_same_verdict() -> None:
    payloads = _payloads()
    taken = sum(assert_same_verdict(topic, raw) for topic, raw in payloads)
    assert taken > len(payloads) // 4  # the fast decoder really decided many of them


def _doc(**extra: Any) -> dict[str, Any]:
    return {"device_id": "dev1", "timestamp": "2025-02-01T12:00:00Z", **extra}


def _raw(text: str) -> bytes:
    return text.encode("utf-8")


BASE = '"device_id":"dev1","timestamp":"2025-02-01T12:00:00Z"'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param('{BASE,"heartrate":70,"heartrate":71}', "duplicate_key", id="top-number"),
        pytest.param('{BASE,"device_id":"dev1"}', "duplicate_key", id="top-same-value"),
        pytest.param('{BASE,"alert":"a","alert":"b"}', "duplicate_key", id="top-string"),
        pytest.param('{BASE,"x":"s","x":1}', "duplicate_key", id="unknown-string-then-number"),
        pytest.param('{BASE,"x":{"a":"q"},"x":1}', "duplicate_key", id="unknown-object-dropped"),
        pytest.param(
            '{BASE,"bloodpressure":{"systolic":120,"systolic":80,"diastolic":70}}',
            "duplicate_key",
            id="nested",
        ),
        pytest.param('{BASE,"x":{"a":1,"a":1}}', "duplicate_key", id="nested-unknown"),
        pytest.param('{BASE,"a\\u0062":1,"ab":2}', "duplicate_key", id="escaped-key"),
        pytest.param('{BASE,"x":"\\"","x":"\\""}', "duplicate_key", id="escaped-quotes"),
        pytest.param('{BASE,"heartrate":NaN}', "non_finite", id="nan"),
        pytest.param('{BASE,"x":-Infinity}', "non_finite", id="minus-infinity"),
        pytest.param('{BASE,"heartrate":1e999}', "schema", id="overflow-float"),
        pytest.param('{BASE,"seq":18446744073709551616}', "schema", id="seq-beyond-u64"),
        pytest.param('{BASE,"seq":-9223372036854775809}', "schema", id="seq-below-i64"),
        pytest.param('{BASE,"x":[[1]]}', "too_deep", id="deep-list"),
        pytest.param('{BASE,"x":{"a":{"b":1}}}', "too_deep", id="deep-object"),
        pytest.param('{BASE,"x":[{"a":1}]}', "too_deep", id="object-in-list"),
        pytest.param("\ufeff{BASE}", "json", id="bom"),
        pytest.param("{BASE}\x00", "json", id="trailing-nul"),
        pytest.param('{BASE,"x":"\x01"}', "json", id="control-character"),
        pytest.param('{BASE,"x":1,}', "json", id="trailing-comma"),
    ],
)
def test_hostile_payloads_get_the_strict_verdict(text: str, reason: str) -> None:
    raw = _raw(text.replace("BASE", BASE))
    assert ingest._fast_document(raw) is None  # left to the strict decoder
    assert_same_verdict(SHARED_TOPIC, raw)
    result = parse(SHARED_TOPIC, raw, NOW, FILTERS)
    assert isinstance(result, Rejection)
    assert result.reason == reason, result.detail


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"device_id":"dev1","timestamp":"2025-02-01T12:00:00Z","x":"\xed\xa0\x80"}'),
        pytest.param(b'{"device_id":"dev1","timestamp":"2025-02-01T12:00:00Z","x":"\xc0\xaf"}'),
        pytest.param(
            b'{"device_id":"dev1","timestamp":"2025-02-01T12:00:00Z","x":"\xf4\x90\x80\x80"}'
        ),
    ],
    ids=["encoded-surrogate", "overlong", "beyond-unicode"],
)
def test_invalid_utf8_is_an_encoding_rejection(raw: bytes) -> None:
    assert ingest._fast_document(raw) is None
    result = parse(SHARED_TOPIC, raw, NOW, FILTERS)
    assert isinstance(result, Rejection)
    assert result.reason == "encoding"


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"x": 18446744073709551616}, id="beyond-u64"),
        pytest.param({"x": 18446744073709551615}, id="u64-max"),
        pytest.param({"x": -9223372036854775808}, id="i64-min"),
        pytest.param({"x": 1e300}, id="huge-float"),
        pytest.param({"x": -0.0, "y": 0}, id="zeros"),
        pytest.param({"x": [1, "a", None, True, 2.5]}, id="flat-list"),
        pytest.param({"x": {"k": "v:\u00e9", "n": None}}, id="flat-object"),
    ],
)
def test_signed_form_keeps_numbers_exactly(extra: dict[str, Any]) -> None:
    """Unknown keys go into what a device signed: their numbers must stay as sent."""
    raw = json.dumps(_doc(**extra, sig="c2ln"), separators=(",", ":")).encode()
    assert_same_verdict(SHARED_TOPIC, raw)
    result = parse(SHARED_TOPIC, raw, NOW, FILTERS)
    assert isinstance(result, Accepted), result
    assert result.signed is not None
    assert json.loads(result.signed) == {k: v for k, v in json.loads(raw).items() if k != "sig"}


def test_numbers_decode_as_the_strict_decoder_does() -> None:
    rng = random.Random(5)
    texts = ["0", "-0", "-0.0", "1E2", "1e-2", "0.1", "5e-324", "1.7976931348623157e308"]
    for _ in range(3000):
        mantissa = str(rng.randrange(10 ** rng.randint(1, 25)))
        cut = rng.randint(1, len(mantissa))
        number = f"{mantissa[:cut]}.{mantissa[cut:] or '0'}" if rng.random() < 0.7 else mantissa
        if rng.random() < 0.4:
            number += f"e{rng.randint(-330, 310)}"
        texts.append(("-" if rng.random() < 0.3 else "") + number)
    for number in texts:
        raw = _raw(f'{{{BASE},"x":{number},"y":[{number}],"z":{{"n":{number}}}}}')
        assert_same_verdict(SHARED_TOPIC, raw)


def test_topic_names_are_remembered_but_bounded() -> None:
    ingest._topic_cache.clear()
    for i in range(ingest._TOPIC_CACHE_MAX + 10):
        ingest.topic_device_cached(f"healthcare/devices/d{i}/vitals", list(FILTERS))
    assert len(ingest._topic_cache) <= ingest._TOPIC_CACHE_MAX
    assert ingest.topic_device_cached(PER_DEVICE_TOPIC, FILTERS) == "dev1"
    assert ingest.topic_device_cached(PER_DEVICE_TOPIC, ("a/+/b",)) is None
