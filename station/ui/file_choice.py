"""File and folder choosers that do not block the ward.

``QFileDialog.getSaveFileName`` and its siblings run a modal loop: while a nurse or an admin
picks where an export goes, nobody can acknowledge an alarm anywhere on the station (issue 15:
nothing blocks an acknowledgement). These open Qt's own chooser as an ordinary window and call
back with the choice; the ward, its alarm list and every alarm strip stay usable meanwhile.
Qt's widget chooser rather than the platform's: a native one may be modal whatever is asked of
it. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QWidget

Mode = Literal["save", "open", "folder"]


def choose_path(
    parent: QWidget,
    title: str,
    chosen: Callable[[Path], object],
    *,
    mode: Mode = "save",
    start: str = "",
    name_filter: str = "",
) -> QFileDialog:
    """Open a chooser that is not modal; ``chosen`` gets the path the user accepts (nothing
    happens on cancel). ``start`` is a folder or, to save, a file name to propose. Returns the
    chooser (deleted when it closes)."""
    dialog = QFileDialog(parent, title)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
    dialog.setWindowModality(Qt.WindowModality.NonModal)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if mode == "save":
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        if start:
            dialog.selectFile(start)
    elif mode == "open":
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        if start:
            dialog.setDirectory(start)
    else:
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly)
        if start:
            dialog.setDirectory(start)
    if name_filter:
        dialog.setNameFilter(name_filter)
    dialog.fileSelected.connect(lambda name: chosen(Path(name)) if name else None)
    dialog.show()
    dialog.raise_()
    return dialog
