"""Answer the station's file choosers as a user would: they are ordinary windows (not modal,
:mod:`station.ui.file_choice`), so a test finds the open one and accepts a path in it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget


def open_chooser(parent: QWidget) -> QFileDialog:
    """The chooser open over ``parent`` (exactly one, and not modal)."""
    found = [d for d in parent.findChildren(QFileDialog) if d.isVisible()]
    assert len(found) == 1, f"{len(found)} choosers open"
    assert not found[0].isModal()
    return found[0]


def choose(parent: QWidget, path: Path) -> None:
    """Accept ``path`` in the chooser open over ``parent``."""
    chooser = open_chooser(parent)
    chooser.selectFile(str(path))
    chooser.accept()
