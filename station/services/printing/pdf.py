"""Documents to PDF through Qt: every printable output of the station (shift report, audit summary)
goes this one way.

Why Qt and not a hand-made writer: the station already ships Qt, whose text engine shapes any
Unicode text with the system's fonts (a patient called Łukasz Wójcik or Çağlar Öztürk prints as
written, where the old PDF writer's built-in fonts stopped at Windows-1252) and embeds the glyphs
it used, so the file prints the same on any machine.

How: a :class:`QTextDocument` is laid out on A4 in units of 1/96 inch (CSS pixels, so the HTML's
point sizes come out as points) and painted page by page onto a :class:`QPdfWriter` writing into
memory, with "Page i of n" at each foot. Painting the pages ourselves, rather than
``QTextDocument.print_``, also keeps Qt's incremental layout timer out of the worker thread that
renders (that thread has no event loop).

Threads: any thread once a Qt application exists (Qt's font database needs one); without one (the
command line, a test), the main thread makes a window-less one (:func:`headless_gui`). Returns
bytes: where they go is the caller's business, off the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QRectF, QSizeF, Qt, QUrl
from PySide6.QtGui import (
    QFont,
    QImage,
    QPagedPaintDevice,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextDocument,
)
from PySide6.QtWidgets import QApplication

RESOLUTION_DPI = 300
CSS_DPI = 96.0
"""The document's unit: one CSS pixel, so ``9pt`` in the HTML prints as 9 points."""
MARGINS_MM = QMarginsF(15, 15, 15, 15)
FOOTER_PX = 24.0
"""Room kept under each page's text for its footer."""
BODY_FONT = "DejaVu Sans"
MONO_FONT = "DejaVu Sans Mono"
"""Debian's ``fonts-dejavu-core`` (installed with the station): wide Unicode coverage."""


def headless_gui() -> QApplication:
    """The running Qt application, or a window-less one (``offscreen`` platform) for the command
    line: Qt's fonts need an application object even when nothing is shown. A widgets one, so a
    test process that later opens windows can use it too.

    Raises:
        RuntimeError: none exists and this is not the main thread (Qt makes it only there).
    """
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app
    if app is not None:
        raise RuntimeError("a Qt application without widgets is running")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("no Qt application: create one on the main thread first")
    return QApplication(["station", "-platform", "offscreen"])


def html_pdf(
    title: str,
    html: str,
    *,
    author: str = "",
    images: Mapping[str, QImage] | None = None,
) -> bytes:
    """An A4 PDF of ``html`` (Qt's rich-text subset: headings, paragraphs, tables, ``<pre>``,
    ``<img src="name">`` for each of ``images``), with ``title`` and ``author`` in its
    document information and "Page i of n" at each page's foot.

    Raises:
        RuntimeError: no Qt application exists and this is not the main thread.
    """
    if QApplication.instance() is None:
        headless_gui()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setResolution(RESOLUTION_DPI)
    writer.setTitle(title)
    writer.setAuthor(author)
    writer.setCreator("station")
    paint_pages(writer, title, html, images)
    buffer.close()
    return bytes(data.data())


def paint_pages(
    device: QPagedPaintDevice,
    title: str,
    html: str,
    images: Mapping[str, QImage] | None = None,
) -> int:
    """Lay ``html`` out on A4 and paint it page by page onto ``device`` (a PDF writer or a
    printer); returns the number of pages."""
    device.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    device.setPageMargins(MARGINS_MM, QPageLayout.Unit.Millimeter)
    doc = QTextDocument()
    doc.setDocumentMargin(0)
    doc.setDefaultFont(QFont(BODY_FONT, 9))
    doc.setMetaInformation(QTextDocument.MetaInformation.DocumentTitle, title)
    for name, image in (images or {}).items():
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
    doc.setHtml(html)
    resolution = device.logicalDpiX()
    scale = resolution / CSS_DPI
    area = device.pageLayout().paintRectPixels(resolution)
    page = QSizeF(area.width() / scale, area.height() / scale - FOOTER_PX)
    doc.setPageSize(page)
    pages = doc.pageCount()
    footer_font = QFont(BODY_FONT)
    footer_font.setPixelSize(10)

    painter = QPainter(device)
    try:
        painter.scale(scale, scale)
        for number in range(pages):
            if number:
                device.newPage()
            top = number * page.height()
            painter.save()
            painter.translate(0, -top)
            doc.drawContents(painter, QRectF(0, top, page.width(), page.height()))
            painter.restore()
            painter.setFont(footer_font)
            foot = QRectF(0, page.height() + 8, page.width(), FOOTER_PX - 8)
            painter.drawText(foot, Qt.AlignmentFlag.AlignCenter, f"Page {number + 1} of {pages}")
    finally:
        painter.end()
    return pages


def escape(text: str) -> str:
    """``text`` safe inside HTML: it may come from a device or a user (a name, an id), and is
    shown as written, never interpreted; control characters go, so no line can be forged."""
    cleaned = "".join(ch for ch in text if ch >= " " or ch == "\t")
    return cleaned.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_pdf(title: str, lines: Sequence[str], *, author: str = "") -> bytes:
    """A PDF of ``title`` and plain ``lines`` in a monospace font (seq numbers, hashes and
    counts line up; a line too wide wraps), as the audit summary prints."""
    if isinstance(lines, str):
        raise TypeError("lines must be a sequence of lines, not one string")
    body = "\n".join(escape(line) for line in lines)
    html = (
        f"<h2>{escape(title)}</h2>"
        f"<pre style=\"font-family:'{MONO_FONT}'; font-size:8pt; white-space:pre-wrap\">"
        f"{body}</pre>"
    )
    return html_pdf(title, html, author=author)
