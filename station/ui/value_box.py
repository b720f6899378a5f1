"""One parameter on a bed tile: its name, unit and alarm limits over its number.

Kept apart from the tile because it carries the rule that matters most for reading it: a number
is never clipped. Its box is at least as wide as the widest value it can show in the current
look (wall mode, type size), so the grid gives a tile the room or puts fewer tiles to a row.
GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from station.ui import theme
from station.ui.steady_label import SteadyLabel
from station.ui.theme import ScreenLook


class ValueBox(QWidget):
    """A parameter name, its number and its unit, as on a monitor."""

    def __init__(
        self, name: str, unit: str, param: str, size: int, look: ScreenLook, widest: str
    ) -> None:
        super().__init__()
        self._name, self._unit, self._param, self._size = name, unit, param, size
        self._widest = widest
        self._wall = look.wall
        self._colour = look.colour(param)
        self._limits = ("", False, "")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.setSpacing(0)
        self.head = head = QLabel()
        self.value = SteadyLabel(
            "--",
            font=f"font-size:{look.px(size)}px; font-weight:600;",
            colour=theme.STALE,
            align=Qt.AlignmentFlag.AlignRight,
        )
        lay.addWidget(head)
        lay.addWidget(self.value)
        self.apply_look(look)
        self.show_value("--", stale=True, alarm=False)

    def apply_look(self, look: ScreenLook) -> None:
        """Fonts and colour for ``look`` (a wall mode, a font scale, a palette): rare, so the
        one time the box lays itself out again."""
        self._colour = look.colour(self._param)
        self._wall = look.wall
        self._caption = f"{self._name} <span style='color:{theme.MUTED}'>{self._unit}</span>"
        self.head.setStyleSheet(f"color:{self._colour}; font-size:{look.px(11, 1.2)}px;")
        self.value.set_font(f"font-size:{look.px(self._size)}px; font-weight:600;")
        # Never a clipped number (129 cut to "29" reads as a different patient): the box
        # is at least as wide as the widest value it can show, whatever the look.
        self.value.setMinimumWidth(self.value.fontMetrics().horizontalAdvance(self._widest) + 10)
        # The name line is as wide as the widest it can say in this look, whatever it says
        # now: its limits changing ("50–120" to "100–180") then never widen the tile, which
        # widened every tile of the grid and laid all of them out again (the ward stalled,
        # `station bench --scenario restart-backlog`).
        self.head.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.head.ensurePolished()
        bound = self._widest.split("/")[0]  # a range shows one value's limits ("88.8–88.8")
        widest = f"{self._name} {self._unit} " + ("" if self._wall else f"{bound}–{bound}")
        self.head.setMinimumWidth(self.head.fontMetrics().horizontalAdvance(widest) + 4)
        self.show_limits(*self._limits)

    def show_limits(self, text: str, own: bool, full: str = "") -> None:
        """The alarm range in force beside the name (``50–120``), brighter when set for this
        bed rather than the ward's; ``full`` for the tooltip where the tile shows a part."""
        self._limits = (text, own, full)
        colour = theme.TEXT if own else theme.MUTED
        # Wall mode is read from across the room: the number and its alarm; the limits stay
        # in the tooltip and the detail view rather than be cut off.
        shown = "" if self._wall else text
        self.head.setText(f"{self._caption} <span style='color:{colour}'>{shown}</span>")
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
