"""pytest-qt: readable from across the room (issue 15, point 9). Wall mode and a type size make
the numbers larger and never clip them (fewer tiles to a row instead), the colour-blind palette
changes the curves and names while marks and text stay, the keyboard moves between beds, opens
one and acknowledges, and the tile shows the device's battery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from station.config.settings import from_mapping
from station.services.audit.writer import AuditWriter
from station.ui import theme
from station.ui.theme import ScreenLook
from station.ui.tile import BedTile
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Screen, Wiring


@pytest.fixture
def screen(qtbot: QtBot, wire: Wiring, tmp_path: Path) -> Iterator[tuple[Screen, FakeClock]]:
    clock = FakeClock()
    devices = {f"mon-{n}": n for n in range(1, 9)}
    settings = from_mapping({"ward": {"beds": 8, "devices": devices}, "ui": {"columns": 4}})
    audit = AuditWriter(tmp_path / "audit", clock=clock)
    audit.start()
    screen = wire(settings, clock, audit)
    screen.window.resize(1600, 900)
    screen.window.show()
    qtbot.waitExposed(screen.window)
    yield screen, clock
    assert audit.close(5.0)


def _fits(tile: BedTile) -> bool:
    """Every number of the tile is as wide as its text needs: nothing clipped."""
    for box in (tile.hr, tile.spo2, tile.nibp, tile.temp):
        label = box.value
        if label.width() < label.fontMetrics().horizontalAdvance(label.text()):
            return False
    return True


def test_wall_mode_makes_numbers_larger_never_clipped(
    qtbot: QtBot, screen: tuple[Screen, FakeClock]
) -> None:
    s, clock = screen
    window = s.window
    assert s.core is not None
    wide = {"systolic": 188, "diastolic": 118}
    for n in range(1, 9):
        s.core.on_accepted(accepted(f"mon-{n}", clock.now, heartrate=188, bloodpressure=wide))
    window.paint_frame()
    tile = window.tiles["Bed 1"]
    normal = tile.hr.value.fontMetrics().height()
    assert window.grid.columns == 4
    window.view_menu.wall.setChecked(True)
    qtbot.wait(50)
    window.paint_frame()
    assert tile.hr.value.fontMetrics().height() > normal * 1.3
    assert window.grid.columns < 4  # fewer to a row rather than cut numbers
    qtbot.waitUntil(lambda: all(_fits(t) for t in window.tiles.values()), timeout=2000)
    assert tile.hr.value.text() == "188"
    assert tile.nibp.value.text() == "188/118"
    window.view_menu.scales[1.5].trigger()
    window.view_menu.wall.setChecked(False)
    qtbot.wait(50)
    assert window.view_menu.look == ScreenLook(1.5, False, "standard")
    qtbot.waitUntil(lambda: all(_fits(t) for t in window.tiles.values()), timeout=2000)


def test_the_colour_blind_palette_keeps_marks_and_text(screen: tuple[Screen, FakeClock]) -> None:
    s, clock = screen
    window = s.window
    assert s.core is not None
    s.core.on_accepted(accepted("mon-2", clock.now, heartrate=170))
    window.view_menu.colour_blind.setChecked(True)
    window.paint_frame()
    tile = window.tiles["Bed 2"]
    pen = tile.curves["heartrate"].opts["pen"]
    assert pen.color().name() == theme.COLOUR_BLIND_PARAM_COLOURS["heartrate"]
    assert theme.COLOUR_BLIND_PARAM_COLOURS["heartrate"] in tile.hr.head.styleSheet()
    assert tile.banner.text().startswith("*** HR 170 > 120")  # the mark and the words stay


def test_the_keyboard_moves_between_beds_opens_one_and_acknowledges(
    qtbot: QtBot, screen: tuple[Screen, FakeClock]
) -> None:
    s, clock = screen
    window = s.window
    assert s.core is not None
    s.core.on_accepted(accepted("mon-6", clock.now, heartrate=170))
    s.core.on_accepted(accepted("mon-7", clock.now, heartrate=35))
    tiles = window.tiles
    tiles["Bed 1"].setFocus()
    qtbot.keyClick(tiles["Bed 1"], Qt.Key.Key_Right)
    assert tiles["Bed 2"].hasFocus()
    assert "background" in tiles["Bed 2"].bed.styleSheet()  # where the keyboard is, shown
    qtbot.keyClick(tiles["Bed 2"], Qt.Key.Key_Down)
    assert tiles["Bed 6"].hasFocus()
    qtbot.keyClick(tiles["Bed 6"], Qt.Key.Key_A)
    states = {a.bed: a.state.value for a in window.alarm_list.alarms()}
    assert states == {"Bed 6": "acknowledged", "Bed 7": "active"}
    qtbot.keyClick(tiles["Bed 6"], Qt.Key.Key_Return)
    assert window.bed_windows.patient_views["Bed 6"].isVisible()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    qtbot.keyClick(window, Qt.Key.Key_F9)
    states = {a.bed: a.state.value for a in window.alarm_list.alarms()}
    assert states == {"Bed 6": "acknowledged", "Bed 7": "acknowledged"}


def test_the_tile_shows_the_battery_and_says_when_it_is_low(
    screen: tuple[Screen, FakeClock],
) -> None:
    s, clock = screen
    assert s.core is not None
    s.core.on_accepted(accepted("mon-3", clock.now, battery=80))
    s.core.on_accepted(accepted("mon-4", clock.now, battery=12))
    s.window.paint_frame()
    assert "batt 80%" in s.window.tiles["Bed 3"].device.text()
    assert "BATTERY LOW 12%" in s.window.tiles["Bed 4"].device.text()
