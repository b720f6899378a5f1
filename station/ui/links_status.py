"""The status bar's word on the hospital's interfaces (HL7 out, ADT in), when any is on.

Why a widget of its own: the interfaces run on threads of their own and keep their state in
memory; once a second this label asks them for a few words (no I/O on the GUI thread, see
:class:`station.links.Link`), and it stays hidden while none is configured, so a ward without
them sees nothing new.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QWidget

REFRESH_MS = 1000


class LinksStatus(QLabel):
    """Plain text (what a peer sends never becomes markup), refreshed once a second."""

    def __init__(self, status: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("links-status")
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._status = status
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refresh()

    def refresh(self) -> None:
        """Show the interfaces' words; hidden when they have none."""
        text = self._status()
        if text != self.text():
            self.setText(text)
        self.setVisible(bool(text))
