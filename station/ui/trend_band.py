"""The trend view's min–max band: a translucent polygon under the mean curve, built with numpy.

Apart from the view because it is drawing arithmetic, not a window's behaviour. GUI thread only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

BAND_ALPHA = 70
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def band_item(item: pg.PlotItem, colour: str) -> QGraphicsPathItem:
    """A translucent min–max band, drawn under the mean curve."""
    fill = QColor(colour)
    fill.setAlpha(BAND_ALPHA)
    shape = QGraphicsPathItem()
    shape.setPen(QPen(Qt.PenStyle.NoPen))
    shape.setBrush(QBrush(fill))
    shape.setVisible(False)
    item.addItem(shape)
    return shape


def band_path(t: FloatArray, low: FloatArray, high: FloatArray, connect: BoolArray) -> QPainterPath:
    """One closed polygon per connected run of minutes: the maxima forward, the minima back.

    Built with numpy in one :func:`pg.arrayToQPath` call; pyqtgraph's FillBetweenItem joins
    polygons in Python and took ~20 ms per band for 72 h on the GUI thread.
    """
    if t.size == 0:
        return QPainterPath()
    ends = np.flatnonzero(~connect) + 1  # connect[-1] is False, so the last run ends at t.size
    starts = np.concatenate(([0], ends[:-1]))
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    joins: list[BoolArray] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        xs += [t[a:b], t[a:b][::-1]]
        ys += [high[a:b], low[a:b][::-1]]
        join = np.ones(2 * (b - a), dtype=bool)
        join[-1] = False  # the fill closes each run's polygon; the next run starts apart
        joins.append(join)
    path: QPainterPath = pg.arrayToQPath(
        np.concatenate(xs), np.concatenate(ys), np.concatenate(joins)
    )
    return path
