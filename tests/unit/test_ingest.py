"""Unit tests of :func:`station.domain.ingest.parse` against CONTRACT.md §1 (inbound vitals).

The table-driven cases live in ``tests/data/payloads.json`` (its ``_doc`` explains the format);
this module turns each into bytes, parses it with the contract's default topic filters and a fixed
station clock, and checks the verdict. Cases that are easier to generate than to write down (deep
nesting, excerpts of hostile payloads, random garbage) are built here.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest

from station.domain.ingest import parse
from station.domain.messages import Accepted, Rejection, VitalsPayload

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS: dict[str, Any] = json.loads((DATA / "payloads.json").read_text(encoding="utf-8"))
SEED_EXAMPLE = (DATA / "seed_000_example.json").read_bytes()

NOW: float = CORPUS["now"]  # 2025-02-01T12:00:00Z
FILTERS: tuple[str, ...] = tuple(CORPUS["filters"])
SHARED_TOPIC = "healthcare/sensor_data"
MAX_BYTES = 16 * 1024
MAX_FUTURE_S = 300.0
EXCERPT_MAX = 125

# The reason codes Rejection documents; anything else (e.g. "internal") means ingest hit a bug.
REASONS = frozenset(
    {
        "oversize",
        "json",
        "duplicate_key",
        "non_finite",
        "too_deep",
        "schema",
        "timestamp_future",
        "spoofed",
        "encoding",
    }
)
KNOWN_KEYS = frozenset(VitalsPayload.model_fields)
DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _padded(doc: dict[str, Any], size: int) -> bytes:
    """``doc`` grown by an unknown ``pad`` key to exactly ``size`` bytes."""
    doc = {**doc, "pad": ""}
    raw = _compact(doc)
    doc["pad"] = "x" * (size - len(raw))
    raw = _compact(doc)
    assert len(raw) == size
    return raw


def build(case: dict[str, Any]) -> tuple[str, bytes]:
    """The (topic, payload bytes) a corpus case describes."""
    topic = case.get("topic", CORPUS["default_topic"])
    if "raw_hex" in case:
        return topic, bytes.fromhex(case["raw_hex"])
    if "raw" in case:
        return topic, case["raw"].encode("utf-8")
    doc = copy.deepcopy(CORPUS["bases"][case.get("base", "minimal")])
    doc.update(copy.deepcopy(case.get("set", {})))
    for key in case.get("delete", []):
        del doc[key]
    if "pad_to" in case:
        return topic, _padded(doc, case["pad_to"])
    return topic, _compact(doc)


def lookup(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


def assert_excerpt_ok(rejection: Rejection) -> None:
    assert len(rejection.excerpt) <= EXCERPT_MAX, rejection.excerpt
    assert all(ch.isprintable() for ch in rejection.excerpt), repr(rejection.excerpt)


def assert_contract_holds(acc: Accepted, now: float) -> None:
    """Whatever was accepted satisfies every rule of the §1 table."""
    p = acc.payload
    assert isinstance(p, VitalsPayload)
    assert DEVICE_ID.fullmatch(p.device_id), p.device_id
    assert p.timestamp.tzinfo is not None
    assert acc.device_time - now <= MAX_FUTURE_S
    for name, lo, hi in (
        ("heartrate", 0, 300),
        ("temperature", 25, 45),
        ("oxygen", 0, 100),
        ("battery", 0, 100),
    ):
        value = getattr(p, name)
        if value is not None:
            assert not isinstance(value, bool)
            assert math.isfinite(value)
            assert lo <= value <= hi, (name, value)
    if p.bloodpressure is not None:
        assert 0 <= p.bloodpressure.diastolic <= p.bloodpressure.systolic <= 300
    if p.location is not None:
        assert -90 <= p.location.latitude <= 90
        assert -180 <= p.location.longitude <= 180
    if p.alert is not None:
        assert len(p.alert) <= 64
    if p.seq is not None:
        assert type(p.seq) is int
        assert p.seq >= 0
    if p.sig is not None:
        assert isinstance(p.sig, str)
    assert not set(acc.unknown_keys) & KNOWN_KEYS
    assert list(acc.unknown_keys) == sorted(acc.unknown_keys)


# --- the corpus: one case per row and rule of CONTRACT §1 ---------------------------------------


@pytest.mark.parametrize("case", CORPUS["cases"], ids=[c["id"] for c in CORPUS["cases"]])
def test_corpus_case(case: dict[str, Any]) -> None:
    topic, raw = build(case)
    result = parse(topic, raw, NOW, FILTERS)

    if case["expect"] == "accepted":
        assert isinstance(result, Accepted), result
        assert result.topic == topic
        assert result.received_at == NOW
        assert result.device_id == result.payload.device_id
        assert_contract_holds(result, NOW)
        for dotted, want in case.get("check", {}).items():
            got = lookup(result, dotted)
            assert (list(got) if isinstance(want, list) else got) == want, dotted
    else:
        assert isinstance(result, Rejection), result
        assert result.reason == case["expect"], result.detail
        assert result.reason in REASONS
        assert result.topic == topic
        assert result.received_at == NOW
        assert result.detail
        assert_excerpt_ok(result)


def test_corpus_covers_every_reason() -> None:
    expected = {c["expect"] for c in CORPUS["cases"]}
    assert expected == REASONS | {"accepted"}


# --- the seed document's example payload, byte for byte -----------------------------------------


def test_seed_example_payload_is_accepted_as_written() -> None:
    result = parse(SHARED_TOPIC, SEED_EXAMPLE, NOW, FILTERS)

    assert isinstance(result, Accepted), result
    assert result.device_id == "sensor_123"
    assert result.device_time == NOW
    assert result.unknown_keys == ()
    assert result.payload.device_alert is None
    assert result.payload.numeric_fields() == {
        "heartrate": 78,
        "systolic": 120,
        "diastolic": 80,
        "temperature": 36.5,
        "oxygen": 98,
        "latitude": 38.8977,
        "longitude": -77.0365,
    }


@pytest.mark.parametrize(
    ("topic", "expect"),
    [
        pytest.param("healthcare/devices/sensor_123/vitals", "accepted", id="own-topic"),
        pytest.param("healthcare/devices/sensor_124/vitals", "spoofed", id="other-device-topic"),
        pytest.param("healthcare/devices//vitals", "spoofed", id="empty-device-level"),
    ],
)
def test_seed_example_on_per_device_topic(topic: str, expect: str) -> None:
    result = parse(topic, SEED_EXAMPLE, NOW, FILTERS)

    if expect == "accepted":
        assert isinstance(result, Accepted), result
    else:
        assert isinstance(result, Rejection)
        assert result.reason == expect
        assert result.device_id == "sensor_123"


def test_seed_example_one_hour_early_clock_is_future() -> None:
    result = parse(SHARED_TOPIC, SEED_EXAMPLE, NOW - 3600, FILTERS)

    assert isinstance(result, Rejection)
    assert result.reason == "timestamp_future"
    assert result.device_id == "sensor_123"


# --- what a rejection carries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "raw", "reason", "device"),
    [
        pytest.param(
            "healthcare/devices/dev1/vitals",
            b'{"device_id":"dev2","timestamp":"2025-02-01T12:00:00Z"}',
            "spoofed",
            "dev2",
            id="spoofed-names-claimed-device",
        ),
        pytest.param(
            SHARED_TOPIC,
            b'{"device_id":"dev1","timestamp":"2025-02-01T12:00:00Z","heartrate":999}',
            "schema",
            "dev1",
            id="schema-names-device",
        ),
        pytest.param(
            SHARED_TOPIC,
            b'{"device_id":"dev1","timestamp":"2025-02-01T13:00:00Z"}',
            "timestamp_future",
            "dev1",
            id="future-names-device",
        ),
        pytest.param(SHARED_TOPIC, b"[1, 2]", "json", None, id="json-names-nobody"),
        pytest.param(SHARED_TOPIC, b"\xff", "encoding", None, id="encoding-names-nobody"),
        pytest.param(
            SHARED_TOPIC,
            b'{"device_id":42,"timestamp":"2025-02-01T12:00:00Z"}',
            "schema",
            None,
            id="non-string-device-names-nobody",
        ),
    ],
)
def test_rejection_names_the_claimed_device(
    topic: str, raw: bytes, reason: str, device: str | None
) -> None:
    result = parse(topic, raw, NOW, FILTERS)

    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.device_id == device


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b'{"heartrate": NaN}', id="short-printable"),
        pytest.param(b"x" * (1024 * 1024), id="one-mebibyte"),
        pytest.param(bytes(range(32)) * 20, id="control-bytes"),
        pytest.param(b"\x1b[2J\x1b[31mALARM\x07\r\n" * 20, id="terminal-escapes"),
        pytest.param(bytes(range(128, 256)) * 4, id="invalid-utf8-high-bytes"),
        pytest.param(("\u00e9" * 200).encode(), id="multibyte-split-at-cut"),
        pytest.param(("\u2028\u2029\u200b\ufeff" * 50).encode(), id="unicode-separators"),
        pytest.param(b'{"device_id":"' + b"\xed\xa0\x80" * 60 + b'"}', id="encoded-surrogates"),
    ],
)
def test_excerpt_is_short_and_printable(raw: bytes) -> None:
    result = parse(SHARED_TOPIC, raw, NOW, FILTERS)

    assert isinstance(result, Rejection)
    assert result.reason in REASONS
    assert_excerpt_ok(result)


def test_excerpt_of_a_short_payload_is_the_payload() -> None:
    raw = b'{"device_id":"dev1","timestamp":"2025-02-01T12:00:00Z","heartrate":NaN}'

    result = parse(SHARED_TOPIC, raw, NOW, FILTERS)

    assert isinstance(result, Rejection)
    assert result.excerpt == raw.decode()


def test_oversize_is_refused_before_anything_is_decoded() -> None:
    raw = b"\xff" * (MAX_BYTES + 1)  # also invalid UTF-8: size is checked first

    result = parse(SHARED_TOPIC, raw, NOW, FILTERS)

    assert isinstance(result, Rejection)
    assert result.reason == "oversize"


# --- nesting of any depth is "too_deep", never an internal error --------------------------------


def _nested(kind: str, depth: int) -> bytes:
    opening, closing = ('{"a":', "}") if kind == "objects" else ("[", "]")
    inner = opening * depth + "1" + closing * depth
    return (
        '{"device_id":"dev1","timestamp":"2025-02-01T12:00:00Z","extra":' + inner + "}"
    ).encode()


@pytest.mark.parametrize("kind", ["arrays", "objects"])
@pytest.mark.parametrize("depth", [2, 3, 10, 100, 250, 400, 700, 990, 1500, 2500])
def test_deep_nesting_is_too_deep(kind: str, depth: int) -> None:
    raw = _nested(kind, depth)
    assert len(raw) <= MAX_BYTES  # not an oversize case

    result = parse(SHARED_TOPIC, raw, NOW, FILTERS)

    assert isinstance(result, Rejection)
    assert result.reason == "too_deep", result.detail
    assert_excerpt_ok(result)


@pytest.mark.parametrize("kind", ["arrays", "objects"])
def test_nesting_at_the_shape_depth_is_accepted(kind: str) -> None:
    result = parse(SHARED_TOPIC, _nested(kind, 1), NOW, FILTERS)

    assert isinstance(result, Accepted), result
    assert result.unknown_keys == ("extra",)


# --- clock handling -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skew", "accepted"),
    [
        pytest.param(-10 * 365 * 86400.0, True, id="ten-years-old"),
        pytest.param(-3600.0, True, id="an-hour-old"),
        pytest.param(0.0, True, id="now"),
        pytest.param(240.0, True, id="4-min-ahead"),
        pytest.param(300.0, True, id="5-min-ahead"),
        pytest.param(300.5, False, id="5-min-half-a-second-ahead"),
        pytest.param(86400.0, False, id="a-day-ahead"),
    ],
)
def test_future_limit_is_relative_to_the_injected_clock(skew: float, accepted: bool) -> None:
    # The same payload against clocks set so that its timestamp lies `skew` seconds ahead.
    result = parse(SHARED_TOPIC, SEED_EXAMPLE, NOW - skew, FILTERS)

    if accepted:
        assert isinstance(result, Accepted), result
        assert result.received_at == NOW - skew
    else:
        assert isinstance(result, Rejection)
        assert result.reason == "timestamp_future"


# --- never raises: random garbage and mutations of a valid payload ------------------------------

_TOKENS = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-0",
    "1.5",
    "true",
    "null",
    "{",
    "}",
    "[",
    "]",
    '"',
    ",",
    ":",
    "\\",
    "\\u0000",
    "\\ud800",
    " ",
    "\x00",
    "\u00e9",
    '"device_id":"dev1",',
    '"heartrate":72,',
    '{"a":{"b":[1]}}',
)
_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    301,
    1.5,
    1e308,
    2**64,
    "",
    "72",
    "none",
    "x" * 70,
    "2025-02-01T12:00:00",
    "2025-02-01T12:00:00Z",
    "2099-01-01T00:00:00Z",
    [],
    [1],
    {},
    {"systolic": 120, "diastolic": 80},
    {"systolic": 80, "diastolic": 120},
    {"latitude": 91, "longitude": 0},
    {"a": {"b": 1}},
)
_TOPICS = (
    SHARED_TOPIC,
    "healthcare/devices/dev1/vitals",
    "healthcare/devices/sensor_123/vitals",
    "healthcare/devices//vitals",
)


def _mutate(rng: random.Random) -> bytes:
    doc: dict[str, Any] = copy.deepcopy(CORPUS["bases"]["full"])
    keys = [*sorted(KNOWN_KEYS), "extra", "bloodpressure", "location"]
    for _ in range(rng.randint(0, 3)):
        op = rng.random()
        if op < 0.6:
            doc[rng.choice(keys)] = rng.choice(_VALUES)
        elif doc:
            del doc[rng.choice(sorted(doc))]
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
    for _ in range(rng.randint(0, 4)):
        at = rng.randrange(len(text) + 1)
        op = rng.random()
        if op < 0.4:
            text = text[:at] + rng.choice(_TOKENS) + text[at:]
        elif op < 0.7:
            text = text[:at] + text[at + rng.randint(1, 8) :]
        elif op < 0.85:
            text = text[:at]
        else:
            end = min(len(text), at + rng.randint(1, 40))
            text = text[:end] + text[at:end] + text[end:]
    raw = text.encode("utf-8", errors="surrogatepass")
    if raw and rng.random() < 0.1:
        i = rng.randrange(len(raw))
        raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]
    return raw


def _check_total(topic: str, raw: bytes, now: float) -> tuple[str, str | None]:
    """The verdict ("accepted" or the reason) and, when parse misbehaved, what went wrong."""
    result = parse(topic, raw, now, FILTERS)
    if isinstance(result, Rejection):
        if result.reason not in REASONS:
            return result.reason, f"reason {result.reason!r} ({result.detail}) for {raw[:80]!r}"
        if len(result.excerpt) > EXCERPT_MAX or not result.excerpt.isprintable():
            return result.reason, f"bad excerpt {result.excerpt!r}"
        return result.reason, None
    if isinstance(result, Accepted):
        assert_contract_holds(result, now)
        return "accepted", None
    return "?", f"returned {type(result).__name__} for {raw[:80]!r}"


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20250201)
    problems = []
    for _ in range(2000):
        raw = rng.randbytes(rng.choice((0, 1, 2, 8, 64, 512, 4096)))
        if rng.random() < 0.3:
            raw = b"{" + raw + b"}"
        _, problem = _check_total(rng.choice(_TOPICS), raw, NOW)
        if problem:
            problems.append(problem)
    assert problems == []


def test_mutated_payloads_never_raise() -> None:
    rng = random.Random(72)
    problems = []
    outcomes: set[str] = set()
    for _ in range(2000):
        verdict, problem = _check_total(rng.choice(_TOPICS), _mutate(rng), NOW)
        outcomes.add(verdict)
        if problem:
            problems.append(problem)
    assert problems == []
    # The mutations reach deep enough to produce both verdicts and most reasons.
    assert {"accepted", "schema", "json", "non_finite", "spoofed"} <= outcomes
