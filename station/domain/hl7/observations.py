"""Trend samples turned into PCD-01 observation reports: one per admitted bed and period (each
parameter's median per device), or one per sample.

Why a median: a summary stands for the period in the patient's chart, where a nurse would chart
one value, and one artefact (a probe pulled off, a motion spike) moves a mean but not a median.
Why a summary by default: an electronic record charts vital signs by the minute at most, and a
ward of 64 beds sending every 1 Hz sample would need 64 acknowledged messages a second, far
beyond what a hospital's interface engine is sized for and what an outage's queue could hold.

Each sample counts only for the patient who lay in its bed at its time, and only when that
patient's storage consent is given (:mod:`.subjects`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from station.domain.hl7.content import DeviceValues, Metric, ObservationReport
from station.domain.hl7.subjects import Subjects
from station.domain.hl7.text import control_id
from station.domain.vital_codes import VITAL_CODES


@dataclass(frozen=True, slots=True)
class Sample:
    """One message's vital signs as the trend store keeps them (device time in ms)."""

    bed: str
    device: str
    time_ms: int
    values: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Batch:
    """Reports made from samples, and how many samples no report could take (an empty bed, a
    refused storage consent, a patient table that is not known)."""

    reports: tuple[ObservationReport, ...]
    withheld: int


def _eligible(sample: Sample, subjects: Subjects) -> str | None:
    subject = subjects.at(sample.bed, sample.time_ms / 1000)
    return subject.patient_id if subject is not None and subject.storage else None


def _metrics(samples: Iterable[Sample]) -> tuple[Metric, ...]:
    values: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        for parameter, value in sample.values.items():
            if parameter in VITAL_CODES:
                values[parameter].append(value)
    return tuple(
        Metric(p, float(statistics.median(values[p]))) for p in VITAL_CODES if values.get(p)
    )


def summaries(
    samples: Iterable[Sample],
    start: float,
    end: float,
    subjects: Subjects,
    station_id: str,
    now: float,
) -> Batch:
    """One report per (bed, patient) for the period ``[start, end)``: per device, each
    parameter's median over its samples."""
    groups: dict[tuple[str, str], dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    withheld = 0
    for sample in samples:
        patient = _eligible(sample, subjects)
        if patient is None:
            withheld += 1
            continue
        groups[(sample.bed, patient)][sample.device].append(sample)
    out = []
    for (bed, patient), by_device in sorted(groups.items()):
        devices = tuple(
            DeviceValues(device, metrics, len(found))
            for device, found in sorted(by_device.items())
            if (metrics := _metrics(found))
        )
        if devices:
            cid = control_id(station_id, "R01", bed, patient, f"{start:.3f}", f"{end:.3f}")
            out.append(ObservationReport(cid, now, bed, patient, start, end, devices))
    return Batch(tuple(out), withheld)


def singles(samples: Iterable[Sample], subjects: Subjects, station_id: str, now: float) -> Batch:
    """One report per sample (the ``each`` mode)."""
    out = []
    withheld = 0
    for sample in samples:
        patient = _eligible(sample, subjects)
        metrics = _metrics((sample,))
        if patient is None or not metrics:
            withheld += patient is None
            continue
        at = sample.time_ms / 1000
        cid = control_id(station_id, "R01", sample.bed, sample.device, str(sample.time_ms))
        device = DeviceValues(sample.device, metrics, 1)
        out.append(ObservationReport(cid, now, sample.bed, patient, at, at, (device,)))
    return Batch(tuple(out), withheld)
