"""A minimal PDF 1.4 writer for the text summary in the auditor's export bundle.

An auditor wants a document that prints and files as-is and that nobody can mistake for the
editable trail; a PDF is that document. The summary is plain lines of text, so this writes them
with the PDF's built-in fonts rather than pulling a PDF library (and its fonts, images and
parsers) into a medical device's dependency list: A4 pages, the title in Helvetica-Bold 14 pt,
the body in Courier 9 pt (monospace, so seq numbers, hashes and tables line up, and a line's width
is exact, so wrapping never lets text run off the page), and "Page i of n" at the foot.

Text comes from the trail, and any of it may be hostile (a user name or device id sent by an
attacker). It is drawn, never interpreted: control characters are removed (so a line break cannot
forge a line of its own), characters outside Windows-1252 (the WinAnsiEncoding the built-in fonts
use) become ``?``, and ``(``, ``)`` and ``\\`` are escaped inside PDF strings; bytes beyond ASCII
are written as octal escapes, so the file is plain ASCII after its binary marker line.

The same input gives the same bytes (no clock, no random file id): a bundle can be rebuilt and
compared, and its hash recorded. ``created`` adds a CreationDate only when the caller asks.
Stdlib only; no Qt, no file or network access.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

PAGE_WIDTH = 595
PAGE_HEIGHT = 842
MARGIN = 50
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN
"""Points between the left and right margins."""

TITLE_SIZE = 14
TITLE_LEADING = 18
BODY_SIZE = 9
BODY_LEADING = 11
FOOTER_SIZE = 8
FOOTER_BASELINE = 30

_EM = 1000
"""Glyph widths are in thousandths of the font size (the AFM convention)."""

_COURIER_WIDTH = 600
BODY_CHARS_PER_LINE = TEXT_WIDTH * _EM // (_COURIER_WIDTH * BODY_SIZE)
"""How many Courier 9 pt characters fit between the margins (91)."""

# Helvetica-Bold advance widths for WinAnsiEncoding codes 0x20..0xFF, from Adobe's AFM file (as
# shipped with groff). 0 marks the five codes Windows-1252 leaves undefined, which never occur
# because text is first passed through the cp1252 codec.
# fmt: off
_HELVETICA_BOLD = (
     278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,  # 0x20
     556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,  # 0x30
     975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,  # 0x40
     667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,  # 0x50
     333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,  # 0x60
     611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,   0,  # 0x70
     556,   0, 278, 556, 500,1000, 556, 556, 333,1000, 667, 333,1000,   0, 611,   0,  # 0x80
       0, 278, 278, 500, 500, 350, 556,1000, 333,1000, 556, 333, 944,   0, 500, 667,  # 0x90
     278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,  # 0xA0
     400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,  # 0xB0
     722, 722, 722, 722, 722, 722,1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,  # 0xC0
     722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,  # 0xD0
     556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,  # 0xE0
     611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,  # 0xF0
)
# fmt: on

# Helvetica widths of the only characters the footer uses ("Page 12 of 34").
_FOOTER_WIDTHS = {" ": 278, "P": 667, "a": 556, "g": 556, "e": 556, "o": 556, "f": 278}
_DIGIT_WIDTH = 556

# Object numbers of the fixed objects; page k (from 0) is 7 + 2k, its content stream 8 + 2k.
_CATALOG, _PAGES, _INFO = 1, 2, 3
_FONTS = (("F1", "Helvetica-Bold", 4), ("F2", "Courier", 5), ("F3", "Helvetica", 6))
_FIRST_PAGE = 7

_BINARY_MARKER = b"%\xe2\xe3\xcf\xd3\n"
"""A comment with high bytes, so transfer tools treat the file as binary (PDF 1.4, 3.4.1)."""


@dataclass(frozen=True, slots=True)
class _Row:
    """One line as drawn: font resource, size, the height it takes, printable text."""

    font: str
    size: int
    leading: int
    text: str


def printable(text: str) -> str:
    """``text`` as the page shows it: no control characters, only Windows-1252 characters.

    Composed first (NFC), so an ``e`` with a combining accent stays ``é`` instead of ``e?``; a
    tab becomes a space (it separates words, and removing it would glue them); every other control
    character, line breaks included, is removed; the rest outside Windows-1252 becomes ``?``.
    """
    text = unicodedata.normalize("NFC", text).replace("\t", " ")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc")
    return text.encode("cp1252", errors="replace").decode("cp1252")


def _courier_width(_: str) -> int:
    return _COURIER_WIDTH


def _helvetica_bold_width(ch: str) -> int:
    return _HELVETICA_BOLD[ch.encode("cp1252")[0] - 0x20]


def _fitting(text: str, limit: float, char_width: Callable[[str], float]) -> int:
    """How many leading characters of ``text`` fit in ``limit``; at least one, to make progress."""
    used = 0.0
    for i, ch in enumerate(text):
        used += char_width(ch)
        if used > limit:
            return max(i, 1)
    return len(text)


def wrap_line(text: str, limit: float, char_width: Callable[[str], float]) -> list[str]:
    """``text`` cut into rows no wider than ``limit``, breaking at a space where one fits.

    ``char_width`` gives one character's width in the unit of ``limit``. A word longer than a
    row is cut where the row is full, since a hash or a device id has no space to break at. The
    spaces at a break are dropped; leading spaces of the first row (indentation) are kept. Only a
    single character wider than ``limit`` can exceed it, as a row of its own.
    """
    rows: list[str] = []
    while True:
        n = _fitting(text, limit, char_width)
        if n >= len(text):
            rows.append(text)
            return rows
        space = text.rfind(" ", 0, n + 1)
        if space > 0 and text[:space].strip(" "):
            rows.append(text[:space].rstrip(" "))
            text = text[space + 1 :].lstrip(" ")
        else:
            rows.append(text[:n])
            text = text[n:]
        if not text:
            return rows


def _rows(title: str, lines: Sequence[str]) -> list[_Row]:
    """The title rows (wrapped in Helvetica-Bold), a blank line, then the body rows (Courier)."""
    rows: list[_Row] = []
    title = printable(title)
    if title:
        limit = TEXT_WIDTH * _EM / TITLE_SIZE
        for text in wrap_line(title, limit, _helvetica_bold_width):
            rows.append(_Row("F1", TITLE_SIZE, TITLE_LEADING, text))
        rows.append(_Row("F2", BODY_SIZE, BODY_LEADING, ""))
    limit = TEXT_WIDTH * _EM / BODY_SIZE
    for line in lines:
        for text in wrap_line(printable(line), limit, _courier_width):
            rows.append(_Row("F2", BODY_SIZE, BODY_LEADING, text))
    return rows


def _paginate(rows: Sequence[_Row]) -> list[list[tuple[int, _Row]]]:
    """Rows placed on pages as ``(baseline y, row)``; always at least one (maybe empty) page."""
    top = PAGE_HEIGHT - MARGIN
    pages: list[list[tuple[int, _Row]]] = [[]]
    cursor = top
    for row in rows:
        if cursor - row.leading < MARGIN and pages[-1]:
            pages.append([])
            cursor = top
        pages[-1].append((cursor - row.size, row))
        cursor -= row.leading
    return pages


def _literal(text: str) -> str:
    """A PDF literal string of Windows-1252 text: ``(``, ``)`` and ``\\`` escaped, and every
    byte outside printable ASCII as a three-digit octal escape, so the stream stays ASCII."""
    out = []
    for byte in text.encode("cp1252"):
        if byte in b"()\\":
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return "(" + "".join(out) + ")"


def _num(value: float) -> str:
    """A PDF number with at most two decimals and no trailing zeros (``277.5``, ``783``)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _footer(number: int, count: int) -> str:
    """The centred "Page i of n" line, in Helvetica 8 pt."""
    text = f"Page {number} of {count}"
    width = sum(_FOOTER_WIDTHS.get(ch, _DIGIT_WIDTH) for ch in text) * FOOTER_SIZE / _EM
    x = (PAGE_WIDTH - width) / 2
    return f"/F3 {FOOTER_SIZE} Tf 1 0 0 1 {_num(x)} {FOOTER_BASELINE} Tm {_literal(text)} Tj"


