"""The alarm sound as data: priority-coded bursts after IEC 60601-1-8, synthesized to PCM.

Pure (stdlib and numpy): it decides what each alarm priority sounds like and renders it to
16-bit samples and a WAV file; :mod:`station.ui.sound` only plays the result. Keeping the
pattern here lets the unit tests measure pulse counts, timing and pitch from the samples
themselves, which matters in a container or on a CI machine that has no speaker.

The figures follow IEC 60601-1-8 (Table 3) so that a nurse who hears the station recognises the
priority without looking:

* high: 10 pulses in two groups of 5, the groups parted by a longer pause (the standard asks
  0.35-1.30 s); the burst repeats every 10 s (the standard allows 2.5-15 s);
* medium: 3 pulses, repeated every 15 s (2.5-30 s);
* low: 1 pulse, repeated every 30 s (more than 15 s, or not at all).

Pulses are 150 ms (high; the standard allows 75-200 ms) and 200 ms (medium and low;
125-250 ms), with a gap of 100 ms (high, 50-125 ms) or 200 ms (medium, 125-250 ms, no shorter
than high's) between them. The pitch is a fundamental in 150-1000 Hz with its 3rd and 5th
harmonics, so the ear can tell where the sound comes from; 10 ms raised-cosine ramps start and
end every pulse, so a speaker does not click.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

SAMPLE_RATE = 44_100
RAMP_S = 0.010
"""Rise and fall time of every pulse: long enough that the onset does not click."""
MIN_FREQUENCY_HZ = 150.0
MAX_FREQUENCY_HZ = 1000.0
HARMONICS: tuple[tuple[int, float], ...] = ((1, 1.0), (3, 0.5), (5, 0.3))
"""(multiple of the fundamental, relative amplitude). 0.5 and 0.3 are -6 and -10.5 dB: within
the 15 dB of the fundamental that the standard asks of the harmonics that make a sound locatable."""
FULL_SCALE = 0.9
"""Peak level at volume 1.0, as a fraction of int16 full scale: headroom against clipping."""


@dataclass(frozen=True, slots=True)
class BurstSpec:
    """One priority's burst: its pulses, their timing and pitch, and how often it repeats.

    Attributes:
        priority: ``"high"``, ``"medium"`` or ``"low"``.
        pulses: Pulses in one burst.
        pulse_s: Duration of one pulse, ramps included.
        gap_s: Silence between the end of a pulse and the start of the next.
        group_gap_s: When positive, the pulses form two equal groups (5 + 5 for high) and this
            silence replaces ``gap_s`` between them; 0 for a single group.
        frequency_hz: Fundamental frequency of every pulse.
        repeat_s: Time from the start of one burst to the start of the next while the alarm
            sounds.
    """

    priority: str
    pulses: int
    pulse_s: float
    gap_s: float
    group_gap_s: float
    frequency_hz: float
    repeat_s: float

    def __post_init__(self) -> None:
        if self.pulses < 1:
            raise ValueError(f"{self.priority}: a burst needs at least one pulse")
        if self.group_gap_s > 0 and self.pulses % 2:
            raise ValueError(f"{self.priority}: two equal groups need an even number of pulses")
        if self.pulse_s < 2 * RAMP_S:
            raise ValueError(f"{self.priority}: a pulse must be longer than its two ramps")
        if not MIN_FREQUENCY_HZ <= self.frequency_hz <= MAX_FREQUENCY_HZ:
            raise ValueError(f"{self.priority}: fundamental outside 150-1000 Hz")
        if self.gap_s < 0 or self.group_gap_s < 0:
            raise ValueError(f"{self.priority}: gaps cannot be negative")
        if self.repeat_s <= burst_duration(self):
            raise ValueError(f"{self.priority}: a burst must end before the next one starts")


def pulse_onsets(spec: BurstSpec) -> list[float]:
    """Start time of each pulse, in seconds from the start of the burst.

    Args:
        spec: The burst.

    Returns:
        ``spec.pulses`` increasing times; the first is 0.
    """
    group = spec.pulses // 2 if spec.group_gap_s > 0 else spec.pulses
    onsets = [0.0]
    for i in range(1, spec.pulses):
        gap = spec.group_gap_s if i % group == 0 else spec.gap_s
        onsets.append(onsets[-1] + spec.pulse_s + gap)
    return onsets


def burst_duration(spec: BurstSpec) -> float:
    """Seconds from the start of the first pulse to the end of the last."""
    return pulse_onsets(spec)[-1] + spec.pulse_s


BURSTS: dict[str, BurstSpec] = {
    spec.priority: spec
    for spec in (
        BurstSpec("high", 10, 0.150, 0.100, 0.500, 660.0, 10.0),
        BurstSpec("medium", 3, 0.200, 0.200, 0.0, 520.0, 15.0),
        BurstSpec("low", 1, 0.200, 0.200, 0.0, 440.0, 30.0),
    )
}
"""The three priorities' bursts. Higher priority sounds higher and faster, which is how the ear
ranks urgency; all three stay inside the standard's ranges (see the module docstring)."""


def _pulse(spec: BurstSpec, sample_rate: int) -> npt.NDArray[np.float64]:
    """One pulse at peak 1.0: the harmonic tone under a raised-cosine envelope."""
    n = round(spec.pulse_s * sample_rate)
    t = np.arange(n) / sample_rate
    tone = sum(
        (amp * np.sin(2 * math.pi * k * spec.frequency_hz * t) for k, amp in HARMONICS),
        start=np.zeros(n),
    )
    ramp_n = round(RAMP_S * sample_rate)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, ramp_n))
    envelope = np.ones(n)
    envelope[:ramp_n] = ramp
    envelope[n - ramp_n :] = ramp[::-1]
    shaped: npt.NDArray[np.float64] = tone * envelope
    return shaped / float(np.max(np.abs(shaped)))


def synthesize(spec: BurstSpec, sample_rate: int = SAMPLE_RATE, volume: float = 1.0) -> Int16Array:
    """Render one burst to mono 16-bit samples.

    Args:
        spec: The burst.
        sample_rate: Samples per second; at least twice the highest harmonic.
        volume: Linear gain in 0..1; 1.0 peaks at :data:`FULL_SCALE` of int16.

    Returns:
        The samples, from the start of the first pulse to the end of the last.

    Raises:
        ValueError: For a volume outside 0..1 or a sample rate too low for the harmonics.
    """
    if not 0.0 <= volume <= 1.0:
        raise ValueError(f"volume must be in 0..1, not {volume!r}")
    top_hz = max(k for k, _ in HARMONICS) * spec.frequency_hz
    if sample_rate <= 2 * top_hz:
        raise ValueError(f"sample rate {sample_rate} cannot carry {top_hz:.0f} Hz")
    pulse = _pulse(spec, sample_rate)
    starts = [round(onset * sample_rate) for onset in pulse_onsets(spec)]
    out = np.zeros(starts[-1] + pulse.size)
    for start in starts:
        out[start : start + pulse.size] = pulse
    scaled = np.rint(out * (volume * FULL_SCALE * np.iinfo(np.int16).max))
    return scaled.astype(np.int16)


def wav_bytes(samples: Int16Array, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A RIFF/WAVE file (PCM, mono, 16-bit little-endian) holding ``samples``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def self_test_sequence() -> list[str]:
    """The priorities played in turn at start-up, so staff can hear that every one works."""
    return ["high", "medium", "low"]
