"""Text from the network shown as written: a read-only table of plain text (the admin dialogs'
devices and rejected messages) and tooltips that never render markup.

One place for it because its cells come from the network (device ids, topics, excerpts): a
``QTableWidgetItem`` shows its text as written, never as markup, and a row is selected whole.
GUI thread only.
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


def plain_table(headers: list[str]) -> QTableWidget:
    """An empty table with ``headers``: rows selected one at a time, nothing editable."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def fill_plain(table: QTableWidget, rows: list[list[str]]) -> None:
    """Replace the rows; each cell plain text."""
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))


def plain_tooltip(text: str) -> str:
    """``text`` as a tooltip shows it: Qt guesses whether a tooltip is rich text, so a device's
    alert such as ``<img src=…>`` would be rendered; escaped inside a paragraph it is read as
    written."""
    return f"<p style='white-space:pre-wrap'>{html.escape(text)}</p>"
