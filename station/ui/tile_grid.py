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

from PySide6.QtWidgets import QGridLayout, QScrollArea, QWidget

from station.config.settings import Settings
from station.ui.beddata import BedData
from station.ui.tile import BedTile

CURVES_PER_FRAME = 6
"""Tiles whose curves are redrawn per frame (10 Hz: 60 tiles/s, each of 64 beds about once a
second, as often as a 1 Hz device adds a point). Each redraw is dozens of Qt calls, and under a
flood every Qt call waits for the interpreter lock (measured: 12 a frame made frames of 60 ms
mean, 600 ms at worst, with the record path busy)."""
FRAME_BUDGET_S = 0.012
"""Time a frame may spend on tiles without an alarm (at 10 frames a second, an eighth of the
GUI thread). Measured with ``station bench --flood --historian``: without it, frames under a
flood took 27 ms mean and 60 ms p95; with it, 15 ms mean and 35 ms p95."""


class TileGrid(QScrollArea):
    """A tile per bed, ``settings.ui.columns`` to a row, every bed given the same room."""

    def __init__(self, beds: Mapping[str, BedData], settings: Settings) -> None:
        super().__init__()
        columns = settings.ui.columns
        self.tiles: dict[str, BedTile] = {}
        grid = QGridLayout()
        grid.setSpacing(8)
        for i, (label, data) in enumerate(beds.items()):
            tile = BedTile(data, settings.ui.plot_window_s, settings.alarms.no_data_s)
            self.tiles[label] = tile
            grid.addWidget(tile, i // columns, i % columns)
        # Equal stretch: every bed gets the same room, whatever its labels' widths.
        count = len(beds)
        for col in range(min(columns, count)):
            grid.setColumnStretch(col, 1)
        for row in range((count + columns - 1) // columns):
            grid.setRowStretch(row, 1)
        host = QWidget()
        host.setObjectName("central")
        host.setLayout(grid)
        self.setWidgetResizable(True)
        self.setWidget(host)
        self._order = list(self.tiles.values())
        self._next_curves = 0  # the tile whose curves are redrawn first next frame
        self._next_tile = 0  # the tile whose numbers are painted first next frame

    def paint(self, now: float) -> None:
        """One frame: every tile with an alarm or an alarm change; the curves of at most
        :data:`CURVES_PER_FRAME` dirty tiles, continuing after the last one redrawn; then the
        other tiles from where the last frame stopped. The last two stop when
        :data:`FRAME_BUDGET_S` is spent (each does at least one tile)."""
        started = time.perf_counter()
        tiles = self._order
        count = len(tiles)
        done: set[int] = set()
        for i, tile in enumerate(tiles):
            data = tile.data
            if data.urgent or data.alarms:
                data.urgent = False
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
