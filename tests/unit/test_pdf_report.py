"""The dependency-free PDF writer: a structurally valid file (checked with a small stdlib reader,
not a PDF library), text that stays on the page, and hostile text drawn but never interpreted."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from station.domain.audit.pdf_report import (
    BODY_CHARS_PER_LINE,
    MARGIN,
    PAGE_HEIGHT,
    TEXT_WIDTH,
    printable,
    text_pdf,
    wrap_line,
)

# --- a tiny PDF reader, just enough for the files this writer makes --------------------------


def _xref(pdf: bytes) -> tuple[int, list[tuple[int, int]]]:
    """startxref's offset, and (object number, offset) of every in-use xref entry."""
    start = int(re.findall(rb"startxref\n(\d+)\n%%EOF\n$", pdf)[0])
    lines = pdf[start:].split(b"\n")
    assert lines[0] == b"xref"
    first, count = map(int, lines[1].split())
    entries = []
    for number, line in enumerate(lines[2 : 2 + count], start=first):
        assert len(line) + 1 == 20, "every xref entry is exactly 20 bytes"
        offset, _, kind = line.split(b" ")[:3]
        if kind == b"n":
            entries.append((number, int(offset)))
    return start, entries


def _object(pdf: bytes, number: int) -> bytes:
    match = re.search(rb"(?m)^%d 0 obj\n(.*?)\nendobj\n" % number, pdf, re.DOTALL)
    assert match is not None
    return match.group(1)


def _streams(pdf: bytes) -> list[bytes]:
    """Every stream's data, checking its /Length on the way."""
    found = re.findall(rb"<< /Length (\d+) >>\nstream\n(.*?)\nendstream", pdf, re.DOTALL)
    for length, data in found:
        assert int(length) == len(data)
    return [data for _, data in found]


_ESCAPED = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}


def _read_literal(data: bytes, i: int) -> tuple[bytes, int]:
    """The decoded PDF literal string starting at ``data[i] == "("`` and the index past it.

    Follows the PDF rules: backslash escapes, octal codes, and balanced unescaped parentheses.
    """
    assert data[i : i + 1] == b"("
    out, depth, i = bytearray(), 1, i + 1
    while True:
        if i >= len(data):
            raise AssertionError("unterminated string: unbalanced parentheses")
        c = data[i]
        if c == ord("\\"):
            octal = re.match(rb"[0-7]{1,3}", data[i + 1 : i + 4])
            if octal:
                out.append(int(octal.group(), 8))
                i += 1 + len(octal.group())
                continue
            nxt = data[i + 1]
            out += _ESCAPED.get(nxt, bytes([nxt]))
            i += 2
            continue
        depth += (c == ord("(")) - (c == ord(")"))
        if depth == 0:
            return bytes(out), i + 1
        out.append(c)
        i += 1


def _shows(stream: bytes) -> list[tuple[str, float, str]]:
    """(font, baseline y, text) of every ``Tj`` in a content stream, in order."""
    shows = []
    font, y, i = "", 0.0, 0
    while i < len(stream):
        if stream[i : i + 1] == b"(":
            raw, i = _read_literal(stream, i)
            assert stream[i : i + 3] == b" Tj"
            shows.append((font, y, raw.decode("cp1252")))
            continue
        if stream[i : i + 1] == b")":
            raise AssertionError("unbalanced ')' outside a string")
        tail = stream[i:]
        if m := re.match(rb"/(F\d) \d+ Tf", tail):
            font = m.group(1).decode()
        elif m := re.match(rb"1 0 0 1 [\d.]+ ([\d.]+) Tm", tail):
            y = float(m.group(1))
        i += len(m.group()) if m else 1
    return shows


def _pages(pdf: bytes) -> list[list[tuple[str, float, str]]]:
    return [_shows(stream) for stream in _streams(pdf)]


def _body(pdf: bytes) -> list[str]:
    """The Courier text of all pages, one entry per drawn row."""
    return [text for page in _pages(pdf) for font, _, text in page if font == "F2"]


def _page_count(pdf: bytes) -> int:
    count = re.findall(rb"/Type /Pages /Kids \[[^\]]*\] /Count (\d+)", pdf)
    assert len(count) == 1
    return int(count[0])


# --- the file's structure ---------------------------------------------------------------------


def test_header_and_end() -> None:
    pdf = text_pdf("Audit summary", ["one line"])
    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.endswith(b"%%EOF\n")


