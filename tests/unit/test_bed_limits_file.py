"""The saved-limits file: what it writes reads back the same, and anything else is refused with
the file's name, never taken for "no saved limits"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from station.domain.alarms import AlarmLimits, Priority
from station.domain.bed_limits import BedLimits, SavedLimits, owner_of, range_text
from station.services.storage.bed_limits_file import BedLimitsError, BedLimitsFile

HR = AlarmLimits(low=45.5, high=130, priority=Priority.HIGH, delay_s=5, latching=True)


def test_saved_limits_read_back_as_written(tmp_path: Path) -> None:
    store = BedLimitsFile(tmp_path / "bed_limits.json")
    assert store.load() == {}
    saved = {
        owner_of("Bed 1", "p-7f3a"): SavedLimits(
            "Bed 1", {"heartrate": HR}, "neonatal", "ann", 5.0
        ),
        owner_of("Bed 2", ""): SavedLimits(
            "Bed 2", {"oxygen": AlarmLimits(low=90)}, None, "bo", 6.0
        ),
    }
    store.save(saved)
    assert store.load() == saved
    assert set(saved) == {"patient:p-7f3a", "bed:Bed 2"}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"format": 2, "owners": {}}',
        '{"format": 1}',
        '{"format": 1, "owners": {"bed:Bed 1": []}}',
        '{"format": 1, "owners": {"bed:Bed 1": {"bed": "Bed 1", "by": "a", "at": 1, "limits": '
        '{"pulse": {"low": 1}}}}}',
        '{"format": 1, "owners": {"bed:Bed 1": {"bed": "Bed 1", "by": "a", "at": 1, "limits": '
        '{"heartrate": {"low": 150, "high": 50}}}}}',
        '{"format": 1, "owners": {"bed:Bed 1": {"bed": "Bed 1", "by": "a", "at": "x", '
        '"limits": {}}}}',
    ],
)
def test_a_damaged_file_is_refused_with_its_name(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bed_limits.json"
    path.write_text(text)
    with pytest.raises(BedLimitsError, match=r"bed_limits\.json"):
        BedLimitsFile(path).load()


def test_the_file_holds_priorities_as_words(tmp_path: Path) -> None:
    path = tmp_path / "bed_limits.json"
    BedLimitsFile(path).save({"bed:Bed 1": SavedLimits("Bed 1", {"heartrate": HR}, None, "a", 1)})
    entry = json.loads(path.read_text())["owners"]["bed:Bed 1"]
    assert entry["limits"]["heartrate"]["priority"] == Priority.HIGH.value


def test_ranges_read_as_the_ward_reads_them() -> None:
    limits = {"heartrate": HR, "systolic": AlarmLimits(low=90, high=160)}
    assert range_text(limits, "heartrate") == "45.5–130"
    assert range_text(limits, "oxygen") == "off"
    assert range_text({"oxygen": AlarmLimits(low=90)}, "oxygen") == "90–off"
    assert range_text(limits, "systolic", "diastolic") == "90–160/off"
    assert BedLimits().source == "ward"
    assert BedLimits(limits, own=True).source == "custom"
    assert BedLimits(limits, own=True, profile="neonatal").source == "neonatal"
