"""The ward grid keeps its size while alarms come and go: nothing that an alarm changes (the
alarm list's count, its rows, a tile's banner) resizes the grid of tiles.

Why: a new size lays out every tile and its plots again. ``station bench --scenario
restart-backlog`` saw the whole screen stall for 0.2-1.1 s each time the alarm list's count
("64 open, 64 unacknowledged") grew wider and the splitter took the room from the grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QObject, QSize
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from station.config.settings import Settings, from_mapping
from station.services.audit.writer import AuditWriter
from tests.fakes import FakeClock
from tests.payloads import accepted
from tests.qt.wiring import Screen, Wiring

BEDS = 24


class _Resizes(QObject):
    """Counts the resize events of the object it watches."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[QSize] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and isinstance(watched, QWidget):
            self.sizes.append(watched.size())
        return False


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def screen(wire: Wiring, tmp_path: Path, clock: FakeClock) -> Iterator[Screen]:
    devices = {f"mon-{n}": n for n in range(1, BEDS + 1)}
    settings: Settings = from_mapping(
        {
            "station": {"data_dir": str(tmp_path / "data")},
            "ward": {"beds": BEDS, "devices": devices},
        }
    )
    audit = AuditWriter(tmp_path / "audit", clock=clock)
    audit.start()
    yield wire(settings, clock, audit)
    assert audit.close(5.0)


def test_alarms_coming_and_going_never_resize_the_grid(
    qtbot: QtBot, screen: Screen, clock: FakeClock
) -> None:
    window, core = screen.window, screen.core
    assert core is not None
    window.resize(1600, 900)
    window.show()
    qtbot.waitExposed(window)
    for n in range(1, BEDS + 1):  # every bed has data: no first value changes a tile later
        core.on_accepted(accepted(f"mon-{n}", clock.now, heartrate=80))
    window.paint_frame()
    qtbot.wait(50)
    resizes = _Resizes()
    viewport = window.grid.viewport()
    viewport.installEventFilter(resizes)
    before = viewport.size()
    counts = []
    for n in range(1, BEDS + 1):  # one more alarm each frame: "1 open…" to "24 open, 24 …"
        clock.now += 1
        core.on_accepted(accepted(f"mon-{n}", clock.now, heartrate=170))
        window.paint_frame()
        qtbot.wait(5)  # the layout runs from the event loop
        counts.append(window.alarm_list.count.text())
    assert counts[-1] == f"{BEDS} open, {BEDS} unacknowledged", counts
    for n in range(1, BEDS + 1):  # and back to none
        clock.now += 1
        core.on_accepted(accepted(f"mon-{n}", clock.now, heartrate=80))
        window.paint_frame()
        qtbot.wait(5)
    assert window.alarm_list.count.text() == "none"
    assert resizes.sizes == [], f"the grid was resized from {before}: {resizes.sizes}"
    assert viewport.size() == before


def test_longer_tile_texts_never_resize_the_grid(
    qtbot: QtBot, screen: Screen, clock: FakeClock
) -> None:
    """A battery going low, a patient's long name, a bed's own alarm limits and a device gone
    quiet change what a tile says, never how wide it asks to be."""
    window, core = screen.window, screen.core
    assert core is not None
    window.resize(1600, 900)
    window.show()
    qtbot.waitExposed(window)
    for n in range(1, BEDS + 1):
        core.on_accepted(accepted(f"mon-{n}", clock.now, heartrate=80, battery=90))
    window.paint_frame()
    qtbot.wait(50)
    resizes = _Resizes()
    viewport = window.grid.viewport()
    viewport.installEventFilter(resizes)
    widths = {tile.minimumSizeHint().width() for tile in window.tiles.values()}
    for n, tile in enumerate(window.tiles.values(), start=1):
        clock.now += 0.5
        core.on_accepted(accepted(f"mon-{n}", clock.now, heartrate=80, battery=5))
        tile.data.patient = "Maximiliana Alexandra Featherstonehaugh-Worthington · 1931-12-24"
        tile.show_patient()
        tile.hr.show_limits("100–180", True)
        tile.nibp.show_limits("100–180", True, "100–180/60–110 (systolic/diastolic)")
        window.paint_frame()
        qtbot.wait(5)
    assert all("BATTERY LOW" in t.device.text() for t in window.tiles.values())
    clock.now += 120  # every device quiet: "NO DATA", "last data 120 s ago"
    window.paint_frame()
    qtbot.wait(20)
    assert {tile.minimumSizeHint().width() for tile in window.tiles.values()} == widths
    assert resizes.sizes == [], f"the grid was resized: {resizes.sizes}"


def test_a_tile_at_its_narrowest_still_shows_each_name_line_whole(screen: Screen) -> None:
    """Fixed from the start, the name lines are still wide enough for what they say: the
    temperature's "35.5–38.5" is the widest of the ward defaults."""
    tile = screen.window.tiles["Bed 1"]
    for box, (name, unit, limits) in {
        tile.hr: ("HR", "bpm", "100–180"),
        tile.spo2: ("SpO2", "%", "90–100"),
        tile.nibp: ("NIBP", "mmHg", "100–180"),
        tile.temp: ("Temp", "°C", "35.5–38.5"),
    }.items():
        box.show_limits(limits, True)
        need = box.head.fontMetrics().horizontalAdvance(f"{name} {unit} {limits}")
        assert box.head.minimumWidth() >= need, (name, box.head.minimumWidth(), need)