def test_every_xref_offset_points_at_its_object() -> None:
    pdf = text_pdf("Audit summary", [f"line {n}" for n in range(200)], author="auditor")
    start, entries = _xref(pdf)
    assert [number for number, _ in entries] == list(range(1, len(entries) + 1))
    for number, offset in entries:
        assert pdf[offset:].startswith(b"%d 0 obj\n" % number)
    assert len(re.findall(rb"(?m)^\d+ 0 obj$", pdf)) == len(entries)
    size = int(re.findall(rb"trailer\n<< /Size (\d+) ", pdf)[0])
    assert size == len(entries) + 1
    assert pdf[start:].startswith(b"xref\n")


def test_trailer_names_catalog_and_info() -> None:
    pdf = text_pdf("Audit summary", [])
    root, info = map(int, re.findall(rb"/Root (\d+) 0 R /Info (\d+) 0 R", pdf)[0])
    assert _object(pdf, root).startswith(b"<< /Type /Catalog ")
    assert b"/Producer (station)" in _object(pdf, info)


def test_stream_lengths_are_exact_and_the_body_is_ascii() -> None:
    pdf = text_pdf("Zoë's summary", ["é ü ß €", "日本"])
    assert len(_streams(pdf)) == 1
    header_end = pdf.index(b"\n", pdf.index(b"\n") + 1) + 1
    assert pdf[header_end:].isascii()


def test_a_short_report_is_one_page_with_its_footer() -> None:
    pdf = text_pdf("Audit summary", ["a", "b"])
    assert _page_count(pdf) == 1
    (page,) = _pages(pdf)
    assert page[0] == ("F1", 778.0, "Audit summary")
    assert [text for _, _, text in page[1:]] == ["a", "b", "Page 1 of 1"]


def test_empty_report_still_has_a_page() -> None:
    pdf = text_pdf("", [])
    assert _page_count(pdf) == 1
    assert [text for _, _, text in _pages(pdf)[0]] == ["Page 1 of 1"]


