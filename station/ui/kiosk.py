"""Kiosk mode (``station --fullscreen``): the ward screen fills the display and cannot be
minimised, so a ward's wall display never ends up behind a desktop.

The window gets no minimise button, and a minimise that comes anyway (a window manager's
shortcut, a taskbar click) is undone at once: an event filter on this one window, not on the
application. Closing still goes through the admin's login (:mod:`station.ui.close_guard`).

GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QWidget


class Kiosk(QObject):
    """Keeps ``window`` full screen; see the module docstring. Child of the window."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        window.setWindowFlag(Qt.WindowType.WindowMinimizeButtonHint, False)
        # Before the window is shown, the state takes effect at its show().
        window.setWindowState(Qt.WindowState.WindowFullScreen)
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Undo a minimise, or a leave from full screen, once the state change is done."""
        if watched is self._window and event.type() == QEvent.Type.WindowStateChange:
            state = self._window.windowState()
            full = bool(state & Qt.WindowState.WindowFullScreen)
            if self._window.isVisible() and (not full or state & Qt.WindowState.WindowMinimized):
                QTimer.singleShot(0, self._window, self._restore)
        return False

    def _restore(self) -> None:
        self._window.setWindowState(Qt.WindowState.WindowFullScreen)
        self._window.showFullScreen()
        self._window.raise_()
        self._window.activateWindow()
