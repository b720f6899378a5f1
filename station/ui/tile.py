"""One bed on the ward screen: label, device, latest values with units, data age, live curves,
and the bed's most urgent alarm as a banner with its mark.

Painted only from :meth:`BedTile.refresh`, which the main window's render timer calls; data
arrival never touches widgets. A device that goes quiet shows ``NO DATA`` and dashes, never its
last values as if they were live.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QContextMenuEvent, QMouseEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from station.domain.alarms import UNACKNOWLEDGED, Alarm, AlarmKind, Priority, most_urgent
from station.domain.messages import Accepted
from station.ui import theme
from station.ui.beddata import BedData

# Fixed ranges: auto-range re-layout costs ~3x per repaint (PLATFORM-NOTES).
MIN_SPAN_S = 10.0
VALUE_REFRESH_S = 0.5
"""Numbers on a tile change at most this often (alarms, staleness and flashing at once)."""
GAP_NOTICE_S = 600.0  # a seq gap is named on the tile this long (the curve keeps its break)
CURVE_RANGES = {"heartrate": (30.0, 180.0), "oxygen": (75.0, 101.0)}


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "--"
    return f"{value:.{digits}f}"


class ValueBox(QWidget):
    """A parameter name, its number and its unit, as on a monitor."""

    def __init__(self, name: str, unit: str, colour: str, size: int) -> None:
        super().__init__()
        self._colour = colour
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.setSpacing(0)
        head = QLabel(f"{name} <span style='color:{theme.MUTED}'>{unit}</span>")
        head.setStyleSheet(f"color:{colour}; font-size:11px;")
        self.value = QLabel("--")
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._size = size
        self._text: str | None = None
        self._style: tuple[bool, bool] | None = None
        lay.addWidget(head)
        lay.addWidget(self.value)
        self.show_value("--", stale=True, alarm=False)

    def show_value(self, text: str, *, stale: bool, alarm: bool) -> None:
        """Set the number; stale values are grey dashes, alarmed ones inverted. Only touches
        the widget when something changed, and the style sheet only when the look changed: a
        style sheet change re-polishes the label (measured the costliest line of a frame)."""
        if text != self._text:
            self._text = text
            self.value.setText(text)
        if self._style == (stale, alarm):
            return
        self._style = (stale, alarm)
        colour = theme.STALE if stale else self._colour
        style = f"color:{colour}; font-size:{self._size}px; font-weight:600;"
        if alarm and not stale:
            style = (
                f"color:{theme.BACKGROUND}; background:{self._colour};"
                f" font-size:{self._size}px; font-weight:700; padding:0 3px;"
            )
        self.value.setStyleSheet(style)


class BedTile(QFrame):
    """Widget of one bed. GUI thread only.

    Signals:
        opened(str): the bed label, when a user double-clicks the tile for the detail view.
        limits_wanted(str): the bed label, from the tile's context menu "Alarm limits…".
    """

    opened = Signal(str)
    limits_wanted = Signal(str)
    trends_wanted = Signal(str)
    patient_wanted = Signal(str)
    consent_wanted = Signal(str)

    def __init__(self, data: BedData, window_s: int, no_data_s: float) -> None:
        super().__init__()
        self.data = data
        self._window_s = window_s
        self._no_data_s = no_data_s
        self._shown: tuple[object, ...] = ()
        self._border: tuple[str, int] | None = None
        self._banner_style = ""
        self._age_text = ""
        self._device_text = ""
        self._painted_latest: Accepted | None = None
        self._values_at = -math.inf
        self._resets = 0
        self._pens_stale = False
        self.setObjectName("tile")
        self.setMinimumSize(250, 190)
        self.setFrameShape(QFrame.Shape.NoFrame)

        self.bed = QLabel(data.label)
        self.bed.setStyleSheet("font-size:16px; font-weight:700;")
        self.device = QLabel("no device")
        self.device.setStyleSheet(f"color:{theme.MUTED}; font-size:11px;")
        self.age = QLabel("")
        self.age.setStyleSheet(f"color:{theme.MUTED}; font-size:11px;")
        self.age.setAlignment(Qt.AlignmentFlag.AlignRight)
        head = QHBoxLayout()
        head.addWidget(self.bed)
        head.addWidget(self.device, 1)
        head.addWidget(self.age)
        self.patient = QLabel("")
        self.patient.setStyleSheet("font-size:12px;")
        self.patient.setVisible(False)

        self.banner = QLabel("")
        self.banner.setMinimumHeight(22)
        self.banner.setStyleSheet("font-size:13px; font-weight:700; padding:1px 4px;")

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground(theme.TILE)
        self.plots.ci.setContentsMargins(0, 0, 0, 0)
        self.plots.ci.setSpacing(2)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._plot_items: list[pg.PlotItem] = []
        for row, (param, (lo, hi)) in enumerate(CURVE_RANGES.items()):
            item = self.plots.addPlot(row=row, col=0)
            for axis in ("left", "bottom"):
                item.hideAxis(axis)
            item.setMouseEnabled(x=False, y=False)
            item.setMenuEnabled(False)
            item.hideButtons()
            item.setYRange(lo, hi, padding=0)
            item.disableAutoRange()
            pen = pg.mkPen(theme.PARAM_COLOURS[param], width=1.6)
            self.curves[param] = item.plot(pen=pen, connect="finite")
            self._plot_items.append(item)

        self.hr = ValueBox("HR", "bpm", theme.PARAM_COLOURS["heartrate"], 34)
        self.spo2 = ValueBox("SpO2", "%", theme.PARAM_COLOURS["oxygen"], 34)
        self.nibp = ValueBox("NIBP", "mmHg", theme.PARAM_COLOURS["systolic"], 18)
        self.temp = ValueBox("Temp", "°C", theme.PARAM_COLOURS["temperature"], 18)
        values_host = QWidget()
        values_host.setFixedWidth(118)
        values = QGridLayout(values_host)
        values.setContentsMargins(0, 0, 0, 0)
        values.setSpacing(2)
        values.addWidget(self.hr, 0, 0)
        values.addWidget(self.spo2, 1, 0)
        values.addWidget(self.nibp, 2, 0)
        values.addWidget(self.temp, 3, 0)

        body = QHBoxLayout()
        body.addWidget(self.plots, 1)
        body.addWidget(values_host)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 6)
        outer.setSpacing(3)
        outer.addLayout(head)
        outer.addWidget(self.patient)
        outer.addWidget(self.banner)
        outer.addLayout(body, 1)
        self._set_border(theme.TILE_BORDER)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """Open the patient's detail view."""
        self.opened.emit(self.data.label)
        event.accept()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """Right-click: the bed's actions."""
        menu = QMenu(self)
        menu.addAction("Detail view", lambda: self.opened.emit(self.data.label))
        menu.addAction("Trends (72 h)…", lambda: self.trends_wanted.emit(self.data.label))
        menu.addAction("Alarm limits…", lambda: self.limits_wanted.emit(self.data.label))
        menu.addSeparator()
        menu.addAction("Patient (admit, transfer, discharge)…", self._emit_patient)
        menu.addAction("Consent…", lambda: self.consent_wanted.emit(self.data.label))
        menu.exec(event.globalPos())

    def _emit_patient(self) -> None:
        self.patient_wanted.emit(self.data.label)

    def show_patient(self) -> None:
        """Show who is in the bed and what they do not allow (after an admission change)."""
        data = self.data
        text = data.patient
        if data.notes:
            text += f" <span style='color:{theme.WARN}'>· {data.notes}</span>"
        self.patient.setText(text)
        self.patient.setVisible(bool(text))
        self._shown = ()

    def _set_banner_style(self, style: str) -> None:
        if style != self._banner_style:
            self._banner_style = style
            self.banner.setStyleSheet(style)

    def _set_border(self, colour: str, width: int = 2) -> None:
        # The tile's own style sheet cascades to every child widget: set it only on change.
        if self._border == (colour, width):
            return
        self._border = (colour, width)
        self.setStyleSheet(
            f"QFrame#tile {{ background:{theme.TILE}; border:{width}px solid {colour};"
            " border-radius:6px; }"
        )

    def is_stale(self, now: float) -> bool:
        """True when the device has been silent longer than the no-data limit."""
        age = self.data.age(now)
        return age is None or age > self._no_data_s

    def refresh(self, now: float, curves: bool = True) -> None:
        """Repaint what changed: curves when new data came (and ``curves`` allows it this
        frame), labels and flashing every frame."""
        data = self.data
        stale = self.is_stale(now)
        if data.dirty and curves:
            for param, curve in self.curves.items():
                t, v = data.buffers[param].view()
                # Copies: pyqtgraph keeps the arrays it is given and paints later, while the
                # ring buffer overwrites its oldest slot on the next append.
                curve.setData(t.copy(), v.copy())
            # Until the window has filled, span the data there is (at least MIN_SPAN_S) so a
            # new patient's first minute is readable rather than a sliver at the right edge.
            first = data.buffers["heartrate"].first_time()
            start = now - self._window_s
            if first is not None:
                start = max(start, min(first, now - MIN_SPAN_S))
            for item in self._plot_items:
                item.setXRange(start, now, padding=0)
            data.dirty = False
            self._shown = ()
        # The banner shows what still needs a nurse first: an unacknowledged alarm, even if an
        # acknowledged one of higher priority is present.
        alarm = most_urgent(
            a for a in data.alarms.values() if a.state in UNACKNOWLEDGED
        ) or most_urgent(data.alarms.values())
        flash_on = True
        if alarm is not None and alarm.state in UNACKNOWLEDGED:
            hz = theme.FLASH_HZ[alarm.priority]
            flash_on = hz == 0 or int(now * hz * 2) % 2 == 0
        self._paint_header(now, stale)
        # New numbers at most every VALUE_REFRESH_S (a monitor's numerics update about once a
        # second; a device sending 20 a second must not cost 20 label updates a second); any
        # change of alarm, staleness or flashing is painted at once, and so are a blank bed (a
        # new occupant) and its first value.
        latest = self._painted_latest
        due = now - self._values_at >= VALUE_REFRESH_S or now < self._values_at
        if due or latest is None or data.latest is None or data.resets != self._resets:
            latest, self._resets = data.latest, data.resets
        key = (stale, alarm, flash_on, latest, len(data.alarms), data.standby)
        if key == self._shown:
            return
        self._shown = key
        if latest is not self._painted_latest:
            self._painted_latest, self._values_at = latest, now
        self._paint_values(latest, stale, {a.parameter for a in data.alarms.values()})
        self._paint_alarm(alarm, stale, flash_on)
        if stale != self._pens_stale:  # a new pen redraws the curve: only when staleness flips
            self._pens_stale = stale
            for param, curve in self.curves.items():
                colour = pg.mkColor(theme.PARAM_COLOURS[param])
                colour.setAlpha(90 if stale else 255)
                curve.setPen(pg.mkPen(colour, width=1.6))

    def _paint_header(self, now: float, stale: bool) -> None:
        data = self.data
        device = data.device_id or "no device"
        if device != self._device_text:  # every Qt call costs a GIL hand-over: only on change
            self._device_text = device
            self.device.setText(device)
        age = data.age(now)
        if age is None:
            text = "waiting for data"
        elif stale:
            text = f"last data {age:.0f} s ago"
        else:
            text = f"{age:.0f} s"
        gap = data.gap_at is not None and now - data.gap_at < GAP_NOTICE_S
        if gap:
            text = f"DATA GAP: {data.missing} lost · {text}"
        if text != self._age_text:
            if gap != self._age_text.startswith("DATA GAP"):
                colour, weight = (theme.WARN, 700) if gap else (theme.MUTED, 400)
                self.age.setStyleSheet(f"color:{colour}; font-size:11px; font-weight:{weight};")
            self._age_text = text
            self.age.setText(text)

    def _paint_values(self, latest: Accepted | None, stale: bool, alarm_params: set[str]) -> None:
        p = latest.payload if latest is not None else None
        hr = p.heartrate if p and not stale else None
        spo2 = p.oxygen if p and not stale else None
        bp = p.bloodpressure if p and not stale else None
        temp = p.temperature if p and not stale else None
        self.hr.show_value(_fmt(hr), stale=hr is None, alarm="heartrate" in alarm_params)
        self.spo2.show_value(_fmt(spo2), stale=spo2 is None, alarm="oxygen" in alarm_params)
        nibp = "--/--" if bp is None else f"{bp.systolic:.0f}/{bp.diastolic:.0f}"
        bp_alarm = bool({"systolic", "diastolic"} & alarm_params)
        self.nibp.show_value(nibp, stale=bp is None, alarm=bp_alarm)
        self.temp.show_value(_fmt(temp, 1), stale=temp is None, alarm="temperature" in alarm_params)

    def _paint_alarm(self, alarm: Alarm | None, stale: bool, flash_on: bool) -> None:
        if alarm is not None:
            technical = alarm.kind == AlarmKind.TECHNICAL
            bg = theme.TECHNICAL_BG if technical else theme.ALARM_BG[alarm.priority]
            fg = "#ffffff" if technical else theme.ALARM_FG[alarm.priority]
            more = len(self.data.alarms) - 1
            acked = {"acknowledged": " (ack)", "latched": " (latched)"}.get(alarm.state.value, "")
            extra = f"  +{more}" if more > 0 else ""
            self.banner.setText(f"{alarm.priority.mark} {alarm.message}{acked}{extra}")
            if flash_on:
                self._set_banner_style(
                    f"background:{bg}; color:{fg}; font-size:13px; font-weight:700;"
                    " padding:1px 4px; border-radius:3px;"
                )
            else:
                self._set_banner_style(
                    f"background:{theme.TILE}; color:{bg}; font-size:13px; font-weight:700;"
                    f" padding:1px 4px; border:1px solid {bg}; border-radius:3px;"
                )
            self._set_border(bg, 3 if alarm.priority == Priority.HIGH else 2)
        elif self.data.standby:
            self.banner.setText("STANDBY · discharged, not monitored")
            self._set_banner_style(
                f"background:{theme.TILE}; color:{theme.MUTED}; font-size:13px;"
                f" font-weight:700; padding:1px 4px; border:1px solid {theme.MUTED};"
                " border-radius:3px;"
            )
            self._set_border(theme.TILE_BORDER)
        elif stale and self.data.latest is not None:
            self.banner.setText("NO DATA")
            self._set_banner_style(
                f"background:{theme.TECHNICAL_BG}; color:#ffffff; font-size:13px;"
                " font-weight:700; padding:1px 4px; border-radius:3px;"
            )
            self._set_border(theme.TECHNICAL_BG)
        else:
            self.banner.setText("")
            self._set_banner_style("padding:1px 4px;")
            self._set_border(theme.TILE_BORDER)