def _content(placed: Sequence[tuple[int, _Row]], number: int, count: int) -> bytes:
    """One page's content stream: each row positioned absolutely, then the footer."""
    ops = ["BT"]
    font: tuple[str, int] | None = None
    for y, row in placed:
        if not row.text:
            continue
        if font != (row.font, row.size):
            font = (row.font, row.size)
            ops.append(f"/{row.font} {row.size} Tf")
        ops.append(f"1 0 0 1 {MARGIN} {y} Tm {_literal(row.text)} Tj")
    ops += [_footer(number, count), "ET"]
    return "\n".join(ops).encode("ascii")


def _info_string(text: str) -> str:
    """A PDF text string for the document information dictionary.

    Unlike page text it keeps every character (a viewer shows it in its title bar): printable
    ASCII as a literal, anything else as UTF-16BE with a byte order mark, which PDF 1.4 defines
    for text strings. Control characters are removed; a lone surrogate becomes ``?``.
    """
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc")
    if text.isascii():
        return _literal(text)
    return "<FEFF" + text.encode("utf-16-be", errors="replace").hex().upper() + ">"


def _pdf_date(when: datetime) -> str:
    """``D:YYYYMMDDHHmmSS+00'00'`` in UTC, like every other time the station writes.

    Raises:
        ValueError: ``when`` is naive; its zone would be a guess, and an audit time must not be.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("created must be timezone-aware")
    return when.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")


def _info(title: str, author: str, created: datetime | None) -> bytes:
    entries = [f"/Title {_info_string(title)}"]
    if author:
        entries.append(f"/Author {_info_string(author)}")
    entries.append("/Producer (station)")
    if created is not None:
        entries.append(f"/CreationDate {_literal(_pdf_date(created))}")
    return ("<< " + " ".join(entries) + " >>").encode("ascii")


def _page(content_number: int) -> bytes:
    fonts = " ".join(f"/{name} {number} 0 R" for name, _, number in _FONTS)
    return (
        f"<< /Type /Page /Parent {_PAGES} 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}]"
        f" /Resources << /Font << {fonts} >> /ProcSet [/PDF /Text] >>"
        f" /Contents {content_number} 0 R >>"
    ).encode("ascii")


def _stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _font(base: str) -> bytes:
    return (
        f"<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>"
    ).encode("ascii")


def _objects(pages: Sequence[Sequence[tuple[int, _Row]]], info: bytes) -> list[bytes]:
    """Every object body in number order (object n is at index n - 1)."""
    page_numbers = [_FIRST_PAGE + 2 * k for k in range(len(pages))]
    kids = " ".join(f"{n} 0 R" for n in page_numbers)
    objects = [
        f"<< /Type /Catalog /Pages {_PAGES} 0 R >>".encode("ascii"),
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode("ascii"),
        info,
        *(_font(base) for _, base, _ in _FONTS),
    ]
    for k, placed in enumerate(pages):
        objects.append(_page(page_numbers[k] + 1))
        objects.append(_stream(_content(placed, k + 1, len(pages))))
    return objects


def _file(objects: Sequence[bytes]) -> bytes:
    """Header, numbered objects, a cross-reference table of their exact offsets, trailer."""
    out = bytearray(b"%PDF-1.4\n" + _BINARY_MARKER)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\n" % (
        len(objects) + 1,
        _CATALOG,
        _INFO,
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def text_pdf(
    title: str,
    lines: Sequence[str],
    *,
    author: str = "",
    created: datetime | None = None,
) -> bytes:
    """A4 PDF 1.4 of ``title`` and ``lines``, as many pages as they need.

    Each item of ``lines`` is one line of the report (an empty string is a blank line); a line
    too wide for the page is wrapped, at a space when there is one. ``author`` and ``title`` also
    go into the document information, with Producer ``station``; CreationDate only when
    ``created`` is given, so by default the same input gives the same bytes.

    Raises:
        TypeError: ``lines`` is a single string, which would otherwise print one character a line.
        ValueError: ``created`` is a naive datetime.
    """
    if isinstance(lines, str):
        raise TypeError("lines must be a sequence of lines, not one string")
    info = _info(title, author, created)
    pages = _paginate(_rows(title, lines))
    return _file(_objects(pages, info))
