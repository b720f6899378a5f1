"""Colours, marks and fonts of the ward screen.

Dark background as on bedside and central monitors (less glare at night). Parameter colours
follow monitor habit (HR green, SpO2 cyan, NIBP red/white, temperature amber). Alarm colours are
IEC 60601-1-8's red / yellow / cyan, always paired with the text mark (***, **, *) and the
message, so colour is never the only cue; the three differ in lightness as well as hue, which keeps
them apart for red-green colour-blind staff.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.domain.alarms import Priority

BACKGROUND = "#0b0f14"
TILE = "#141a22"
TILE_BORDER = "#2a3340"
TEXT = "#e6edf3"
MUTED = "#7d8590"
STALE = "#59626e"

PARAM_COLOURS = {
    "heartrate": "#3fdc5a",
    "oxygen": "#38c8f0",
    "systolic": "#ff6b6b",
    "diastolic": "#ff9b9b",
    "temperature": "#f2b84b",
}

COLOUR_BLIND_PARAM_COLOURS = {
    "heartrate": "#e69f00",
    "oxygen": "#56b4e9",
    "systolic": "#cc79a7",
    "diastolic": "#e3a6cf",
    "temperature": "#f0e442",
}
"""Okabe and Ito's palette, safe for every common colour-vision deficiency: the monitor habit's
green HR beside red NIBP is exactly the pair a red-green colour-blind nurse cannot tell apart.
Alarm colours stay IEC 60601-1-8's (red, yellow, cyan differ in lightness too, and always come
with their marks ***, **, * and the message)."""
PALETTES = {"standard": PARAM_COLOURS, "colour-blind": COLOUR_BLIND_PARAM_COLOURS}
WALL_SCALE = 1.5
"""Wall mode: type half as large again, for a screen read from across the room."""


@dataclass(frozen=True, slots=True)
class ScreenLook:
    """How the ward screen reads: font scale (1.0 = as designed), wall mode (larger again),
    and the parameter palette (``standard`` or ``colour-blind``)."""

    scale: float = 1.0
    wall: bool = False
    palette: str = "standard"

    def px(self, size: float, wall: float = WALL_SCALE) -> int:
        """A font size in pixels, scaled; ``wall``: how much larger in wall mode (the numbers
        and alarms take the full factor, small print less so that it still fits)."""
        return round(size * self.scale * (wall if self.wall else 1.0))

    def colour(self, param: str) -> str:
        """The parameter's colour in this palette."""
        return PALETTES.get(self.palette, PARAM_COLOURS)[param]


ALARM_BG = {Priority.HIGH: "#d3212d", Priority.MEDIUM: "#f5c400", Priority.LOW: "#1fb6d6"}
ALARM_FG = {Priority.HIGH: "#ffffff", Priority.MEDIUM: "#000000", Priority.LOW: "#000000"}
TECHNICAL_BG = "#5b6675"

# Flash rates within IEC 60601-1-8: high 1.4–2.8 Hz, medium 0.4–0.8 Hz, low steady.
FLASH_HZ = {Priority.HIGH: 2.0, Priority.MEDIUM: 0.5, Priority.LOW: 0.0}

OK = "#3fdc5a"
WARN = "#f5c400"
BAD = "#d3212d"

STYLESHEET = f"""
QMainWindow, QWidget#central {{ background: {BACKGROUND}; color: {TEXT}; }}
QLabel {{ color: {TEXT}; }}
QStatusBar {{ background: #10151c; color: {TEXT}; }}
QTableWidget {{ background: {TILE}; color: {TEXT}; gridline-color: {TILE_BORDER};
               selection-background-color: #2f3b4a; font-size: 13px; }}
QHeaderView::section {{ background: #1b232d; color: {MUTED}; border: none; padding: 3px; }}
QPushButton, QToolButton {{ background: #253041; color: {TEXT}; border: 1px solid #3a4759;
              padding: 5px 12px; border-radius: 3px; font-size: 13px; }}
QPushButton:disabled, QToolButton:disabled {{ color: {MUTED}; }}
QPushButton:hover, QToolButton:hover {{ background: #2f3d52; }}
QToolButton::menu-indicator {{ image: none; }}
QScrollArea {{ border: none; background: {BACKGROUND}; }}
QDialog {{ background: {BACKGROUND}; color: {TEXT}; }}
"""

CHOICE_BUTTON = "QPushButton:checked { background:#3d5a80; border-color:#7aa2d6; }"
"""A checkable button of a choice (a time range): the chosen one must be visible."""
