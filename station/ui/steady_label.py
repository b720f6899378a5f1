"""A label for the parts of a bed tile that change while the ward runs (the numbers, the data
age, the alarm banner) that never makes the tile lay itself out again.

Why: under the window's style sheet a ``QLabel.setText`` invalidates its parent's layout unless
the label's size is fixed, and a ``setStyleSheet`` re-polishes the widget and everything under
it. On a 64-bed ward both together took a quarter of the GUI thread and made frames of up to
100 ms (measured with ``py-spy`` during ``station bench --scenario alarms``). This label is
fixed in height, either fixed in width or sized by its layout with its text ignored, and
changes its style sheet only when its look changes (one childless widget re-polished, as when
a banner flashes; no layout pass). It stays a ``QLabel``: Qt paints it in C++ (a label painted
from Python measured no better, and its every painter call needs the interpreter lock that the
ingest threads hold most of the time under a flood). GUI thread only.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QStackedWidget

Look = tuple[str, str | None, str | None]
"""Text colour, fill (None: none) and outline (None: none), as ``#rrggbb``."""


class SteadyLabel(QLabel):
    """One line of text in a colour, optionally on a filled or outlined box.

    Fixed in height; in width either fixed (``width``) or given by its layout with its own
    text ignored, so that no text it shows later changes the size its layout asks for.
    """

    def __init__(
        self,
        text: str = "",
        *,
        font: str,
        colour: str,
        width: int | None = None,
        align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft,
        height: int | None = None,
    ) -> None:
        super().__init__(text)
        self.setTextFormat(Qt.TextFormat.PlainText)  # device text is never markup
        self._text = text  # kept here: asking Qt costs a hand-over of the interpreter lock
        self._font = font
        self._look: Look | None = None
        self.setAlignment(align | Qt.AlignmentFlag.AlignVCenter)
        self.set_look(colour)
        self.ensurePolished()  # the style sheet's font, before measuring with it
        self.setFixedHeight(height or self.fontMetrics().height() + 4)
        if width is not None:
            self.setFixedWidth(width)
        else:
            self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def setText(self, text: str) -> None:  # the QLabel name, so callers read alike
        """Show ``text``; nothing happens when it did not change."""
        if text != self._text:
            self._text = text
            super().setText(text)

    def set_look(self, colour: str, fill: str | None = None, outline: str | None = None) -> None:
        """Text colour, fill and outline; the style sheet changes only when the look did."""
        look = (colour, fill, outline)
        if look == self._look:
            return
        self._look = look
        style = f"color:{colour}; {self._font} padding:0 3px; border-radius:3px;"
        if fill is not None:
            style += f" background:{fill};"
        style += f" border:1px solid {outline};" if outline else " border:1px solid transparent;"
        self.setStyleSheet(style)

    @property
    def look(self) -> Look:
        """What is shown now: text colour, fill, outline."""
        assert self._look is not None
        return self._look

    def set_font(self, font: str, width: int | None = None, height: int | None = None) -> None:
        """A new font (a wall mode, a font scale): restyled and resized once, the one time this
        label lays its tile out again."""
        look = self.look
        self._font, self._look = font, None
        self.set_look(*look)
        self.ensurePolished()
        self.setFixedHeight(height or self.fontMetrics().height() + 4)
        if width is not None:
            self.setFixedWidth(width)


class FlashingBanner(QStackedWidget):
    """An alarm banner that flashes without a style change: two steady labels, one in the
    "on" look and one in the "off" look, and flashing shows one or the other. A flash is then
    one ``setCurrentIndex``; restyling a label at every flash re-polished it, and with every bed
    of a flooded ward flashing that was the GUI thread's largest wait (``py-spy`` during
    ``station bench --flood``). GUI thread only."""

    def __init__(self, *, font: str, height: int) -> None:
        super().__init__()
        self._labels = (
            SteadyLabel(font=font, colour="#ffffff", height=height),
            SteadyLabel(font=font, colour="#ffffff", height=height),
        )
        for label in self._labels:
            self.addWidget(label)
        self._on = True
        self.setFixedHeight(height)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def show_text(self, text: str, on: Look, off: Look | None = None, lit: bool = True) -> None:
        """Show ``text`` in the ``on`` look, or in ``off`` while not ``lit`` (flashing)."""
        for label, look in zip(self._labels, (on, off or on), strict=True):
            label.setText(text)
            label.set_look(*look)
        lit = lit or off is None
        if lit != self._on:
            self._on = lit
            self.setCurrentIndex(0 if lit else 1)

    def set_font(self, font: str, height: int) -> None:
        """A new font and height for both looks (a wall mode, a font scale)."""
        for label in self._labels:
            label.set_font(font, height=height)
        self.setFixedHeight(height)

    def text(self) -> str:
        """The banner's text."""
        return self._labels[0].text()

    @property
    def look(self) -> Look:
        """The look shown now: text colour, fill, outline."""
        return self._labels[0 if self._on else 1].look
