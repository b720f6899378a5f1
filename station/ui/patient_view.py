"""Detail view of one bed: larger curves of every parameter with time and value axes, and the
bed's alarm limits in force drawn over them (dashed lines, and the range in each plot's title).

A non-modal window over the ward screen; it reads the same ring buffers as the tile and is
repainted by the main window's render timer while it is open. GUI thread only.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QVBoxLayout, QWidget

from station.domain.bed_limits import BedLimits, range_text
from station.ui import theme
from station.ui.beddata import BedData

PLOTS = (
    ("Heart rate (bpm)", ("heartrate",), (30.0, 200.0)),
    ("SpO2 (%)", ("oxygen",), (70.0, 101.0)),
    ("NIBP (mmHg)", ("systolic", "diastolic"), (30.0, 220.0)),
    ("Temperature (°C)", ("temperature",), (34.0, 41.0)),
)


class PatientView(QDialog):
    """Larger plots of one bed. GUI thread only."""

    def __init__(self, data: BedData, window_s: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data = data
        self._window_s = window_s
        self.setWindowTitle(f"{data.label} — detail")
        self.resize(900, 700)
        self.title = QLabel()
        self.title.setStyleSheet("font-size:18px; font-weight:700;")
        self.graphs = pg.GraphicsLayoutWidget()
        self.graphs.setBackground(theme.BACKGROUND)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._items: list[pg.PlotItem] = []
        self.limit_lines: dict[str, tuple[pg.InfiniteLine, pg.InfiniteLine]] = {}
        self._painted_limits: BedLimits | None = None
        for row, (title, params, (lo, hi)) in enumerate(PLOTS):
            item = self.graphs.addPlot(
                row=row, col=0, title=title, axisItems={"bottom": pg.DateAxisItem()}
            )
            item.setYRange(lo, hi, padding=0)
            item.disableAutoRange()
            item.showGrid(x=True, y=True, alpha=0.2)
            item.setMouseEnabled(x=False, y=False)
            for param in params:
                pen = pg.mkPen(theme.PARAM_COLOURS[param], width=2)
                self.curves[param] = item.plot(pen=pen, connect="finite")
                dashed = pg.mkPen(theme.PARAM_COLOURS[param], width=1, style=Qt.PenStyle.DashLine)
                lines = (pg.InfiniteLine(angle=0, pen=dashed), pg.InfiniteLine(angle=0, pen=dashed))
                for line in lines:
                    item.addItem(line)
                    line.setVisible(False)
                self.limit_lines[param] = lines
            self._items.append(item)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.graphs, 1)
        self.refresh(0.0, force=True)

    def refresh(self, now: float, force: bool = False) -> None:
        """Redraw from the bed's buffers (the tile clears ``dirty``; the view redraws each frame
        it is visible, which is cheap for four plots)."""
        if not (force or self.isVisible()):
            return
        device = self.data.device_id or "no device"
        self.title.setText(f"{self.data.label} · {device}")
        if self.data.limits is not self._painted_limits:
            self._paint_limits(self.data.limits)
        for param, curve in self.curves.items():
            t, v = self.data.buffers[param].view()
            curve.setData(t.copy(), v.copy())  # pyqtgraph keeps references; the ring moves
        if now:
            for item in self._items:
                item.setXRange(now - self._window_s, now, padding=0)

    def _paint_limits(self, bed_limits: BedLimits) -> None:
        """The limits in force as dashed lines and in each plot's title (only when they
        change: a nurse, a transfer, a restart)."""
        self._painted_limits = bed_limits
        limits = bed_limits.limits
        for (title, params, _), item in zip(PLOTS, self._items, strict=True):
            whose = f"limits {range_text(limits, *params)} ({bed_limits.source})" if limits else ""
            item.setTitle(f"{title}   {whose}" if whose else title)
            for param in params:
                lim = limits.get(param)
                sides = (None, None) if lim is None else (lim.low, lim.high)
                for line, value in zip(self.limit_lines[param], sides, strict=True):
                    line.setVisible(value is not None)
                    if value is not None:
                        line.setValue(value)
