"""Where a PV1-3 location is on the ward (bed number or label by default, an ``[adt] beds``
table, units of this ward), and what the feed keeps in memory: the census for the admit dialog
and the journal for the admin."""

from __future__ import annotations

from datetime import date

import pytest

from station.domain.adt.beds import BedMap
from station.domain.adt.feed import AdtFeed, Announced, Census, Received
from station.domain.adt.requests import Location
from station.domain.ward import bed_labels

BEDS = bed_labels(4)


def at(poc: str, room: str, bed: str) -> Location:
    return Location(poc, room, bed)


@pytest.mark.parametrize("bed", ["3", "Bed 3", " bed  3 ", "BED 3"])
def test_the_bed_component_is_the_beds_number_or_label(bed: str) -> None:
    assert BedMap(BEDS).place(at("ICU", "101", bed)).bed == "Bed 3"


@pytest.mark.parametrize("bed", ["5", "0", "Bed 30", "3A", ""])
def test_a_bed_the_ward_does_not_have_is_unknown(bed: str) -> None:
    placed = BedMap(BEDS).place(at("ICU", "101", bed))
    assert placed.given
    assert placed.unknown
    assert placed.text == f"ICU/101/{bed or '-'}"


def test_no_location_is_nowhere() -> None:
    placed = BedMap(BEDS).place(Location())
    assert not placed.given
    assert not placed.unknown


def test_another_unit_is_elsewhere_this_wards_unit_is_mapped() -> None:
    beds = BedMap(BEDS, point_of_care=("ICU", "icu-step"))
    assert beds.place(at("ER", "1", "1")).elsewhere
    assert beds.place(at("ICU-STEP", "1", "2")).bed == "Bed 2"
    assert beds.place(at("ICU", "1", "9")).unknown


def test_a_table_maps_by_its_keys_only_the_most_specific_first() -> None:
    beds = BedMap(BEDS, table={"^101^": 1, "ICU^101^B": 2, "ICU^102": 3})
    assert beds.place(at("ICU", "101", "A")).bed == "Bed 1"
    assert beds.place(at("icu", "101", "b")).bed == "Bed 2"
    assert beds.place(at("ICU", "102", "anything")).bed == "Bed 3"
    assert beds.place(at("ICU", "103", "4")).unknown  # the bed number no longer counts


@pytest.mark.parametrize(("table", "words"), [({"^1^A": 5}, "bed 5"), ({"^^": 1}, "match all")])
def test_a_table_the_ward_does_not_fit_is_refused(table: dict[str, int], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        BedMap(BEDS, table=table)


def announced(mrn: str, name: str, bed: str | None = "Bed 1") -> Announced:
    return Announced(mrn, name, date(1950, 1, 2), bed, "A01", 1000.0)


def test_the_census_finds_by_mrn_prefix_or_name_words_newest_first() -> None:
    census = Census()
    census.announce(announced("MRN-1", "Ottilie Vandersloot"))
    census.announce(announced("MRN-2", "Otto Vander"))
    census.announce(announced("X-9", "Ann Other"))
    assert [w.mrn for w in census.find("vander")] == ["MRN-2", "MRN-1"]
    assert [w.mrn for w in census.find("ott sloot")] == ["MRN-1"]
    assert [w.mrn for w in census.find("mrn-")] == ["MRN-2", "MRN-1"]
    assert [w.mrn for w in census.find("")] == ["X-9", "MRN-2", "MRN-1"]


def test_the_census_replaces_forgets_and_stays_bounded() -> None:
    census = Census(limit=3)
    census.announce(announced("MRN-1", "Old Name"))
    census.announce(announced("mrn-1", "New Name"))
    assert [w.name for w in census.find("")] == ["New Name"]
    census.forget("MRN-1")
    assert len(census) == 0
    for n in range(5):
        census.announce(announced(f"M{n}", f"Patient {n}"))
    assert [w.mrn for w in census.find("")] == ["M4", "M3", "M2"]


def test_an_announced_patient_shows_no_identity_in_its_repr() -> None:
    assert "Vandersloot" not in repr(announced("MRN-1", "Ottilie Vandersloot"))
    assert "MRN-1" not in repr(announced("MRN-1", "Ottilie Vandersloot"))


def test_the_feed_counts_the_days_messages_and_says_when_seen() -> None:
    feed = AdtFeed.empty()
    seen: list[bool] = []
    feed.on_seen = lambda: seen.append(True)
    noon = 1_700_000_000.0
    for n in range(3):
        feed.record(Received(noon + n, "A01", f"C{n}", "Bed 1", "AA", "applied", ""))
    assert feed.today(noon + 10) == 3
    assert feed.today(noon + 3 * 86400) == 0
    assert feed.version == 3
    assert len(feed.journal.entries()) == 3
    feed.seen()
    assert seen == [True]