def test_many_lines_make_several_pages_with_nothing_lost_or_off_the_page() -> None:
    lines = [f"{n:04d} alarm.acknowledge nurse.jones success" for n in range(300)]
    pdf = text_pdf("Audit summary", lines)
    pages = _pages(pdf)
    count = _page_count(pdf)
    assert count == len(pages) == len(re.findall(rb"/Type /Page\b", pdf))
    rows_per_page = (PAGE_HEIGHT - 2 * MARGIN) // 11
    assert count >= -(-300 // rows_per_page) >= 5
    assert _body(pdf) == lines
    for number, page in enumerate(pages, start=1):
        assert page[-1] == ("F3", 30.0, f"Page {number} of {count}")
        for _, y, _ in page[:-1]:
            assert MARGIN <= y <= PAGE_HEIGHT - MARGIN


def test_page_count_grows_with_lines() -> None:
    counts = [_page_count(text_pdf("t", ["x"] * n)) for n in (1, 60, 70, 140, 600)]
    assert counts == sorted(counts)
    assert counts[0] == 1
    assert counts[-1] >= 9


# --- wrapping ---------------------------------------------------------------------------------


def test_body_characters_per_line_fit_between_the_margins() -> None:
    courier_9pt = 0.6 * 9
    assert BODY_CHARS_PER_LINE * courier_9pt <= TEXT_WIDTH < (BODY_CHARS_PER_LINE + 1) * courier_9pt


def test_long_line_wraps_at_spaces_without_exceeding_the_width() -> None:
    words = [f"word{n}" for n in range(100)]
    rows = _body(text_pdf("t", [" ".join(words)]))
    assert len(rows) > 1
    assert all(len(row) <= BODY_CHARS_PER_LINE for row in rows)
    assert " ".join(rows).split(" ") == words


def test_a_word_longer_than_a_line_is_cut_where_the_line_is_full() -> None:
    digest = "0123456789abcdef" * 8
    rows = _body(text_pdf("t", [digest]))
    assert rows == [digest[:BODY_CHARS_PER_LINE], digest[BODY_CHARS_PER_LINE:]]


def test_long_title_wraps_within_the_width() -> None:
    title = "W" * 100
    page = _pages(text_pdf(title, []))[0]
    title_rows = [text for font, _, text in page if font == "F1"]
    widest = int(TEXT_WIDTH / (0.944 * 14))  # Helvetica-Bold "W" is 944/1000 em
    assert len(title_rows) > 1
    assert all(len(row) <= widest for row in title_rows)
    assert "".join(title_rows) == title


def test_wrap_line_breaks_at_the_last_space_that_fits() -> None:
    def unit(_: str) -> int:
        return 1

    assert wrap_line("aaa bbb ccc", 7, unit) == ["aaa bbb", "ccc"]
    assert wrap_line("aaa bbb ccc", 6, unit) == ["aaa", "bbb", "ccc"]
    assert wrap_line("abcdefghij", 4, unit) == ["abcd", "efgh", "ij"]
    assert wrap_line("  indented", 20, unit) == ["  indented"]
    assert wrap_line("    abcdefgh", 6, unit) == ["    ab", "cdefgh"]
    assert wrap_line("abc" + " " * 20, 5, unit) == ["abc"]
    assert wrap_line("", 5, unit) == [""]


def test_wrap_line_rows_never_exceed_the_limit() -> None:
    def width(ch: str) -> int:
        return 3 if ch in "mw" else 1

    text = "mmm www a bb ccc mwmwmwmwmwmw dddd e " * 20
    rows = wrap_line(text, 10, width)
    assert all(sum(width(ch) for ch in row) <= 10 for row in rows)
    assert "".join(rows).replace(" ", "") == text.replace(" ", "")


def test_wrap_line_makes_progress_on_a_character_wider_than_the_limit() -> None:
    assert wrap_line("ab", 0.5, lambda _: 1) == ["a", "b"]


# --- hostile text -----------------------------------------------------------------------------


def test_parentheses_and_backslashes_are_escaped() -> None:
    hostile = r"x) Tj ET BT (y \ ((( \) z"
    pdf = text_pdf(hostile, [hostile, "(", ")", "\\"])
    (page,) = _pages(pdf)
    texts = [text for _, _, text in page]
    assert texts == [hostile, hostile, "(", ")", "\\", "Page 1 of 1"]
    stream = _streams(pdf)[0]
    assert b"\\(" in stream
    assert b"\\)" in stream
    assert b"\\\\" in stream


def test_text_outside_windows_1252_becomes_question_marks() -> None:
    assert _body(text_pdf("t", ["日本", "ok 🚑 ok", "sep\u2028arator"])) == [
        "??",
        "ok ? ok",
        "sep?arator",
    ]


def test_windows_1252_text_is_kept() -> None:
    text = "Zoë Müller € – “quoted” ½"
    assert _body(text_pdf("t", [text])) == [text]
    assert printable("e\u0301") == "é"


def test_control_characters_are_removed_so_no_line_can_be_forged() -> None:
    rows = _body(text_pdf("t", ["nurse\nseq 9 forged\r\x00\x07\x1b[31m\x85", "a\tb"]))
    assert rows == ["nurseseq 9 forged[31m", "a b"]


def test_title_keeps_its_characters_in_the_document_information() -> None:
    pdf = text_pdf("Audit 日本", [], author="Zoë")
    info = _object(pdf, 3)
    expected_title = "Audit 日本".encode("utf-16-be").hex().upper()
    assert f"/Title <FEFF{expected_title}>".encode() in info
    assert f"/Author <FEFF{'Zoë'.encode('utf-16-be').hex().upper()}>".encode() in info
    ascii_pdf = text_pdf("Summary (draft)", [], author="a\\b")
    assert b"/Title (Summary \\(draft\\))" in ascii_pdf
    assert b"/Author (a\\\\b)" in ascii_pdf


def test_a_single_string_is_not_taken_for_lines() -> None:
    with pytest.raises(TypeError):
        text_pdf("t", "not a list")


# --- determinism ------------------------------------------------------------------------------


def test_same_input_gives_the_same_bytes() -> None:
    lines = [f"line {n} (é) \\ 日本" for n in range(150)]
    assert text_pdf("Audit", lines, author="a") == text_pdf("Audit", lines, author="a")
    assert text_pdf("Audit", lines) != text_pdf("Audit", [*lines, "more"])
    assert b"CreationDate" not in text_pdf("Audit", lines)


def test_creation_date_is_written_in_utc_when_given() -> None:
    cet = timezone(timedelta(hours=1))
    created = datetime(2026, 11, 22, 11, 0, 5, tzinfo=cet)
    pdf = text_pdf("Audit", ["x"], created=created)
    assert b"/CreationDate (D:20261122100005+00'00')" in pdf
    assert pdf == text_pdf("Audit", ["x"], created=created.astimezone(UTC))


def test_naive_creation_date_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        text_pdf("Audit", ["x"], created=datetime(2026, 11, 22, 10, 0))
