"""The ward's alarms at the top of every secondary window, with acknowledge.

A nurse in a bed's limits, detail or trend window, or an admin in the users or settings dialog,
may cover the ward screen; an alarm of another bed must still reach them and be acknowledged
there (issue 15: nothing blocks an acknowledgement). Each such window gets one
:class:`AlarmStrip`: the most urgent unacknowledged alarm in its priority's colour, flashing at
its priority's rate, how many more wait, and an Acknowledge button for the alarm shown. A new
high-priority alarm also asks the window system for attention (``QApplication.alert``).

The strips show what the main window's alarm list holds (the engine's snapshots), and an
acknowledgement goes the list's way (the action layer's role check, then the core), so a strip
never shows an acknowledgement the engine did not make. They repaint with the window's frames,
only while visible. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable

import shiboken6
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QApplication, QBoxLayout, QHBoxLayout, QPushButton, QWidget

from station.domain.alarms import UNACKNOWLEDGED, Alarm, AlarmKind, Priority
from station.ui import theme
from station.ui.steady_label import FlashingBanner

QUIET_TEXT = "No unacknowledged alarms on the ward"


def strip_text(alarm: Alarm, waiting: int) -> str:
    """The strip's line: mark, bed, message and how many more wait."""
    where = alarm.bed or "station"
    more = f"   +{waiting} more" if waiting else ""
    return f"{alarm.priority.mark} {where} · {alarm.message}{more}"


class AlarmStrip(QWidget):
    """One line of the ward's alarms in a secondary window. GUI thread only.

    Signals:
        acknowledge_requested(str): the alarm id shown when Acknowledge was pressed.
    """

    acknowledge_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alarmStrip")
        self.banner = FlashingBanner(font="font-size:14px; font-weight:700;", height=28)
        self.ack = QPushButton("Acknowledge")
        self.ack.setEnabled(False)
        self.ack.setToolTip("Acknowledge the alarm shown here")
        self.ack.clicked.connect(self._acknowledge)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 4)
        lay.addWidget(self.banner, 1)
        lay.addWidget(self.ack)
        self.alarm_id: str | None = None
        self._announced: set[str] = set()
        self._first = True
        self.banner.show_text(QUIET_TEXT, (theme.MUTED, None, None))

    def show_alarms(self, alarms: list[Alarm], now: float) -> None:
        """Show the most urgent unacknowledged of ``alarms`` (in display order, most urgent
        first) at ``now`` (wall seconds: the flash phase)."""
        waiting = [a for a in alarms if a.state in UNACKNOWLEDGED]
        self._announce(waiting)
        if not waiting:
            self.alarm_id = None
            self.ack.setEnabled(False)
            self.banner.show_text(QUIET_TEXT, (theme.MUTED, None, None))
            return
        alarm = waiting[0]
        technical = alarm.kind == AlarmKind.TECHNICAL
        bg = theme.TECHNICAL_BG if technical else theme.ALARM_BG[alarm.priority]
        fg = "#ffffff" if technical else theme.ALARM_FG[alarm.priority]
        hz = theme.FLASH_HZ[alarm.priority]
        lit = hz == 0 or int(now * hz * 2) % 2 == 0
        self.banner.show_text(
            strip_text(alarm, len(waiting) - 1), (fg, bg, None), (bg, None, bg), lit
        )
        self.alarm_id = alarm.alarm_id
        self.ack.setEnabled(True)

    def _announce(self, waiting: list[Alarm]) -> None:
        """Ask for the window system's attention once for each new high-priority alarm (not
        for those already open when the window opened: the strip shows them)."""
        high = {a.alarm_id for a in waiting if a.priority == Priority.HIGH}
        fresh = high - self._announced
        if fresh and not self._first and self.isVisible():
            QApplication.alert(self.window())
        self._announced = high
        self._first = False

    def _acknowledge(self) -> None:
        if self.alarm_id is not None:
            self.acknowledge_requested.emit(self.alarm_id)


class AlarmStrips:
    """Puts a strip into secondary windows and feeds the visible ones at each frame.

    Args:
        alarms: the ward's open alarms in display order (the main window's alarm list).
        acknowledge: where a strip's acknowledgement goes (alarm id), as the list's does.
    """

    def __init__(
        self, alarms: Callable[[], list[Alarm]], acknowledge: Callable[[str], None]
    ) -> None:
        self._alarms, self._acknowledge = alarms, acknowledge
        self._strips: list[AlarmStrip] = []

    def attach(self, window: QWidget) -> AlarmStrip | None:
        """Put a strip at the top of ``window`` (its layout must be a box layout); once per
        window. Returns the strip, or None when the window has no box layout."""
        found = window.findChild(AlarmStrip, "alarmStrip")
        if isinstance(found, AlarmStrip):
            return found
        layout = window.layout()
        if not isinstance(layout, QBoxLayout):
            return None
        strip = AlarmStrip(window)
        strip.acknowledge_requested.connect(self._acknowledge)
        layout.insertWidget(0, strip)
        self._strips.append(strip)
        return strip

    def paint(self, now: float) -> None:
        """One frame: every visible strip shows the ward's alarms now; strips of windows
        that were deleted are forgotten."""
        self._strips = [s for s in self._strips if shiboken6.isValid(s)]
        visible = [s for s in self._strips if s.isVisible()]
        if not visible:
            return
        alarms = self._alarms()
        for strip in visible:
            strip.show_alarms(alarms, now)
