"""A deterministic simulated ward: what `station simulate` and `station --demo` publish.

Pure Python on purpose (no MQTT, no Qt): the same seed and the same tick times give the same bytes,
so a test can assert on exact payloads and a demo shows the same ward every time. Each patient has
a baseline drawn from the seed and drifts around it with an Ornstein–Uhlenbeck process (smooth,
mean-reverting, like real vitals) plus a little measurement noise. Scenarios layer faults on top:
a deteriorating patient, a device that drops out, malformed messages the station must reject.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass, field

from station.domain.timefmt import iso_ms

log = logging.getLogger(__name__)

SCENARIOS: tuple[str, ...] = (
    "normal",
    "deterioration",
    "dropout",
    "malformed",
    "flood",
    "demo",
    "alarms",
)
# "alarms": every bed's heart rate jumps above its limit for ALARM_ON_S in every ALARM_CYCLE_S,
# beds phased evenly, so a ward raises and clears alarms steadily (the latency bench uses it).
ALARM_CYCLE_S = 20.0
ALARM_ON_S = 5.0
ALARM_HR = 140
TOPIC_MODES: tuple[str, ...] = ("per-device", "single")
SINGLE_TOPIC = "healthcare/sensor_data"

DROPOUT_PERIOD_S = 60.0
DROPOUT_SILENCE_S = 30.0
# `dropout` shows the gap after half a period; the demo sooner, so a visitor sees it within ~20 s.
_DROPOUT_FIRST_SILENCE_S = {"dropout": 30.0, "demo": 20.0}
MALFORMED_RATIO = 0.1
MALFORMED_KINDS: tuple[str, ...] = (
    "string_number",
    "nan_literal",
    "missing_device_id",
    "truncated",
    "naive_timestamp",
    "duplicate_key",
    "boolean_number",
)

# Mean-reversion time of the drift: vitals wander over about a minute, not from sample to sample.
_THETA = 1.0 / 60.0
# (stationary std of the drift, std of the measurement noise, clamp low, clamp high) per parameter.
# The clamps keep a "normal" patient inside usual limits so the demo raises no false alarms.
_HR = (4.0, 1.0, 52.0, 108.0)
_SPO2 = (0.7, 0.4, 94.0, 100.0)
_SYS = (5.0, 2.0, 96.0, 150.0)
_DIA = (3.0, 1.5, 56.0, 94.0)
_TEMP = (0.12, 0.03, 36.0, 37.6)
_NAMES = ("hr", "spo2", "sys", "dia", "temp")
_SPECS = (_HR, _SPO2, _SYS, _DIA, _TEMP)
_BATTERY_DRAIN_PER_S = 0.004  # ~14 %/h: visible over a demo, never empty within a shift
_BATTERY_FLOOR = 5.0


def topic_for(device_id: str, mode: str) -> str:
    """The topic a device publishes on (CONTRACT §1).

    Args:
        device_id: the device, e.g. ``sim-bed03``.
        mode: ``per-device`` (a topic per device, for broker ACLs) or ``single`` (the integration
            document's one topic, the device named only in the payload).

    Raises:
        ValueError: for an unknown mode.
    """
    if mode == "per-device":
        return f"healthcare/devices/{device_id}/vitals"
    if mode == "single":
        return SINGLE_TOPIC
    raise ValueError(f"unknown topic mode {mode!r}; expected one of {', '.join(TOPIC_MODES)}")


@dataclass
class _Drift:
    """One Ornstein–Uhlenbeck deviation from a baseline, advanced by elapsed time."""

    std: float
    value: float = 0.0

    def step(self, rng: random.Random, dt: float) -> float:
        if dt > 0:
            # Exact discretisation: stable for any dt, so an irregular caller cannot blow it up.
            decay = math.exp(-_THETA * dt)
            self.value = self.value * decay + self.std * math.sqrt(1 - decay * decay) * rng.gauss()
        return self.value


@dataclass
class _Bed:
    """One patient and the device at the bedside."""

    number: int
    rng: random.Random
    faults: random.Random
    hr: float
    spo2: float
    sys: float
    dia: float
    temp: float
    battery: float
    drifts: dict[str, _Drift] = field(default_factory=dict)
    seq: int = 0
    last: float | None = None

    @property
    def device_id(self) -> str:
        return f"sim-bed{self.number:02d}"


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


class SimulatedWard:
    """A ward of simulated bedside monitors, deterministic for a seed.

    Not thread-safe: one owner (the simulator thread, or a test) calls :meth:`tick`.

    Args:
        beds: number of beds, devices ``sim-bed01`` … ``sim-bedNN``.
        seed: fixes baselines, drift and faults; the same seed and tick times give the same bytes.
        scenario: one of :data:`SCENARIOS`.
        start: epoch seconds at which the scenario begins (deterioration and dropout count from it).

    Raises:
        ValueError: for an unknown scenario or fewer than one bed.
    """

    def __init__(self, beds: int, seed: int, scenario: str, start: float) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(
                f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}"
            )
        if beds < 1:
            raise ValueError(f"beds must be at least 1, got {beds}")
        self.scenario = scenario
        self.start = start
        self._beds = [self._make_bed(seed, n) for n in range(1, beds + 1)]
        self._deteriorating = (
            (3 if beds >= 3 else 1) if scenario in ("deterioration", "demo") else None
        )
        self._dropout = min(6, beds) if scenario in _DROPOUT_FIRST_SILENCE_S else None
        log.debug(
            "simulated ward: %d beds, seed %d, scenario %s (deteriorating %s, dropout %s)",
            beds,
            seed,
            scenario,
            self.deteriorating_device,
            self.dropout_device,
        )

    @staticmethod
    def _make_bed(seed: int, number: int) -> _Bed:
        # A stream per bed (string seeds hash deterministically): adding a bed or a scenario never
        # changes the other beds' patients.
        rng = random.Random(f"station-sim:{seed}:{number}")
        faults = random.Random(f"station-sim:{seed}:{number}:faults")
        sys = rng.uniform(110, 135)
        bed = _Bed(
            number=number,
            rng=rng,
            faults=faults,
            hr=rng.uniform(60, 95),
            spo2=rng.uniform(95.5, 98.5),
            sys=sys,
            dia=min(rng.uniform(65, 85), sys - 35),
            temp=rng.uniform(36.4, 37.2),
            battery=rng.uniform(70, 100),
        )
        bed.drifts = {name: _Drift(spec[0]) for name, spec in zip(_NAMES, _SPECS, strict=True)}
        return bed

    @property
    def device_ids(self) -> list[str]:
        """All devices of the ward, in bed order."""
        return [bed.device_id for bed in self._beds]

    @property
    def deteriorating_device(self) -> str | None:
        """The device whose patient deteriorates in this scenario, if any."""
        return (
            None if self._deteriorating is None else self._beds[self._deteriorating - 1].device_id
        )

    @property
    def dropout_device(self) -> str | None:
        """The device that periodically goes silent in this scenario, if any."""
        return None if self._dropout is None else self._beds[self._dropout - 1].device_id

    def is_silent(self, device_id: str, now: float) -> bool:
        """Whether a device is in a dropout window at ``now`` (it sends nothing then)."""
        if self._dropout is None or device_id != self.dropout_device:
            return False
        since = now - self.start - _DROPOUT_FIRST_SILENCE_S[self.scenario]
        return since >= 0 and since % DROPOUT_PERIOD_S < DROPOUT_SILENCE_S

    def tick(self, now: float) -> list[tuple[str, bytes]]:
        """Advance every patient to ``now`` and return the messages due.

        Args:
            now: epoch seconds; the caller calls at its publishing rate with rising times.

        Returns:
            ``(device_id, payload)`` for each bed that sends at ``now``, in bed order.
        """
        out: list[tuple[str, bytes]] = []
        for bed in self._beds:
            dt = 0.0 if bed.last is None else max(0.0, now - bed.last)
            bed.last = now
            doc = self._measure(bed, now, dt)
            if self.is_silent(bed.device_id, now):
                continue
            bed.seq += 1
            doc["seq"] = bed.seq
            if self.scenario == "malformed" and bed.faults.random() < MALFORMED_RATIO:
                out.append((bed.device_id, _malformed(doc, bed.faults.choice(MALFORMED_KINDS))))
            else:
                out.append((bed.device_id, _encode(doc)))
        return out

    def _measure(self, bed: _Bed, now: float, dt: float) -> dict[str, object]:
        rng = bed.rng
        # Deviation from the baseline: the slow drift plus this reading's measurement noise.
        dev = {
            name: drift.step(rng, dt) + rng.gauss(0, spec[1])
            for (name, drift), spec in zip(bed.drifts.items(), _SPECS, strict=True)
        }
        if bed.number == self._deteriorating:
            hr, spo2, sys, dia, temp = _deteriorate(now - self.start, bed.sys, dev)
        else:
            hr = _clamp(bed.hr + dev["hr"], *_HR[2:])
            spo2 = _clamp(bed.spo2 + dev["spo2"], *_SPO2[2:])
            sys = _clamp(bed.sys + dev["sys"], *_SYS[2:])
            dia = _clamp(bed.dia + dev["dia"], *_DIA[2:])
            temp = _clamp(bed.temp + dev["temp"], *_TEMP[2:])
        if self.scenario == "alarms":
            offset = (bed.number - 1) * ALARM_CYCLE_S / len(self._beds)
            if (now - self.start + offset) % ALARM_CYCLE_S < ALARM_ON_S:
                hr = ALARM_HR
        bed.battery = max(_BATTERY_FLOOR, bed.battery - _BATTERY_DRAIN_PER_S * dt)
        systolic = round(sys)
        return {
            "device_id": bed.device_id,
            "timestamp": iso_ms(now),
            "heartrate": round(hr),
            "bloodpressure": {"systolic": systolic, "diastolic": min(round(dia), systolic - 15)},
            "temperature": round(temp, 1),
            "oxygen": round(spo2),
            "alert": "none",
            "battery": round(bed.battery, 1),
        }


def _deteriorate(
    t: float, sys0: float, dev: dict[str, float]
) -> tuple[float, float, float, float, float]:
    """Sepsis-like course from the scenario's start: tachycardia, hypoxia, hypotension, fever.

    Starts already past the usual alarm limits so alarms show within seconds, then worsens with a
    time constant of a few minutes. Half the patient's own variation rides on top, bounded so the
    course never crosses back over the limits.
    """
    k = 1.0 - math.exp(-max(t, 0.0) / 180.0)
    hr = _clamp(128 + 22 * k + 0.5 * dev["hr"], 125, 160)
    spo2 = _clamp(88 - 6 * k + 0.5 * dev["spo2"], 78, 89)
    sys = _clamp(min(sys0, 118) - 38 * k + 0.5 * dev["sys"], 70, 140)
    dia = _clamp(68 - 20 * k + 0.5 * dev["dia"], 40, 90)
    temp = _clamp(38.7 + 0.6 * k + 0.5 * dev["temp"], 38.6, 40.5)
    return hr, spo2, sys, dia, temp


def _encode(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _malformed(doc: dict[str, object], kind: str) -> bytes:
    """One message broken the way real devices and gateways break them.

    Each kind trips a different rule of CONTRACT §1, so the quarantine shows varied reasons.
    """
    bad = dict(doc)
    if kind == "string_number":
        bad["heartrate"] = str(bad["heartrate"])
    elif kind == "boolean_number":
        bad["oxygen"] = True
    elif kind == "missing_device_id":
        del bad["device_id"]
    elif kind == "naive_timestamp":
        bad["timestamp"] = str(bad["timestamp"]).removesuffix("Z")
    elif kind == "nan_literal":
        # json.dumps writes NaN for a float nan when allowed: exactly what a sloppy firmware sends.
        bad["temperature"] = math.nan
        return json.dumps(bad, separators=(",", ":")).encode("utf-8")
    elif kind == "duplicate_key":
        text = _encode(bad).decode("utf-8")
        return (text[:-1] + f',"heartrate":{int(str(bad["heartrate"])) + 40}}}').encode("utf-8")
    elif kind == "truncated":
        whole = _encode(bad)
        return whole[: len(whole) * 2 // 3]
    else:  # pragma: no cover - MALFORMED_KINDS lists every branch
        raise ValueError(f"unknown malformation {kind!r}")
    return _encode(bad)
