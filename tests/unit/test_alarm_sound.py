"""The alarm sound as data: pulse pattern, timing and pitch measured from the samples.

No speaker is needed: each property IEC 60601-1-8 asks of an alarm sound is checked on what
:func:`synthesize` renders (pulses found by their envelope, pitch by an FFT peak), not only on
the :class:`BurstSpec` figures.
"""

from __future__ import annotations

import io
import itertools
import wave
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from station.domain.alarm_sound import (
    BURSTS,
    SAMPLE_RATE,
    BurstSpec,
    burst_duration,
    pulse_onsets,
    self_test_sequence,
    synthesize,
    wav_bytes,
)

PRIORITIES = ("high", "medium", "low")
INT16_MAX = np.iinfo(np.int16).max


def sounding_runs(samples: npt.NDArray[np.int16]) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch of sound, found from the samples alone."""
    loud = np.abs(samples.astype(np.float64)) > 0.01 * INT16_MAX
    # Close the gaps between zero crossings: anything quieter for under 5 ms is one pulse.
    window = round(0.005 * SAMPLE_RATE)
    smeared = np.convolve(loud, np.ones(window), mode="same") > 0
    # Padded with silence, the rises and falls alternate: rise, fall, rise, fall, ...
    edges = np.flatnonzero(np.diff(np.concatenate(([0], smeared.astype(np.int8), [0]))))
    starts, ends = edges[::2], edges[1::2]
    return [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in zip(starts, ends, strict=True)]


def fundamental_hz(samples: npt.NDArray[np.int16], spec: BurstSpec) -> float:
    """The strongest frequency in the first pulse, by FFT with a Hann window, zero-padded."""
    pulse = samples[: round(spec.pulse_s * SAMPLE_RATE)].astype(np.float64)
    n_fft = 1 << 18  # 0.17 Hz bins
    spectrum = np.abs(np.fft.rfft(pulse * np.hanning(pulse.size), n_fft))
    return float(np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)[np.argmax(spectrum)])


@pytest.mark.parametrize(("priority", "pulses"), [("high", 10), ("medium", 3), ("low", 1)])
def test_pulse_count_in_spec_and_in_the_samples(priority: str, pulses: int) -> None:
    spec = BURSTS[priority]
    assert spec.priority == priority
    assert spec.pulses == pulses
    assert len(pulse_onsets(spec)) == pulses
    assert len(sounding_runs(synthesize(spec))) == pulses


def test_high_is_two_groups_of_five_parted_by_a_longer_pause() -> None:
    runs = sounding_runs(synthesize(BURSTS["high"]))
    silences = [b[0] - a[1] for a, b in itertools.pairwise(runs)]
    assert len(silences) == 9
    between_groups = silences[4]
    within = silences[:4] + silences[5:]
    assert between_groups > max(within) + 0.2
    assert 0.35 <= between_groups <= 1.30  # IEC 60601-1-8 Table 3
    assert max(within) - min(within) < 0.005


def test_onsets_match_where_the_pulses_sound() -> None:
    for priority in PRIORITIES:
        spec = BURSTS[priority]
        starts = [a for a, _ in sounding_runs(synthesize(spec))]
        assert np.allclose(starts, pulse_onsets(spec), atol=0.006), priority


@pytest.mark.parametrize("priority", PRIORITIES)
def test_fundamental_measured_within_150_to_1000_hz(priority: str) -> None:
    spec = BURSTS[priority]
    measured = fundamental_hz(synthesize(spec), spec)
    assert 150.0 <= measured <= 1000.0
    assert measured == pytest.approx(spec.frequency_hz, abs=2.0)


def test_harmonics_are_present_for_localisation() -> None:
    spec = BURSTS["high"]
    pulse = synthesize(spec)[: round(spec.pulse_s * SAMPLE_RATE)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pulse * np.hanning(pulse.size), 1 << 18))
    freqs = np.fft.rfftfreq(1 << 18, 1 / SAMPLE_RATE)

    def level(hz: float) -> float:
        band = (freqs > hz - 20) & (freqs < hz + 20)
        return float(spectrum[band].max())

    fundamental = level(spec.frequency_hz)
    for k in (3, 5):
        relative_db = 20 * np.log10(level(k * spec.frequency_hz) / fundamental)
        assert -15.0 <= relative_db <= 0.0, (k, relative_db)
    assert level(2 * spec.frequency_hz) < 0.01 * fundamental  # only odd harmonics synthesized


@pytest.mark.parametrize("priority", PRIORITIES)
def test_samples_fit_int16_with_headroom_and_no_clicks(priority: str) -> None:
    samples = synthesize(BURSTS[priority])
    assert samples.dtype == np.int16
    assert 0.8 * INT16_MAX < np.abs(samples.astype(np.int32)).max() < INT16_MAX
    one_ms = round(0.001 * SAMPLE_RATE)
    assert samples[0] == 0
    assert samples[-1] == 0
    assert np.abs(samples[:one_ms].astype(np.int32)).max() < 0.03 * INT16_MAX
    assert np.abs(samples[-one_ms:].astype(np.int32)).max() < 0.03 * INT16_MAX


def test_every_pulse_starts_and_ends_quietly() -> None:
    spec = BURSTS["high"]
    samples = synthesize(spec).astype(np.int32)
    one_ms = round(0.001 * SAMPLE_RATE)
    pulse_n = round(spec.pulse_s * SAMPLE_RATE)
    for onset in pulse_onsets(spec):
        start = round(onset * SAMPLE_RATE)
        assert np.abs(samples[start : start + one_ms]).max() < 0.03 * INT16_MAX
        end = start + pulse_n
        assert np.abs(samples[end - one_ms : end]).max() < 0.03 * INT16_MAX


def test_volume_scales_the_samples() -> None:
    spec = BURSTS["low"]
    full = np.abs(synthesize(spec, volume=1.0).astype(np.int32)).max()
    half = np.abs(synthesize(spec, volume=0.5).astype(np.int32)).max()
    assert half == pytest.approx(full / 2, abs=1)
    assert not synthesize(spec, volume=0.0).any()
    with pytest.raises(ValueError, match="volume"):
        synthesize(spec, volume=1.5)


def test_burst_durations_and_repeat_intervals() -> None:
    assert burst_duration(BURSTS["high"]) == pytest.approx(2.8)
    assert burst_duration(BURSTS["medium"]) == pytest.approx(1.0)
    assert burst_duration(BURSTS["low"]) == pytest.approx(0.2)
    assert BURSTS["high"].repeat_s <= 10.0
    assert BURSTS["medium"].repeat_s <= 30.0
    assert BURSTS["low"].repeat_s > 15.0
    for spec in BURSTS.values():
        assert burst_duration(spec) < spec.repeat_s
        assert synthesize(spec).size == round(burst_duration(spec) * SAMPLE_RATE)


def test_pulse_durations_within_the_standard() -> None:
    assert 0.075 <= BURSTS["high"].pulse_s <= 0.200
    for priority in ("medium", "low"):
        assert 0.125 <= BURSTS[priority].pulse_s <= 0.250
    assert BURSTS["medium"].gap_s >= BURSTS["high"].gap_s


def test_wav_header_and_length() -> None:
    samples = synthesize(BURSTS["medium"])
    data = wav_bytes(samples, SAMPLE_RATE)
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    with wave.open(io.BytesIO(data), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == SAMPLE_RATE
        assert wav.getnframes() == samples.size
        frames = wav.readframes(wav.getnframes())
    assert np.array_equal(np.frombuffer(frames, dtype="<i2"), samples)
    assert len(data) == 44 + 2 * samples.size


def test_self_test_plays_every_priority_most_urgent_first() -> None:
    assert self_test_sequence() == ["high", "medium", "low"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frequency_hz": 1200.0}, "150-1000"),
        ({"frequency_hz": 100.0}, "150-1000"),
        ({"pulses": 0}, "at least one pulse"),
        ({"pulses": 9}, "even number"),
        ({"pulse_s": 0.015}, "ramps"),
        ({"repeat_s": 2.0}, "before the next"),
    ],
)
def test_spec_outside_the_standard_is_refused(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(BURSTS["high"], **change)
