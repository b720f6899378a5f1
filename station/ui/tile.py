"""One bed on the ward screen: label, device, latest values with units, data age, live curves,
and the bed's most urgent alarm as a banner with its mark.

Painted only from :meth:`BedTile.refresh`, which the main window's render timer calls; data
arrival never touches widgets. A device that goes quiet shows ``NO DATA`` and dashes, never its
last values as if they were live.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QContextMenuEvent, QMouseEvent, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from station.domain.alarms import UNACKNOWLEDGED, Alarm, AlarmKind, most_urgent
from station.domain.audio import BED_PAUSE_CHOICES_S
from station.domain.bed_limits import BedLimits, range_text
from station.domain.messages import Accepted
from station.ui import theme
from station.ui.beddata import BedData
from station.ui.steady_label import FlashingBanner, SteadyLabel

# Fixed ranges: auto-range re-layout costs ~3x per repaint (PLATFORM-NOTES).
MIN_SPAN_S = 10.0
VALUE_REFRESH_S = 0.5
"""Numbers on a tile change at most this often (alarms, staleness and flashing at once)."""
GAP_NOTICE_S = 600.0  # a seq gap is named on the tile this long (the curve keeps its break)
VALUES_PX = 118  # the width of the numbers' column
BORDER_PX = 3  # one width for every state: a width change would re-lay out the tile
CURVE_RANGES = {"heartrate": (30.0, 180.0), "oxygen": (75.0, 101.0)}


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "--"
    return f"{value:.{digits}f}"


SUSPEND_REASONS = ("procedure", "off unit", "transport")
"""Why a nurse may suspend a bed's monitoring from its tile."""


def pause_text(seconds: int) -> str:
    """A countdown as the ward reads it: ``1:05``."""
    minutes, rest = divmod(max(0, seconds), 60)
    return f"{minutes}:{rest:02d}"


class ValueBox(QWidget):
    """A parameter name, its number and its unit, as on a monitor."""

    def __init__(self, name: str, unit: str, colour: str, size: int) -> None:
        super().__init__()
        self._colour = colour
        self._caption = f"{name} <span style='color:{theme.MUTED}'>{unit}</span>"
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.setSpacing(0)
        self.head = head = QLabel(self._caption)
        head.setStyleSheet(f"color:{colour}; font-size:11px;")
        self.value = SteadyLabel(
            "--",
            font=f"font-size:{size}px; font-weight:600;",
            colour=theme.STALE,
            width=VALUES_PX - 8,  # the column's width less this box's margins
            align=Qt.AlignmentFlag.AlignRight,
        )
        lay.addWidget(head)
        lay.addWidget(self.value)
        self.show_value("--", stale=True, alarm=False)

    def show_limits(self, text: str, own: bool, full: str = "") -> None:
        """The alarm range in force beside the name (``50–120``), brighter when set for this
        bed rather than the ward's; ``full`` for the tooltip where the tile shows a part."""
        colour = theme.TEXT if own else theme.MUTED
        self.head.setText(f"{self._caption} <span style='color:{colour}'>{text}</span>")
        whose = "this bed's" if own else "the ward's"
        self.head.setToolTip(f"Alarm limits {full or text} ({whose})")

    def show_value(self, text: str, *, stale: bool, alarm: bool) -> None:
        """Set the number; stale values are grey dashes, alarmed ones inverted (the number on
        the parameter's colour). Each repaints only when it changed."""
        self.value.setText(text)
        if alarm and not stale:
            self.value.set_look(theme.BACKGROUND, fill=self._colour)
        else:
            self.value.set_look(theme.STALE if stale else self._colour)


