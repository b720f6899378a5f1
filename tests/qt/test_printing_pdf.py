"""PDFs through Qt: any Unicode name prints as written, hostile text is shown and never
interpreted, long reports get numbered pages. Read back with poppler's ``pdftotext``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from station.services.printing.pdf import html_pdf, text_pdf

NAMES = ("Łukasz Wójcik", "Çağlar Öztürk", "Søren Ørsted", "Αλέξανδρος", "Иван Петров")


def pdf_text(data: bytes, tmp_path: Path, page: int | None = None) -> str:
    path = tmp_path / "out.pdf"
    path.write_bytes(data)
    pages = [] if page is None else ["-f", str(page), "-l", str(page)]
    done = subprocess.run(
        ["pdftotext", "-layout", *pages, str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def test_unicode_names_print_as_written(tmp_path: Path) -> None:
    data = text_pdf("Audit trail of Ward 1", [f"actor {n}" for n in NAMES], author=NAMES[0])
    assert data.startswith(b"%PDF-")
    text = pdf_text(data, tmp_path)
    for name in NAMES:
        assert f"actor {name}" in text
    assert "?" not in text
    info = subprocess.run(
        ["pdfinfo", str(tmp_path / "out.pdf")], check=True, capture_output=True, text=True
    )
    assert "Author:          Łukasz Wójcik" in info.stdout
    assert "Page size:       595" in info.stdout  # A4


def test_hostile_text_is_printed_not_interpreted(tmp_path: Path) -> None:
    forged = "dev-1\nseq 99  forged line"
    data = text_pdf("Summary", ["<b>bold?</b> & <img src=x>", forged])
    text = pdf_text(data, tmp_path)
    assert "<b>bold?</b> & <img src=x>" in text
    assert "dev-1seq 99 forged line" in text  # the line break is gone: no line of its own


def test_a_long_report_has_numbered_pages_and_wraps_wide_lines(tmp_path: Path) -> None:
    wide = "x" * 60 + " " + "y" * 200
    data = text_pdf("Summary", [f"line {i}" for i in range(300)] + [wide])
    first = pdf_text(data, tmp_path, page=1)
    assert "Page 1 of " in first
    pages = int(first.split("Page 1 of ")[1].split()[0])
    assert pages >= 3
    last = pdf_text(data, tmp_path, page=pages)
    assert f"Page {pages} of {pages}" in last
    assert "y" * 50 in last  # wrapped onto the page, not cut at its edge
    assert "line 299" in pdf_text(data, tmp_path)


def test_one_string_is_refused_as_lines() -> None:
    with pytest.raises(TypeError):
        text_pdf("t", "one string")  # type: ignore[arg-type]


def test_html_documents_keep_tables(tmp_path: Path) -> None:
    html = "<table><tr><td>HR</td><td>62–118</td></tr><tr><td>SpO₂</td><td>94–99</td></tr></table>"
    text = pdf_text(html_pdf("Report", html), tmp_path)
    assert "62–118" in text
    assert "SpO₂" in text
