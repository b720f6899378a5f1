"""The simulated ward: deterministic, contract-valid, and faulty exactly where a scenario says."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from station.domain import ingest
from station.domain.messages import Accepted, Rejection
from station.domain.simulation import (
    DROPOUT_PERIOD_S,
    DROPOUT_SILENCE_S,
    SCENARIOS,
    SimulatedWard,
    topic_for,
)

FILTERS = ["healthcare/sensor_data", "healthcare/devices/+/vitals"]
START = 1_760_000_000.0  # a fixed wall-clock start, so runs are reproducible


def run(
    scenario: str, seconds: float, *, beds: int = 8, seed: int = 1, rate: float = 1.0
) -> list[tuple[float, str, bytes]]:
    ward = SimulatedWard(beds, seed, scenario, START)
    out: list[tuple[float, str, bytes]] = []
    for k in range(round(seconds * rate)):
        now = START + k / rate
        out.extend((now, device, payload) for device, payload in ward.tick(now))
    return out


def parse(now: float, device: str, payload: bytes, mode: str = "per-device") -> object:
    return ingest.parse(topic_for(device, mode), payload, now, FILTERS)


def test_same_seed_gives_identical_bytes() -> None:
    assert run("demo", 60, seed=7) == run("demo", 60, seed=7)


def test_different_seeds_differ() -> None:
    assert [p for *_, p in run("normal", 10, seed=1)] != [p for *_, p in run("normal", 10, seed=2)]


@pytest.mark.parametrize(
    "scenario", ["normal", "deterioration", "dropout", "demo", "flood", "alarms"]
)
@pytest.mark.parametrize("mode", ["per-device", "single"])
def test_every_payload_passes_ingest(scenario: str, mode: str) -> None:
    messages = run(scenario, 180, rate=2.0)
    assert messages
    for now, device, payload in messages:
        result = parse(now, device, payload, mode)
        assert isinstance(result, Accepted), (result, payload)
        assert result.device_id == device
        assert result.payload.device_alert is None
        assert result.device_time == pytest.approx(now, abs=0.001)


def test_payload_has_the_contract_shape() -> None:
    _, device, payload = run("normal", 1)[0]
    doc = json.loads(payload)
    assert device == "sim-bed01"
    assert set(doc) == {
        "device_id", "timestamp", "heartrate", "bloodpressure", "temperature", "oxygen",
        "alert", "seq", "battery",
    }  # fmt: skip
    assert doc["timestamp"].endswith("Z")
    assert len(doc["timestamp"]) == len("2025-10-09T08:53:20.000Z")
    assert isinstance(doc["heartrate"], int)
    assert isinstance(doc["oxygen"], int)
    assert doc["temperature"] == round(doc["temperature"], 1)
    assert doc["alert"] == "none"


def test_normal_vitals_vary_within_realistic_ranges() -> None:
    by_device: dict[str, list[dict[str, float]]] = defaultdict(list)
    for now, device, payload in run("normal", 600):
        result = parse(now, device, payload)
        assert isinstance(result, Accepted)
        by_device[device].append(result.payload.numeric_fields())
    assert len(by_device) == 8
    for series in by_device.values():
        hrs = [v["heartrate"] for v in series]
        assert min(hrs) >= 50
        assert max(hrs) <= 110
        assert len(set(hrs)) > 3, "vitals should drift, not stay flat"
        assert all(93 <= v["oxygen"] <= 100 for v in series)
        assert all(36.0 <= v["temperature"] <= 37.6 for v in series)
        assert all(v["systolic"] > v["diastolic"] for v in series)
        assert series[-1]["battery"] < series[0]["battery"]


def test_deterioration_crosses_alarm_limits_within_five_seconds() -> None:
    ward = SimulatedWard(8, 1, "deterioration", START)
    assert ward.deteriorating_device == "sim-bed03"
    assert SimulatedWard(2, 1, "deterioration", START).deteriorating_device == "sim-bed01"
    early = [json.loads(p) for _, d, p in run("deterioration", 5) if d == "sim-bed03"]
    assert len(early) == 5
    assert all(doc["heartrate"] > 120 for doc in early)
    assert all(doc["oxygen"] < 90 for doc in early)
    assert all(doc["temperature"] >= 38.6 for doc in early)
    late = [json.loads(p) for _, d, p in run("deterioration", 600) if d == "sim-bed03"]
    assert late[-1]["heartrate"] > late[0]["heartrate"]
    assert late[-1]["oxygen"] < late[0]["oxygen"]
    assert late[-1]["bloodpressure"]["systolic"] < late[0]["bloodpressure"]["systolic"] - 20


def test_dropout_bed_is_silent_for_the_stated_window() -> None:
    ward = SimulatedWard(8, 1, "dropout", START)
    silent = ward.dropout_device
    assert silent is not None
    sent_at = {round(now - START) for now, d, _ in run("dropout", 180) if d == silent}
    assert sent_at, "the dropout bed sends outside its silences"
    gaps = [t for t in range(180) if t not in sent_at]
    # One silence of DROPOUT_SILENCE_S in every DROPOUT_PERIOD_S, the rest of the ward unaffected.
    assert len(gaps) == 3 * DROPOUT_SILENCE_S
    first = gaps[0]
    assert gaps[: int(DROPOUT_SILENCE_S)] == list(range(first, first + int(DROPOUT_SILENCE_S)))
    assert first + DROPOUT_PERIOD_S in gaps
    others = Counter(d for _, d, _ in run("dropout", 180) if d != silent)
    assert set(others.values()) == {180}


def test_demo_mixes_deterioration_and_a_later_dropout() -> None:
    ward = SimulatedWard(8, 1, "demo", START)
    assert ward.deteriorating_device == "sim-bed03"
    assert ward.dropout_device == "sim-bed06"
    bed6 = {round(now - START) for now, d, _ in run("demo", 60) if d == "sim-bed06"}
    assert set(range(15)) <= bed6, "the demo starts with every bed on screen"
    first_silence = min(t for t in range(60) if t not in bed6)
    assert 15 <= first_silence <= 25


def test_malformed_scenario_is_rejected_for_varied_reasons() -> None:
    reasons: Counter[str] = Counter()
    accepted = 0
    messages = run("malformed", 300)
    for now, device, payload in messages:
        result = parse(now, device, payload)
        if isinstance(result, Rejection):
            reasons[result.reason] += 1
        else:
            assert isinstance(result, Accepted)
            assert result.device_id == device
            accepted += 1
    rejected = sum(reasons.values())
    assert 0.05 < rejected / len(messages) < 0.15
    assert {"schema", "json", "non_finite", "duplicate_key"} <= set(reasons)
    assert accepted + rejected == len(messages)


def test_seq_counts_from_one_without_gaps() -> None:
    for scenario in ("normal", "dropout", "demo"):
        seqs: dict[str, list[int]] = defaultdict(list)
        for _, device, payload in run(scenario, 150):
            seqs[device].append(json.loads(payload)["seq"])
        for device, values in seqs.items():
            assert values == list(range(1, len(values) + 1)), (scenario, device)


def test_topics() -> None:
    assert topic_for("sim-bed01", "per-device") == "healthcare/devices/sim-bed01/vitals"
    assert topic_for("sim-bed01", "single") == "healthcare/sensor_data"
    with pytest.raises(ValueError, match="topic mode"):
        topic_for("sim-bed01", "other")


def test_rejects_unknown_scenario_and_empty_ward() -> None:
    assert "flood" in SCENARIOS
    with pytest.raises(ValueError, match="scenario"):
        SimulatedWard(8, 1, "chaos", START)
    with pytest.raises(ValueError, match="beds"):
        SimulatedWard(0, 1, "normal", START)


def test_alarms_scenario_takes_every_bed_over_its_heart_rate_limit_once_per_cycle() -> None:
    messages = run("alarms", 40, beds=8)
    high: dict[str, list[float]] = {}
    for now, device, payload in messages:
        if json.loads(payload)["heartrate"] > 120:
            high.setdefault(device, []).append(now - START)
    assert sorted(high) == [f"sim-bed{n:02d}" for n in range(1, 9)]
    for times in high.values():
        # 5 s high in each 20 s cycle: two cycles in 40 s give 10 one-second readings.
        assert len(times) == 10