class BedTile(QFrame):
    """Widget of one bed. GUI thread only.

    Signals:
        opened(str): the bed label, when a user double-clicks the tile for the detail view.
        limits_wanted(str): the bed label, from the tile's context menu "Alarm limits…".
    """

    opened = Signal(str)
    limits_wanted = Signal(str)
    trends_wanted = Signal(str)
    report_wanted = Signal(str)
    patient_wanted = Signal(str)
    consent_wanted = Signal(str)
    acknowledge_bed_wanted = Signal(str)
    audio_pause_wanted = Signal(str, float)
    audio_resume_wanted = Signal(str)
    monitoring_wanted = Signal(str, str)

    def __init__(self, data: BedData, window_s: int, no_data_s: float) -> None:
        super().__init__()
        self.data = data
        self._window_s = window_s
        self._no_data_s = no_data_s
        self._shown: tuple[object, ...] = ()
        self._device_text = ""
        self._painted_latest: Accepted | None = None
        self._painted_limits: BedLimits | None = None
        self._values_at = -math.inf
        self._resets = 0
        self._pens_stale = False
        self._span = -1.0
        self.setObjectName("tile")
        self.setMinimumSize(250, 190)

        self.bed = QLabel(data.label)
        self.bed.setStyleSheet("font-size:16px; font-weight:700;")
        self.device = QLabel("no device")
        self.device.setStyleSheet(f"color:{theme.MUTED}; font-size:11px;")
        self.age = SteadyLabel(
            "",
            font="font-size:11px;",
            colour=theme.MUTED,
            align=Qt.AlignmentFlag.AlignRight,
        )
        head = QHBoxLayout()
        head.addWidget(self.bed)
        head.addWidget(self.device, 1)
        head.addWidget(self.age, 1)
        self.patient = QLabel("")
        self.patient.setStyleSheet("font-size:12px;")
        self.patient.setVisible(False)

        self.banner = FlashingBanner(font="font-size:13px; font-weight:700;", height=22)

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
        values_host.setFixedWidth(VALUES_PX)
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
        # Background and frame painted by Qt from the palette (no style sheet: one on the tile
        # would cascade to every child and re-lay out the tile on each alarm change).
        self.setAutoFillBackground(True)
        self.setFrameShape(QFrame.Shape.Box)
        self.setFrameShadow(QFrame.Shadow.Plain)
        self.setLineWidth(BORDER_PX)
        self.border = ""
        self._set_border(theme.TILE_BORDER)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """Open the patient's detail view."""
        self.opened.emit(self.data.label)
        event.accept()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """Right-click: the bed's actions."""
        menu = QMenu(self)
        waiting = sum(a.state in UNACKNOWLEDGED for a in self.data.alarms.values())
        ack = menu.addAction(
            f"Acknowledge all alarms of this bed ({waiting})",
            lambda: self.acknowledge_bed_wanted.emit(self.data.label),
        )
        ack.setEnabled(waiting > 0)
        bed = self.data.label
        if self.data.audio_paused_s is not None:
            menu.addAction(
                f"Resume alarm audio of this bed ({pause_text(self.data.audio_paused_s)} left)",
                lambda: self.audio_resume_wanted.emit(bed),
            )
        else:
            pause = menu.addMenu("Pause alarm audio of this bed")
            for seconds in BED_PAUSE_CHOICES_S:
                pause.addAction(f"{seconds / 60:.0f} min", self._pause_for(seconds))
        menu.addSeparator()
        menu.addAction("Detail view", lambda: self.opened.emit(self.data.label))
        menu.addAction("Trends (72 h)…", lambda: self.trends_wanted.emit(self.data.label))
        menu.addAction("Shift report…", lambda: self.report_wanted.emit(self.data.label))
        menu.addAction("Alarm limits…", lambda: self.limits_wanted.emit(self.data.label))
        menu.addSeparator()
        menu.addAction("Patient (admit, transfer, discharge)…", self._emit_patient)
        menu.addAction("Consent…", lambda: self.consent_wanted.emit(self.data.label))
        if self.data.suspended:
            menu.addAction("Resume monitoring", lambda: self.monitoring_wanted.emit(bed, ""))
        elif not self.data.standby:
            suspend = menu.addMenu("Suspend monitoring (patient off the monitor)")
            for reason in SUSPEND_REASONS:
                suspend.addAction(reason, self._suspend_for(reason))
        menu.exec(event.globalPos())

    def _pause_for(self, seconds: float) -> Callable[[], None]:
        """The menu entry's action: no argument, so Qt passes none (not ``checked``)."""
        return lambda: self.audio_pause_wanted.emit(self.data.label, seconds)

    def _suspend_for(self, reason: str) -> Callable[[], None]:
        return lambda: self.monitoring_wanted.emit(self.data.label, reason)

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

    def _set_border(self, colour: str) -> None:
        """The tile's frame takes the colour of its most urgent alarm: a palette change,
        painted by Qt; the frame's width never changes, so the tile is never re-laid out."""
        if colour == self.border:
            return
        self.border = colour
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, QColor(theme.TILE))
        palette.setColor(QPalette.ColorRole.WindowText, QColor(colour))
        self.setPalette(palette)

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
                # Seconds before now, so the x range stays put while the curve moves (a range
                # change re-lays out the plot and its hidden axes: measured the costliest part
                # of a redraw). New arrays: pyqtgraph keeps what it is given and paints later,
                # while the ring buffer overwrites its oldest slot on the next append.
                curve.setData(t - now, v.copy())
            # Until the window has filled, span the data there is (at least MIN_SPAN_S, in
            # steps of it) so a new patient's first minute is readable rather than a sliver at
            # the right edge.
            first = data.buffers["heartrate"].first_time()
            span = float(self._window_s)
            if first is not None:
                steps = max(1, math.ceil((now - first) / MIN_SPAN_S))
                span = min(span, steps * MIN_SPAN_S)
            if span != self._span:
                self._span = span
                for item in self._plot_items:
                    item.setXRange(-span, 0, padding=0)
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
        if data.limits is not self._painted_limits:
            self._paint_limits(data.limits)
        self._paint_header(now, stale)
        # New numbers at most every VALUE_REFRESH_S (a monitor's numerics update about once a
        # second; a device sending 20 a second must not cost 20 label updates a second); any
        # change of alarm, staleness or flashing is painted at once, and so are a blank bed (a
        # new occupant) and its first value.
        latest = self._painted_latest
        due = now - self._values_at >= VALUE_REFRESH_S or now < self._values_at
        if due or latest is None or data.latest is None or data.resets != self._resets:
            latest, self._resets = data.latest, data.resets
        paused = data.audio_paused_s
        key = (
            stale,
            alarm,
            flash_on,
            latest,
            len(data.alarms),
            data.standby,
            data.suspended,
            paused,
        )
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

    def _paint_limits(self, bed_limits: BedLimits) -> None:
        """Each value's alarm range under its name; a change of limits is rare (a nurse, a
        transfer, a restart), so this runs only then."""
        self._painted_limits = bed_limits
        limits, own = bed_limits.limits, bed_limits.own
        self.hr.show_limits(range_text(limits, "heartrate"), own)
        self.spo2.show_limits(range_text(limits, "oxygen"), own)
        nibp = range_text(limits, "systolic", "diastolic")
        self.nibp.show_limits(range_text(limits, "systolic"), own, f"{nibp} (systolic/diastolic)")
        self.temp.show_limits(range_text(limits, "temperature"), own)

    def _paint_header(self, now: float, stale: bool) -> None:
        data = self.data
        device = data.device_id or "no device"
        if data.limits.own:
            device += f" · limits: {data.limits.source}"
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
        self.age.set_look(theme.WARN if gap else theme.MUTED)
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
            paused = self.data.audio_paused_s
            quiet = f"  · AUDIO PAUSED {pause_text(paused)}" if paused is not None else ""
            text = f"{alarm.priority.mark} {alarm.message}{acked}{extra}{quiet}"
            self.banner.show_text(text, (fg, bg, None), (bg, None, bg), flash_on)
            self._set_border(bg)
        elif self.data.suspended:
            look = (theme.WARN, None, theme.WARN)
            self.banner.show_text(f"MONITORING SUSPENDED · {self.data.suspended}", look)
            self._set_border(theme.TILE_BORDER)
        elif self.data.standby:
            look = (theme.MUTED, None, theme.MUTED)
            self.banner.show_text("STANDBY · discharged, not monitored", look)
            self._set_border(theme.TILE_BORDER)
        elif stale and self.data.latest is not None:
            self.banner.show_text("NO DATA", ("#ffffff", theme.TECHNICAL_BG, None))
            self._set_border(theme.TECHNICAL_BG)
        elif self.data.audio_paused_s is not None:
            text = f"AUDIO PAUSED {pause_text(self.data.audio_paused_s)}"
            self.banner.show_text(text, (theme.WARN, None, theme.WARN))
            self._set_border(theme.TILE_BORDER)
        else:
            self.banner.show_text("", (theme.TEXT, None, None))
            self._set_border(theme.TILE_BORDER)
