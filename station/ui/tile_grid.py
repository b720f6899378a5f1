"""The ward's bed tiles: laid out in a scrolling grid, and painted each frame within a budget.

Kept apart from :mod:`station.ui.main_window`, which owns the render timer and decides when a
frame is painted; this decides how the tiles share one. A tile with an alarm, or whose alarms
just changed, is painted every frame (banners, flashing: alarms wait for nothing). The other
tiles are taken round-robin, continuing where the last frame stopped, until the frame's time
budget is spent; curve redraws, the costly part, are also limited per frame. On a quiet ward every
tile is painted every frame; under a flood, when every call into Qt waits for the interpreter
lock the ingest threads hold, a frame stays short and a tile's numbers are a frame or two later.
GUI thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QScrollArea, QWidget

from station.config.settings import Settings
from station.ui.beddata import BedData
from station.ui.theme import ScreenLook
from station.ui.tile import BedTile

CURVES_PER_FRAME = 6
"""Tiles whose curves are redrawn per frame (10 Hz: 60 tiles/s, each of 64 beds about once a
second, as often as a 1 Hz device adds a point). Each redraw is dozens of Qt calls, and under a
flood every Qt call waits for the interpreter lock (measured: 12 a frame made frames of 60 ms
mean, 600 ms at worst, with the record path busy)."""
GAP_PX = 8
FRAME_BUDGET_S = 0.012
"""Time a frame may spend on tiles without an alarm (at 10 frames a second, an eighth of the
GUI thread). Measured with ``station bench --flood --historian``: without it, frames under a
flood took 27 ms mean and 60 ms p95; with it, 15 ms mean and 35 ms p95."""


class TileGrid(QScrollArea):
    """A tile per bed, ``settings.ui.columns`` to a row, every bed given the same room."""

    def __init__(
        self, beds: Mapping[str, BedData], settings: Settings, look: ScreenLook | None = None
    ) -> None:
        super().__init__()
        self._wanted = self._columns = settings.ui.columns
        self.tiles: dict[str, BedTile] = {}
        self._grid = grid = QGridLayout()
        grid.setSpacing(GAP_PX)
        for label, data in beds.items():
            tile = BedTile(data, settings.ui.plot_window_s, settings.alarms.no_data_s, look)
            tile.move_wanted.connect(self.move_focus)
            self.tiles[label] = tile
        self._place(self._columns)
        host = QWidget()
        host.setObjectName("central")
        host.setLayout(grid)
        self.setWidgetResizable(True)
        self.setWidget(host)
        self._order = list(self.tiles.values())
        self._labels = list(self.tiles)
        self._next_curves = 0  # the tile whose curves are redrawn first next frame
        self._next_tile = 0  # the tile whose numbers are painted first next frame

    def move_focus(self, bed: str, columns: int, rows: int) -> None:
        """Move the keyboard focus from ``bed``'s tile by ``columns`` and ``rows`` in the grid
        (stopping at its edges), and keep the tile in view."""
        at = self._labels.index(bed)
        col, row = at % self._columns, at // self._columns
        col = min(max(col + columns, 0), self._columns - 1)
        target = min(max((row + rows) * self._columns + col, 0), len(self._labels) - 1)
        tile = self.tiles[self._labels[target]]
        tile.setFocus(Qt.FocusReason.OtherFocusReason)
        self.ensureWidgetVisible(tile)

    @property
    def columns(self) -> int:
        """Tiles to a row now."""
        return self._columns

    def apply_look(self, look: ScreenLook) -> None:
        """Every tile in ``look`` (wall mode, font scale, palette), and as many to a row as
        still fit: larger type never pushes beds out of view behind a scroll bar."""
        for tile in self.tiles.values():
            tile.apply_look(look)
        self._fit()

    def resizeEvent(self, arg__1: QResizeEvent, /) -> None:
        """A new width: as many tiles to a row as fit (at most the configured number)."""
        super().resizeEvent(arg__1)
        self._fit()

    def _fit(self) -> None:
        tile = next(iter(self.tiles.values()), None)
        if tile is None:
            return
        need = tile.minimumSizeHint().width() + GAP_PX
        fit = max(1, (self.viewport().width() + GAP_PX) // max(need, 1))
        columns = min(self._wanted, fit)
        if columns != self._columns:
            self._place(columns)

    def _place(self, columns: int) -> None:
        """Put the tiles ``columns`` to a row, every bed given the same room."""
        grid = self._grid
        for tile in self.tiles.values():
            grid.removeWidget(tile)
        for i in range(max(grid.columnCount(), columns)):
            grid.setColumnStretch(i, 0)
        for i in range(grid.rowCount()):
            grid.setRowStretch(i, 0)
        for i, tile in enumerate(self.tiles.values()):
            grid.addWidget(tile, i // columns, i % columns)
        # Equal stretch: every bed gets the same room, whatever its labels' widths.
        count = len(self.tiles)
        for col in range(min(columns, count)):
            grid.setColumnStretch(col, 1)
        for row in range((count + columns - 1) // columns):
            grid.setRowStretch(row, 1)
        self._columns = columns

    def paint(self, now: float) -> None:
        """One frame: every tile with an alarm or an alarm change; the curves of at most
        :data:`CURVES_PER_FRAME` dirty tiles, continuing after the last one redrawn; then the
        other tiles from where the last frame stopped. The last two stop when
        :data:`FRAME_BUDGET_S` is spent (each does at least one tile)."""
        started = time.perf_counter()
        tiles = self._order
        count = len(tiles)
        done = self.paint_alarms(now)
        for i, tile in enumerate(tiles):
            if tile.data.alarms and i not in done:  # flashing
                tile.refresh(now, curves=False)
                done.add(i)
        budget = CURVES_PER_FRAME
        start = self._next_curves
        for step in range(count):
            i = (start + step) % count
            if not tiles[i].data.dirty:
                continue
            tiles[i].refresh(now, curves=True)
            done.add(i)
            self._next_curves = (i + 1) % count
            budget -= 1
            if budget == 0 or time.perf_counter() - started > FRAME_BUDGET_S:
                break
        start = self._next_tile
        for step in range(count):
            i = (start + step) % count
            self._next_tile = (i + 1) % count
            if i in done:
                continue
            tiles[i].refresh(now, curves=False)
            if time.perf_counter() - started > FRAME_BUDGET_S:
                break

    def paint_alarms(self, now: float) -> set[int]:
        """The tiles whose alarms changed since they were last painted (a new alarm's frame,
        painted at once); returns their places in the grid's order."""
        done: set[int] = set()
        for i, tile in enumerate(self._order):
            if tile.data.urgent:
                tile.data.urgent = False
                tile.refresh(now, curves=False)
                done.add(i)
        return done
