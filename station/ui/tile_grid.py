"""The ward's bed tiles: laid out in a scrolling grid, and painted each frame within a budget of
curve redraws.

Kept apart from :mod:`station.ui.main_window`, which owns the render timer and decides when a
frame is painted; this decides how the tiles share one. Numbers, banners and flashing are painted
on every tile every frame; curve redraws, the costly part, are limited per frame and taken
round-robin, so a ward whose devices all send in the same second does not make one long frame
(alarms wait for none). GUI thread.
"""

from __future__ import annotations

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
        self._next_curves = 0

    def paint(self, now: float) -> None:
        """One frame: every tile's numbers, banner and flashing; the curves of at most
        :data:`CURVES_PER_FRAME` dirty tiles, continuing after the last one redrawn."""
        tiles = self._order
        budget = CURVES_PER_FRAME
        start = self._next_curves
        for i in range(len(tiles)):
            tile = tiles[(start + i) % len(tiles)]
            draw = budget > 0 and tile.data.dirty
            if draw:
                budget -= 1
                self._next_curves = (start + i + 1) % len(tiles)
            tile.refresh(now, curves=draw)
