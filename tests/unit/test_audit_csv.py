"""The audit trail's CSV export: what an auditor's spreadsheet reads must be what was recorded,
and no hostile text may become a second row or a formula."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from station.domain.audit.csv_export import CSV_COLUMNS, neutralise, records_csv

BOM = b"\xef\xbb\xbf"


def _record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "seq": 7,
        "ts": "2026-11-22T10:00:00.123Z",
        "actor": "nurse.jones",
        "role": "nurse",
        "action": "alarm.acknowledge",
        "target": "bed-3/spo2-low",
        "outcome": "success",
        "where": "station-1",
        "epoch": 1,
        "details": {"priority": "high", "note": "Zoë ✓", "count": 2},
        "prev": "0" * 64,
        "hash": "ab" * 32,
        "sig": "c2lnbmF0dXJl",
    }
    record.update(overrides)
    return record


def _rows(data: bytes) -> list[list[str]]:
    assert data.startswith(BOM)
    text = data[len(BOM) :].decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_starts_with_a_bom_and_an_exact_header_row() -> None:
    data = records_csv([])
    assert data == BOM + b"seq,ts,actor,role,action,target,outcome,where,details,hash\r\n"
    assert tuple(_rows(data)[0]) == CSV_COLUMNS


def test_rows_end_in_crlf() -> None:
    data = records_csv([_record(), _record(seq=8)])
    assert data.count(b"\r\n") == 3
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_cells_round_trip_through_csv_reader() -> None:
    record = _record()
    header, row = _rows(records_csv([record]))
    cells = dict(zip(header, row, strict=True))
    assert cells == {
        "seq": "7",
        "ts": "2026-11-22T10:00:00.123Z",
        "actor": "nurse.jones",
        "role": "nurse",
        "action": "alarm.acknowledge",
        "target": "bed-3/spo2-low",
        "outcome": "success",
        "where": "station-1",
        "details": '{"count":2,"note":"Zoë ✓","priority":"high"}',
        "hash": "ab" * 32,
    }


def test_details_is_compact_sorted_json_that_parses_back() -> None:
    details = {"z": [1, {"b": None, "a": 'x,y\n"q"'}], "a": "日本", "n": -1.5}
    row = _rows(records_csv([_record(details=details)]))[1]
    cell = row[CSV_COLUMNS.index("details")]
    assert json.loads(cell) == details
    assert cell == json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_hostile_actor_with_a_newline_stays_in_one_cell() -> None:
    """A forged second record inside a user name must not become a row of its own."""
    actor = 'x\n{"seq":9}'
    rows = _rows(records_csv([_record(actor=actor), _record(seq=8)]))
    assert len(rows) == 3
    assert rows[1][CSV_COLUMNS.index("actor")] == actor
    assert [r[0] for r in rows[1:]] == ["7", "8"]


@pytest.mark.parametrize(
    "text",
    [
        'a "quoted", comma',
        "line\r\nbreak",
        "lone\rcarriage",
        "sep\u2028arator",
        "bell\x07nul\x00",
        "Zoë 日本 🚑",
    ],
)
def test_awkward_text_round_trips_exactly(text: str) -> None:
    rows = _rows(records_csv([_record(target=text, where=text)]))
    assert len(rows) == 2
    assert rows[1][CSV_COLUMNS.index("target")] == text
    assert rows[1][CSV_COLUMNS.index("where")] == text


@pytest.mark.parametrize(
    "text",
    ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "-5"],
)
def test_formula_starts_get_an_apostrophe(text: str) -> None:
    rows = _rows(records_csv([_record(actor=text, action=text, hash=text)]))
    for column in ("actor", "action", "hash"):
        assert rows[1][CSV_COLUMNS.index(column)] == "'" + text


def test_safe_text_is_not_prefixed() -> None:
    for text in ("nurse", "a=b", " =1", "'quoted", ""):
        assert neutralise(text) == text


def test_integer_seq_is_never_prefixed_but_text_seq_is() -> None:
    rows = _rows(records_csv([_record(seq=-5), _record(seq="=1+1")]))
    assert rows[1][0] == "-5"
    assert rows[2][0] == "'=1+1"


def test_details_that_would_start_a_formula_are_neutralised() -> None:
    """A trail forged with a non-dict details must not slip a formula through the JSON cell."""
    rows = _rows(records_csv([_record(details=-1)]))
    assert rows[1][CSV_COLUMNS.index("details")] == "'-1"


def test_missing_keys_and_nulls_are_empty_cells() -> None:
    rows = _rows(records_csv([{"seq": 3}, {"actor": None, "details": None}]))
    assert rows[1] == ["3"] + [""] * (len(CSV_COLUMNS) - 1)
    assert rows[2] == [""] * len(CSV_COLUMNS)


def test_non_text_values_are_written_as_json_not_repr() -> None:
    rows = _rows(records_csv([_record(actor=["a", "b"], role=True, target=1.5)]))
    assert rows[1][CSV_COLUMNS.index("actor")] == '["a","b"]'
    assert rows[1][CSV_COLUMNS.index("role")] == "true"
    assert rows[1][CSV_COLUMNS.index("target")] == "1.5"


def test_lone_surrogate_does_not_stop_the_export() -> None:
    rows = _rows(records_csv([_record(actor="bad\ud800name")]))
    assert rows[1][CSV_COLUMNS.index("actor")] == "bad?name"


def test_accepts_any_iterable_of_mappings() -> None:
    data = records_csv(_record(seq=n) for n in range(1, 4))
    assert [row[0] for row in _rows(data)[1:]] == ["1", "2", "3"]
