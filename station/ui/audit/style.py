"""The audit view's look: the health banner's three states, the red of bad text and of the bad
record's row, and a stylesheet for the widgets the ward theme leaves unstyled.

Apart so that the table model and the dialog take the same colours from one place.
"""

from __future__ import annotations

from station.ui import theme

INTACT_STYLE = (
    f"background:#0f2418; color:{theme.OK}; border-left:6px solid {theme.OK};"
    " padding:6px 10px; font-size:15px; font-weight:700;"
)
BROKEN_STYLE = (
    f"background:#3b0d12; color:#ffd7d7; border:2px solid {theme.BAD};"
    f" border-left:6px solid {theme.BAD}; padding:6px 10px; font-size:15px; font-weight:700;"
)
CHECKING_STYLE = (
    f"background:{theme.TILE}; color:{theme.MUTED}; border-left:6px solid {theme.MUTED};"
    " padding:6px 10px; font-size:15px; font-weight:700;"
)
BAD_TEXT = "#ff8a8a"  # theme.BAD is a fill colour; as text on the dark tiles it is too dim
BAD_ROW = "#4a161c"  # the first bad record's row: a dark red the light text stays readable on
# The ward stylesheet styles buttons, labels and QTableWidget but no input field, check box or
# QTableView: without this their dark default text sits on the dark dialog.
STYLE = f"""
QCheckBox {{ color: {theme.TEXT}; font-size: 13px; }}
QComboBox, QDateTimeEdit {{ background: {theme.TILE}; color: {theme.TEXT};
    border: 1px solid #3a4759; border-radius: 3px; padding: 3px 6px; font-size: 13px; }}
QComboBox:disabled, QDateTimeEdit:disabled {{ color: {theme.STALE};
    border-color: {theme.TILE_BORDER}; }}
QComboBox QAbstractItemView {{ background: {theme.TILE}; color: {theme.TEXT};
    selection-background-color: #2f3b4a; }}
QTableView {{ background: {theme.TILE}; alternate-background-color: #19212b; color: {theme.TEXT};
    gridline-color: {theme.TILE_BORDER}; selection-background-color: #31506f;
    selection-color: #ffffff; font-size: 13px; }}
QPlainTextEdit {{ background: {theme.TILE}; color: {theme.TEXT};
    border: 1px solid {theme.TILE_BORDER}; font-size: 12px; }}
"""
