"""A printed trend: one bed's vital signs over a period drawn into an image for a report.

Why not pyqtgraph: it paints widgets on the GUI thread, and a report renders on a worker. A
:class:`QPainter` on a :class:`QImage` works on any thread, and a printed trend needs little: a
time axis, one band per parameter with its scale, the curve (each minute's min–max as a thin bar
under the mean, so an extreme is never averaged away), the alarm limits dashed, and the moments
of alarms marked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen

from station.domain.alarms import AlarmLimits
from station.services.storage.trends import TrendData

WIDTH, BAND = 1800, 190
"""Pixels: the image is printed 180 mm wide, so about 250 dpi."""
LEFT, RIGHT, AXIS = 150, 30, 46
INK, GRID, LIMIT, MARK = "#000000", "#c8c8c8", "#b00000", "#d00000"
BANDS = (
    ("Heart rate", "bpm", ("heartrate",), (30.0, 200.0), "#1b7f1b"),
    ("SpO2", "%", ("oxygen",), (70.0, 100.0), "#0a5fa8"),
    ("NIBP", "mmHg", ("systolic", "diastolic"), (30.0, 220.0), "#b0401a"),
    ("Temperature", "°C", ("temperature",), (34.0, 41.0), "#8a6a00"),
)
"""Printed in dark colours on white (a report is read on paper, not on the ward's dark screen)."""


def trend_image(
    data: TrendData,
    limits: Mapping[str, AlarmLimits],
    alarms_at: Sequence[float] = (),
) -> QImage:
    """The bed's four bands over ``data``'s period (UTC seconds), with ``limits`` dashed and
    each time in ``alarms_at`` marked by a red tick along the top."""
    image = QImage(WIDTH, BAND * len(BANDS) + AXIS, QImage.Format.Format_RGB32)
    image.fill(QColor("#ffffff"))
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont("DejaVu Sans")
        font.setPixelSize(22)
        painter.setFont(font)
        span = max(data.end_s - data.start_s, 1.0)
        plot_w = WIDTH - LEFT - RIGHT

        def x_of(t: float) -> float:
            return LEFT + (t - data.start_s) / span * plot_w

        for row, band in enumerate(BANDS):
            _band(painter, data, limits, band, row * BAND, x_of)
        painter.setPen(QPen(QColor(MARK), 4))
        for at in alarms_at:
            if data.start_s <= at <= data.end_s:
                painter.drawLine(QPointF(x_of(at), 0), QPointF(x_of(at), 14))
        _time_axis(painter, data.start_s, data.end_s, BAND * len(BANDS), x_of)
    finally:
        painter.end()
    return image


def _band(
    painter: QPainter,
    data: TrendData,
    limits: Mapping[str, AlarmLimits],
    band: tuple[str, str, tuple[str, ...], tuple[float, float], str],
    top: int,
    x_of: Callable[[float], float],
) -> None:
    name, unit, params, (lo, hi), colour = band
    box = QRectF(LEFT, top + 24, WIDTH - LEFT - RIGHT, BAND - 36)

    def y_of(value: float) -> float:
        return box.bottom() - (value - lo) / (hi - lo) * box.height()

    painter.setPen(QPen(QColor(GRID), 1))
    painter.drawRect(box)
    for value in (lo, (lo + hi) / 2, hi):
        painter.drawLine(QPointF(box.left(), y_of(value)), QPointF(box.right(), y_of(value)))
        painter.setPen(QColor(INK))
        label = QRectF(0, y_of(value) - 14, LEFT - 10, 28)
        painter.drawText(label, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                         f"{value:g}")  # fmt: skip
        painter.setPen(QPen(QColor(GRID), 1))
    painter.setPen(QColor(colour))
    painter.drawText(QRectF(LEFT, top, 600, 24), Qt.AlignmentFlag.AlignLeft, f"{name} ({unit})")
    painter.setClipRect(box)
    for param in params:
        t, mean, low, high = data.series(param)
        xs = np.fromiter((x_of(float(v)) for v in t), float, count=t.size)
        painter.setPen(QPen(QColor(colour).lighter(160), 2))
        for x, a, b in zip(xs, low, high, strict=True):
            if math.isfinite(a) and math.isfinite(b) and b > a:
                painter.drawLine(QPointF(x, y_of(float(a))), QPointF(x, y_of(float(b))))
        path = QPainterPath()
        pen_down = False
        for x, v in zip(xs, mean, strict=True):
            if not math.isfinite(v):
                pen_down = False
                continue
            point = QPointF(x, y_of(float(v)))
            if pen_down:
                path.lineTo(point)
            else:
                path.moveTo(point)
            pen_down = True
        painter.setPen(QPen(QColor(colour), 3))
        painter.drawPath(path)
        lim = limits.get(param)
        if lim is not None:
            painter.setPen(QPen(QColor(LIMIT), 2, Qt.PenStyle.DashLine))
            for side in (lim.low, lim.high):
                if side is not None:
                    y = y_of(side)
                    painter.drawLine(QPointF(box.left(), y), QPointF(box.right(), y))
    painter.setClipping(False)


def _time_axis(
    painter: QPainter, start: float, end: float, top: int, x_of: Callable[[float], float]
) -> None:
    span = end - start
    step = next((s for s in (60, 120, 300, 600, 1800, 3600, 7200, 14400) if span / s <= 8), 28800)
    painter.setPen(QColor(INK))
    first = math.ceil(start / step) * step
    for t in np.arange(first, end + 1, step):
        x = x_of(float(t))
        painter.drawLine(QPointF(x, top), QPointF(x, top + 8))
        text = datetime.fromtimestamp(float(t)).strftime("%H:%M")
        painter.drawText(QRectF(x - 60, top + 10, 120, 30), Qt.AlignmentFlag.AlignHCenter, text)
