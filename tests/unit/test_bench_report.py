"""The bench's report: medians over repeated runs, and the helpers' JSON read back."""

from __future__ import annotations

from station.bench.command import medians
from station.bench.rig import parse_last_json, pct, ratio


def test_medians_cover_every_numeric_figure_and_skip_text_and_flags() -> None:
    runs: list[dict[str, object]] = [
        {"rate": 10, "lag": 1.0, "ok": True, "name": "a", "p99": None, "drain": None},
        {"rate": 30, "lag": 3.0, "ok": False, "name": "b", "p99": 5.0, "drain": None},
        {"rate": 20, "lag": 2.0, "ok": True, "name": "c", "p99": 7.0, "drain": None},
    ]
    assert medians(runs) == {"rate": 20.0, "lag": 2.0, "p99": 6.0, "drain": None}


def test_a_helper_without_its_json_is_an_error_not_a_number() -> None:
    assert parse_last_json(b'noise\n{"published": 5}\n', 0) == {"published": 5}
    found = parse_last_json(b"", 1, b"Traceback\nOSError: boom\n")
    assert "error" in found
    assert "OSError: boom" in found["error"]


def test_percentiles_and_ratios_say_none_when_nothing_was_measured() -> None:
    assert pct([], 0.99) is None
    assert pct([3.0, 1.0, 2.0], 0.5) == 2.0
    assert ratio(5, 0) is None
    assert ratio(None, 3) is None
    assert ratio(1, 4) == 0.25
