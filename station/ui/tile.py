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
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QFocusEvent,
    QKeyEvent,
    QMouseEvent,
    QPalette,
)
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QVBoxLayout,
)

from station.domain.alarms import UNACKNOWLEDGED, Alarm, AlarmKind, most_urgent
from station.domain.audio import BED_PAUSE_CHOICES_S
from station.domain.bed_limits import BedLimits, range_text
from station.domain.messages import Accepted
from station.ui import theme
from station.ui.beddata import BedData
from station.ui.steady_label import FlashingBanner, SteadyLabel
from station.ui.theme import ScreenLook
from station.ui.value_box import ValueBox

# Fixed ranges: auto-range re-layout costs ~3x per repaint (PLATFORM-NOTES).
MIN_SPAN_S = 10.0
VALUE_REFRESH_S = 0.5
"""Numbers on a tile change at most this often (alarms, staleness and flashing at once)."""
LOW_BATTERY = 20.0
"""Percent under which the tile says BATTERY LOW (the core's battery alarm has its own rule)."""
GAP_NOTICE_S = 600.0  # a seq gap is named on the tile this long (the curve keeps its break)
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


class BedTile(QFrame):
    """Widget of one bed. GUI thread only.

    Signals:
        opened(str): the bed label, when a user double-clicks the tile for the detail view.
        limits_wanted(str): the bed label, from the tile's context menu "Alarm limits…".
        move_wanted(str, int, int): an arrow key on the focused tile: (bed, columns, rows) to
            move the focus by (the grid moves it).

    Keyboard: the tile takes the focus (Tab, a click, the arrows); Enter opens the detail view,
    ``A`` acknowledges every alarm of the bed (through the action layer, as the menu does).
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
    move_wanted = Signal(str, int, int)

    def __init__(
        self, data: BedData, window_s: int, no_data_s: float, look: ScreenLook | None = None
    ) -> None:
        super().__init__()
        self.data = data
        self.look = look or ScreenLook()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._window_s = window_s
        self._no_data_s = no_data_s
        self._shown: tuple[object, ...] = ()
        self._device_text: str | None = None
        self._painted_latest: Accepted | None = None
        self._painted_limits: BedLimits | None = None
        self._values_at = -math.inf
        self._resets = 0
        self._pens_stale = False
        self._span = -1.0
        self.setObjectName("tile")
        # No explicit minimum size: it would override the layout's, and the grid would then
        # squeeze the numbers below what they need (a clipped "129" reads as "29").

        self.bed = QLabel(data.label)
        self.bed.setStyleSheet("font-size:16px; font-weight:700;")
        self.device = QLabel("no device")
        self.device.setTextFormat(Qt.TextFormat.PlainText)
        self.device.setStyleSheet(f"color:{theme.MUTED}; font-size:11px;")
        self.age = SteadyLabel(
            "",
            font="font-size:11px;",
            colour=theme.MUTED,
            align=Qt.AlignmentFlag.AlignRight,
        )
        # The device line and the patient line never ask for more room than they had: a longer
        # text (a battery going low, a patient's name) widened every tile of the grid past its
        # viewport, and a scroll bar coming and going laid out all of them again (the ward
        # stalled for up to a second, `station bench --scenario restart-backlog`). The device
        # line keeps room for its first part, the battery (apply_look); the rest may be cut
        # on a narrow tile. The patient line is cut there (the detail view has it whole).
        head = QHBoxLayout()
        head.addWidget(self.bed)
        head.addWidget(self.device)
        head.addWidget(self.age, 1)
        self.patient = QLabel("")
        self.patient.setStyleSheet("font-size:12px;")
        self.patient.setVisible(False)
        self.patient.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.banner = FlashingBanner(font="font-size:13px; font-weight:700;", height=22)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground(theme.TILE)
        self.plots.setMinimumHeight(40)  # the curves give way first, never the numbers
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
            pen = pg.mkPen(self.look.colour(param), width=1.6)
            self.curves[param] = item.plot(pen=pen, connect="finite")
            self._plot_items.append(item)

        look = self.look
        self.hr = ValueBox("HR", "bpm", "heartrate", 34, look, "888")
        self.spo2 = ValueBox("SpO2", "%", "oxygen", 34, look, "100")
        self.nibp = ValueBox("NIBP", "mmHg", "systolic", 20, look, "888/888")
        self.temp = ValueBox("Temp", "°C", "temperature", 20, look, "88.8")
        values = QGridLayout()
        values.setContentsMargins(0, 0, 0, 0)
        values.setSpacing(2)
        values.addWidget(self.hr, 0, 0)
        values.addWidget(self.spo2, 0, 1)
        values.addWidget(self.nibp, 1, 0)
        values.addWidget(self.temp, 1, 1)

        # Curves across the tile's whole width, the numbers under them in two columns: a
        # column of numbers beside the curves left them a quarter of the tile.
        body = QVBoxLayout()
        body.setSpacing(2)
        body.addWidget(self.plots, 1)
        body.addLayout(values)
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
        self.apply_look(self.look)

    def apply_look(self, look: ScreenLook) -> None:
        """Fonts and colours for ``look`` (wall mode, font scale, palette), applied at once;
        rare, so the one time the tile lays itself out again."""
        self.look = look
        self.bed.setStyleSheet(self._bed_style(self.hasFocus()))
        self.device.setStyleSheet(f"color:{theme.MUTED}; font-size:{look.px(11, 1.2)}px;")
        self.device.ensurePolished()
        battery = self.device.fontMetrics().horizontalAdvance("BATTERY LOW 19%")
        self.device.setMinimumWidth(battery + 4)
        self.age.set_font(f"font-size:{look.px(11, 1.2)}px;")
        self.patient.setStyleSheet(f"font-size:{look.px(12, 1.2)}px;")
        self.banner.set_font(
            f"font-size:{look.px(13, 1.3)}px; font-weight:700;", height=look.px(13, 1.3) + 9
        )
        self._device_text = None  # written again in the new look
        for box in (self.hr, self.spo2, self.nibp, self.temp):
            box.apply_look(look)
        for param, curve in self.curves.items():
            colour = pg.mkColor(look.colour(param))
            colour.setAlpha(90 if self._pens_stale else 255)
            curve.setPen(pg.mkPen(colour, width=1.6))
        self._shown = ()  # every part painted again in the next frame, in the new look

    def _bed_style(self, focused: bool) -> str:
        """The bed's name; inverted while the tile has the keyboard focus, so a nurse using
        the keyboard sees where she is."""
        style = f"font-size:{self.look.px(16, 1.3)}px; font-weight:700; padding:0 3px;"
        if focused:
            style += f" background:{theme.TEXT}; color:{theme.BACKGROUND}; border-radius:3px;"
        return style

    def focusInEvent(self, event: QFocusEvent) -> None:
        """Show which tile the keyboard is on."""
        self.bed.setStyleSheet(self._bed_style(True))
        super().focusInEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        """The keyboard left the tile."""
        self.bed.setStyleSheet(self._bed_style(False))
        super().focusOutEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter: the detail view; A: acknowledge the bed's alarms; arrows: the next tile."""
        key = Qt.Key(event.key())
        moves = {
            Qt.Key.Key_Left: (-1, 0),
            Qt.Key.Key_Right: (1, 0),
            Qt.Key.Key_Up: (0, -1),
            Qt.Key.Key_Down: (0, 1),
        }
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.opened.emit(self.data.label)
        elif key == Qt.Key.Key_A:
            self.acknowledge_bed_wanted.emit(self.data.label)
        elif key in moves:
            self.move_wanted.emit(self.data.label, *moves[key])
        else:
            super().keyPressEvent(event)
            return
        event.accept()

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
                colour = pg.mkColor(self.look.colour(param))
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
        battery = data.latest.payload.battery if data.latest is not None else None
        low = battery is not None and battery < LOW_BATTERY
        # Wall mode: the bed, its patient and its numbers (and a low battery); the rest is in
        # the detail view rather than cut off at the tile's edge.
        # The battery first: the part of the line that is never cut (see __init__).
        parts = []
        if battery is not None and (low or not self.look.wall):
            parts.append(f"{'BATTERY LOW ' if low else 'batt '}{battery:.0f}%")
        if not self.look.wall:
            parts.append(data.device_id or "no device")
        if data.limits.own and not self.look.wall:
            parts.append(f"limits: {data.limits.source}")
        device = " · ".join(parts)
        if device != self._device_text:  # every Qt call costs a GIL hand-over: only on change
            self._device_text = device
            self.device.setText(device)
        age = data.age(now)
        if age is None:
            text = "no data yet"  # short: the tile's header shares one line
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
