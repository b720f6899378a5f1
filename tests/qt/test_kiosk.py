"""``station --fullscreen`` (station/ui/kiosk.py): the window shows full screen from its first
show, has no minimise button, and a minimise or a leave from full screen is undone."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow
from pytestqt.qtbot import QtBot

from station.ui.kiosk import Kiosk


def test_kiosk_window_is_full_screen_and_stays_so(qtbot: QtBot) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    Kiosk(window)
    window.show()  # as the station's start shows it
    qtbot.waitUntil(window.isFullScreen)
    assert not window.windowFlags() & Qt.WindowType.WindowMinimizeButtonHint
    window.showMinimized()
    assert window.isMinimized()  # for a moment: the kiosk undoes it once the change is done
    qtbot.waitUntil(lambda: window.isFullScreen() and not window.isMinimized())
    window.showNormal()
    qtbot.waitUntil(window.isFullScreen)
