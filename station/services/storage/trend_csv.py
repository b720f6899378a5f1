"""CSV export of a bed's trend, for a spreadsheet, a report or a ward round.

One row per sample (raw) or per minute (aggregates, timed at the minute's start), with the mean,
min and max of every parameter (for raw rows all three are the sample). Times are UTC RFC 3339
with milliseconds (:func:`~station.domain.timefmt.iso_ms`), so a time copied from here matches
the alarm history and the audit trail; a missing value is an empty cell, never 0 or NaN.

The file is written beside the target under a temporary name, fsynced and renamed over the
target with :func:`os.replace`: a reader, a full disk or a crash never leaves half a file under
the chosen name. ``mkstemp`` makes the file readable by its owner only, which suits data about a
patient.

The bed label is the only text column and is configured or comes from onboarding; like the alarm
history export it is neutralised with a leading ``'`` when it would start a spreadsheet formula
(CSV injection).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from station.domain.timefmt import iso_ms
from station.services.storage.trends import TREND_PARAMS, TrendData

CSV_HEADER = (
    "time_utc",
    "bed",
    "resolution",
    *(f"{p}_{stat}" for p in TREND_PARAMS for stat in ("mean", "min", "max")),
)
# OWASP's formula starts; tab and carriage return as in the alarm history export.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def without_spans(data: TrendData, spans: list[tuple[float, float]]) -> tuple[TrendData, int]:
    """``data`` without the rows whose time falls in any ``[since, until)`` span (a patient who
    has not consented to export), and how many rows were left out."""
    if not spans:
        return data, 0
    keep = np.ones(data.t.shape, dtype=bool)
    for since, until in spans:
        keep &= ~((data.t >= since) & (data.t < until))
    left_out = int(data.t.size - keep.sum())
    if not left_out:
        return data, 0

    def cut(arrays: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        return {name: a[keep] for name, a in arrays.items()}

    return (
        replace(
            data,
            t=data.t[keep],
            mean=cut(data.mean),
            min=cut(data.min),
            max=cut(data.max),
            count=cut(data.count),
        ),
        left_out,
    )


def write_csv(data: TrendData, path: Path) -> int:
    """Write ``data`` to ``path`` atomically; return the data rows written (header excluded).

    Raises:
        OSError: the folder is missing or not writable, or the disk is full; the target is then
            untouched and no temporary file is left behind.
    """
    bed = "'" + data.bed if data.bed.startswith(_FORMULA_START) else data.bed
    columns = [stat[p].tolist() for p in TREND_PARAMS for stat in (data.mean, data.min, data.max)]
    times = data.t.tolist()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_HEADER)
            for i, t in enumerate(times):
                writer.writerow([iso_ms(t), bed, data.resolution, *(_cell(c[i]) for c in columns)])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(times)


def _cell(value: float) -> str:
    """Three decimals at most, no trailing zeros (``72``, ``36.55``); empty when missing."""
    if not math.isfinite(value):  # NaN: the parameter is missing in this sample or minute
        return ""
    return f"{value:.3f}".rstrip("0").rstrip(".")
