"""Detail view of one bed: who it is, its numerics with their alarm limits, its open alarms, its
state (no data, suspended, standby), and its curves over 10 min, 1 h or 8 h, with links to the
trends, the limits and the patient record.

A non-modal window over the ward screen, repainted by the main window's render timer while it is
open. 10 min and 1 h come from the same ring buffers as the tile (1 h at 1 Hz); 8 h from the
station's trend store, queried on a worker (``jobs``) when chosen and again each minute: the GUI
thread never reads the store. GUI thread only.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.domain.alarms import UNACKNOWLEDGED, AlarmKind, most_urgent
from station.domain.bed_limits import BedLimits, range_text
from station.services.jobs import Jobs
from station.services.storage.trends import TrendData, TrendStore
from station.ui import theme
from station.ui.beddata import BedData
from station.ui.theme import ScreenLook

PLOTS = (
    ("Heart rate (bpm)", ("heartrate",), (30.0, 200.0)),
    ("SpO2 (%)", ("oxygen",), (70.0, 101.0)),
    ("NIBP (mmHg)", ("systolic", "diastolic"), (30.0, 220.0)),
    ("Temperature (°C)", ("temperature",), (34.0, 41.0)),
)
WINDOWS_S = (600, 3600, 8 * 3600)
"""The time windows a nurse chooses: 10 min and 1 h live, 8 h from the trend store."""
STORE_WINDOW_S = 8 * 3600
REQUERY_S = 60.0
NUMERICS = (
    ("HR", "bpm", ("heartrate",), 0),
    ("SpO2", "%", ("oxygen",), 0),
    ("NIBP", "mmHg", ("systolic", "diastolic"), 0),
    ("Temp", "°C", ("temperature",), 1),
)


def _restyle(label: QLabel, style: str) -> None:
    """Set ``style`` only when it changed: the view repaints every frame, and each style sheet
    set re-polishes the label (measured the costliest call of a tile's repaint)."""
    if label.styleSheet() != style:
        label.setStyleSheet(style)


def _window_text(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h"


class PatientView(QDialog):
    """The bed's detail view. GUI thread only.

    Signals:
        trends_wanted(str), limits_wanted(str), patient_wanted(str): the bed label, from the
            view's buttons.
    """

    trends_wanted = Signal(str)
    limits_wanted = Signal(str)
    patient_wanted = Signal(str)

    def __init__(
        self,
        data: BedData,
        window_s: float,
        parent: QWidget | None = None,
        *,
        no_data_s: float = 15.0,
        trends: TrendStore | None = None,
        jobs: Jobs | None = None,
        look: ScreenLook | None = None,
    ) -> None:
        super().__init__(parent)
        self.data = data
        self._window_s = int(window_s)
        self._no_data_s = no_data_s
        self._trends, self._jobs = trends, jobs
        self._look = look = look or ScreenLook()
        self._stored: TrendData | None = None
        self._asked_at = -np.inf
        self._painted_limits: BedLimits | None = None
        self.setWindowTitle(f"{data.label} — detail")
        self.resize(1100, 760)

        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # a device id is never markup
        self.title.setStyleSheet("font-size:18px; font-weight:700;")
        self.patient = QLabel()
        self.patient.setStyleSheet("font-size:14px;")
        self.state = QLabel()
        self.state.setTextFormat(Qt.TextFormat.PlainText)  # a device's alert text is not markup
        self.state.setStyleSheet("font-size:14px; font-weight:700;")
        self.window_group = QButtonGroup(self)
        buttons = QHBoxLayout()
        for seconds in WINDOWS_S:
            button = QPushButton(_window_text(seconds))
            button.setCheckable(True)
            button.setStyleSheet(theme.CHOICE_BUTTON)
            button.setEnabled(seconds != STORE_WINDOW_S or trends is not None)
            self.window_group.addButton(button, seconds)
            buttons.addWidget(button)
        self.window_group.idClicked.connect(self.show_window)
        buttons.addSpacing(16)
        for text, signal in (
            ("Trends…", self.trends_wanted),
            ("Alarm limits…", self.limits_wanted),
            ("Patient…", self.patient_wanted),
        ):
            link = QPushButton(text)
            link.clicked.connect(lambda _c=False, s=signal: s.emit(self.data.label))
            buttons.addWidget(link)
        buttons.addStretch(1)

        self.graphs = pg.GraphicsLayoutWidget()
        self.graphs.setBackground(theme.BACKGROUND)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._items: list[pg.PlotItem] = []
        self.limit_lines: dict[str, tuple[pg.InfiniteLine, pg.InfiniteLine]] = {}
        for row, (title, params, (lo, hi)) in enumerate(PLOTS):
            item = self.graphs.addPlot(
                row=row, col=0, title=title, axisItems={"bottom": pg.DateAxisItem()}
            )
            item.setYRange(lo, hi, padding=0)
            item.disableAutoRange()
            item.showGrid(x=True, y=True, alpha=0.2)
            item.setMouseEnabled(x=False, y=False)
            for param in params:
                pen = pg.mkPen(look.colour(param), width=2)
                self.curves[param] = item.plot(pen=pen, connect="finite")
                dashed = pg.mkPen(look.colour(param), width=1, style=Qt.PenStyle.DashLine)
                lines = (pg.InfiniteLine(angle=0, pen=dashed), pg.InfiniteLine(angle=0, pen=dashed))
                for line in lines:
                    item.addItem(line)
                    line.setVisible(False)
                self.limit_lines[param] = lines
            self._items.append(item)

        numerics = QGridLayout()
        self.values: dict[str, QLabel] = {}
        self.ranges: dict[str, QLabel] = {}
        for row, (name, unit, params, _digits) in enumerate(NUMERICS):
            colour = look.colour(params[0])
            caption = QLabel(f"{name} <span style='color:{theme.MUTED}'>{unit}</span>")
            caption.setStyleSheet(f"color:{colour}; font-size:14px;")
            value = QLabel("--")
            value.setAlignment(Qt.AlignmentFlag.AlignRight)
            value.setStyleSheet(f"color:{colour}; font-size:40px; font-weight:600;")
            limits = QLabel("")
            limits.setStyleSheet(f"color:{theme.MUTED}; font-size:13px;")
            numerics.addWidget(caption, row * 3, 0)
            numerics.addWidget(value, row * 3 + 1, 0)
            numerics.addWidget(limits, row * 3 + 2, 0)
            self.values[name], self.ranges[name] = value, limits
        self.alarms = QLabel("")
        self.alarms.setTextFormat(Qt.TextFormat.PlainText)  # device text is never markup
        self.alarms.setWordWrap(True)
        numerics.addWidget(QLabel("Alarms of this bed"), len(NUMERICS) * 3, 0)
        numerics.addWidget(self.alarms, len(NUMERICS) * 3 + 1, 0)
        numerics.setRowStretch(len(NUMERICS) * 3 + 2, 1)
        side = QWidget()
        side.setFixedWidth(260)
        side.setLayout(numerics)

        body = QHBoxLayout()
        body.addWidget(self.graphs, 1)
        body.addWidget(side)
        lay = QVBoxLayout(self)
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.patient, 1)
        head.addWidget(self.state)
        lay.addLayout(head)
        lay.addLayout(buttons)
        lay.addLayout(body, 1)
        self.window_group.button(self._window_s if self._window_s in WINDOWS_S else 600).setChecked(
            True
        )
        self.refresh(0.0, force=True)

    @property
    def window_s(self) -> int:
        """The time window shown, in seconds."""
        return self._window_s

    def show_window(self, seconds: int) -> None:
        """Show the last ``seconds`` (one of :data:`WINDOWS_S`)."""
        self._window_s = seconds
        self.window_group.button(seconds).setChecked(True)
        self._asked_at = -np.inf  # the 8 h window asks the store at once
        self._stored = None

    def refresh(self, now: float, force: bool = False) -> None:
        """Repaint from the bed's state (each frame while visible; cheap for four plots)."""
        if not (force or self.isVisible()):
            return
        data = self.data
        self.title.setText(f"{data.label} · {data.device_id or 'no device'}")
        self.patient.setText(data.patient or "no patient admitted")
        if data.limits is not self._painted_limits:
            self._paint_limits(data.limits)
        stale = data.age(now) is None or (data.age(now) or 0.0) > self._no_data_s
        self._paint_state(now, stale)
        self._paint_numerics(stale)
        self._paint_curves(now)

    def _paint_state(self, now: float, stale: bool) -> None:
        data = self.data
        alarm = most_urgent(a for a in data.alarms.values() if a.state in UNACKNOWLEDGED)
        alarm = alarm or most_urgent(data.alarms.values())
        if data.suspended:
            text, colour = f"MONITORING SUSPENDED · {data.suspended}", theme.WARN
        elif data.standby:
            text, colour = "STANDBY · discharged, not monitored", theme.MUTED
        elif stale and data.latest is not None:
            text, colour = f"NO DATA for {data.age(now) or 0:.0f} s", theme.WARN
        elif data.latest is None:
            text, colour = "waiting for data", theme.MUTED
        elif alarm is not None:
            technical = alarm.kind == AlarmKind.TECHNICAL
            text = f"{alarm.priority.mark} {alarm.message}"
            colour = theme.TEXT if technical else theme.ALARM_BG[alarm.priority]
        else:
            text, colour = "", theme.TEXT
        self.state.setText(text)
        _restyle(self.state, f"font-size:14px; font-weight:700; color:{colour};")
        lines = [
            f"{a.priority.mark} {a.message} ({a.state.value})"
            for a in sorted(data.alarms.values(), key=lambda a: a.sort_key())
        ]
        self.alarms.setText("\n".join(lines) or "none")

    def _paint_numerics(self, stale: bool) -> None:
        latest = self.data.latest
        values = latest.payload.numeric_fields() if latest is not None and not stale else {}
        alarmed = {a.parameter for a in self.data.alarms.values()}
        for name, _unit, params, digits in NUMERICS:
            numbers = [values.get(p) for p in params]
            shown = "/".join("--" if v is None else f"{v:.{digits}f}" for v in numbers)
            label = self.values[name]
            label.setText(shown)
            colour = theme.STALE if stale else self._look.colour(params[0])
            fill = "" if not (alarmed & set(params)) or stale else f"background:{colour};"
            text = theme.BACKGROUND if fill else colour
            _restyle(label, f"color:{text}; {fill} font-size:40px; font-weight:600;")

    def _paint_limits(self, bed_limits: BedLimits) -> None:
        """The limits in force as dashed lines, beside each number and in each plot's title
        (only when they change: a nurse, a transfer, a restart)."""
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
        for name, _unit, params, _digits in NUMERICS:
            text = f"limits {range_text(limits, *params)}" if limits else ""
            self.ranges[name].setText(f"{text} ({bed_limits.source})" if text else "")

    def _paint_curves(self, now: float) -> None:
        if self._window_s == STORE_WINDOW_S:
            self._ask_store(now)
            stored = self._stored
            for param, curve in self.curves.items():
                if stored is None:
                    curve.setData([], [])
                else:
                    curve.setData(stored.t.copy(), stored.mean[param].copy())
        else:
            for param, curve in self.curves.items():
                t, v = self.data.buffers[param].view()
                curve.setData(t.copy(), v.copy())  # pyqtgraph keeps references; the ring moves
        if now:
            for item in self._items:
                item.setXRange(now - self._window_s, now, padding=0)

    def _ask_store(self, now: float) -> None:
        """Query the trend store for 8 h on the worker, at most once a minute."""
        store, jobs = self._trends, self._jobs
        if store is None or jobs is None or now - self._asked_at < REQUERY_S:
            return
        self._asked_at = now
        bed = self.data.label

        def got(data: TrendData) -> None:
            if self._window_s == STORE_WINDOW_S:
                self._stored = data

        jobs.submit(lambda: store.query(bed, now - STORE_WINDOW_S, now), got, context=self)
