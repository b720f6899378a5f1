"""The ward screen's View ▾ menu: wall mode, type size and colour-blind-safe colours, changed live,
and the keyboard's keys listed where a nurse looks for them.

Why live and not in Settings: a nurse who cannot read the screen from the bay, or cannot tell
the HR curve from the NIBP one, needs it now, not after a restart by an admin. The config's
``[ui] font_scale``, ``wall`` and ``palette`` give the look at start; a change here lasts until
the station restarts and needs no login (it changes what the screen shows, nothing clinical).
GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from station.ui.theme import ScreenLook

SCALES = (1.0, 1.25, 1.5)
KEYS = (
    "Keyboard: Tab or a click puts the focus on a bed",
    "  arrows: the next bed · Enter: its detail view",
    "  A: acknowledge every alarm of that bed",
    "  F9: acknowledge the ward's most urgent alarm",
)


class ViewMenu(QToolButton):
    """The View ▾ button; ``apply(look)`` gets each new look."""

    def __init__(
        self, look: ScreenLook, apply: Callable[[ScreenLook], None], parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.look = look
        self._apply = apply
        self.setText("View ▾")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        self.setMenu(menu)
        self.wall = QAction("Wall mode (large type)", menu, checkable=True)
        self.wall.setChecked(look.wall)
        self.wall.toggled.connect(lambda on: self.set_look(replace(self.look, wall=on)))
        menu.addAction(self.wall)
        sizes = menu.addMenu("Type size")
        group = QActionGroup(sizes)
        self.scales: dict[float, QAction] = {}
        for scale in sorted({*SCALES, look.scale}):
            action = QAction(f"{scale:.0%}", sizes, checkable=True)
            action.setChecked(scale == look.scale)
            action.triggered.connect(
                lambda _c=False, s=scale: self.set_look(replace(self.look, scale=s))
            )
            group.addAction(action)
            sizes.addAction(action)
            self.scales[scale] = action
        self.colour_blind = QAction("Colour-blind-safe colours", menu, checkable=True)
        self.colour_blind.setChecked(look.palette == "colour-blind")
        self.colour_blind.toggled.connect(
            lambda on: self.set_look(
                replace(self.look, palette="colour-blind" if on else "standard")
            )
        )
        menu.addAction(self.colour_blind)
        menu.addSeparator()
        for line in KEYS:
            menu.addAction(line).setEnabled(False)

    def set_look(self, look: ScreenLook) -> None:
        """Apply ``look`` (also called by tests, as the menu's entries do)."""
        if look == self.look:
            return
        self.look = look
        self._apply(look)
