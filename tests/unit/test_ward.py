"""Unit tests of :class:`station.domain.ward.Ward`: which device feeds which bed.

Devices listed in ``[ward] devices`` take their bed; any other device takes the next free bed in
order of arrival (open admission); a device that finds the ward full gets no bed and is counted.
Under onboarded admission only pinned and onboarded devices reach a bed.
"""

from __future__ import annotations

import base64

import pytest

from station.domain.devices import DeviceBook, DeviceRecord
from station.domain.ward import Unassigned, Ward

KEY = base64.b64encode(bytes(range(32))).decode()


def _record(device: str, bed: str, voucher: str = "") -> DeviceRecord:
    return DeviceRecord(
        device_id=device,
        model="M1",
        serial="S1",
        manufacturer="Acme",
        public_key=KEY,
        bed=bed,
        signing=False,
        voucher_id=voucher or f"v-{device}",
        onboarded_at=1.0,
        onboarded_by="admin",
    )


def test_labels_use_prefix_and_number_from_one() -> None:
    assert Ward(3, {}).labels == ("Bed 1", "Bed 2", "Bed 3")
    assert Ward(2, {}, prefix="ICU-").labels == ("ICU-1", "ICU-2")
    assert Ward(2, {}, prefix="").labels == ("1", "2")


def test_fixed_mapping_honoured() -> None:
    ward = Ward(4, {"mon-a": 3, "mon-b": 1})
    assert ward.bed_of("mon-a") == "Bed 3"
    assert ward.bed_of("mon-b") == "Bed 1"
    assert ward.device_of("Bed 3") == "mon-a"
    assert ward.device_of("Bed 1") == "mon-b"


def test_fixed_bed_is_reserved_before_its_device_arrives() -> None:
    ward = Ward(3, {"mon-late": 1})
    assert ward.bed_of("x") == "Bed 2"
    assert ward.bed_of("y") == "Bed 3"
    assert ward.bed_of("z") is None
    assert ward.bed_of("mon-late") == "Bed 1"


def test_others_take_next_free_bed_in_arrival_order() -> None:
    ward = Ward(5, {"fixed": 2})
    assert [ward.bed_of(d) for d in ("c", "a", "b")] == ["Bed 1", "Bed 3", "Bed 4"]
    # Asking again gives the same bed; it does not move a device on.
    assert [ward.bed_of(d) for d in ("b", "a", "c")] == ["Bed 4", "Bed 3", "Bed 1"]
    assert ward.bed_of("fixed") == "Bed 2"
    assert ward.bed_of("d") == "Bed 5"
    assert ward.unassigned == {}


def test_full_ward_returns_none_and_counts() -> None:
    ward = Ward(2, {})
    assert ward.bed_of("a") == "Bed 1"
    assert ward.bed_of("b") == "Bed 2"
    assert ward.bed_of("c", at=10.0) is None
    assert ward.bed_of("c", at=12.0) is None
    assert ward.bed_of("d", at=11.0) is None
    assert ward.unassigned == {
        "c": Unassigned("c", 10.0, 12.0, 2),
        "d": Unassigned("d", 11.0, 11.0, 1),
    }
    # The assigned devices keep their beds, and a full ward never reassigns them.
    assert (ward.bed_of("a"), ward.bed_of("b")) == ("Bed 1", "Bed 2")
    assert ward.device_of("Bed 1") == "a"
    assert {d: u.count for d, u in ward.unassigned.items()} == {"c": 2, "d": 1}


@pytest.mark.parametrize(
    ("beds", "number"),
    [(4, 0), (4, 5), (4, -1), (1, 2)],
    ids=["zero", "past-last", "negative", "single-bed"],
)
def test_bad_fixed_bed_number_names_device(beds: int, number: int) -> None:
    with pytest.raises(ValueError, match="mon-7") as info:
        Ward(beds, {"ok": 1, "mon-7": number})
    assert str(number) in str(info.value)
    assert "ward.devices" in str(info.value)


@pytest.mark.parametrize("number", [1, 4], ids=["first", "last"])
def test_fixed_bed_number_at_bounds_accepted(number: int) -> None:
    assert Ward(4, {"mon-7": number}).bed_of("mon-7") == f"Bed {number}"


def test_device_of_unknown_or_empty_bed() -> None:
    ward = Ward(3, {"mon-a": 2})
    assert ward.device_of("Bed 1") is None
    assert ward.device_of("Bed 9") is None
    assert ward.device_of("") is None
    assert ward.device_of("Bed 2") == "mon-a"


def test_device_of_follows_dynamic_assignment() -> None:
    ward = Ward(2, {}, prefix="Room ")
    assert ward.device_of("Room 1") is None
    assert ward.bed_of("dev-x") == "Room 1"
    assert ward.device_of("Room 1") == "dev-x"


def test_assigned_looks_up_without_assigning() -> None:
    ward = Ward(2, {"pinned": 2})
    assert ward.assigned("stranger") is None
    assert ward.assigned("pinned") == "Bed 2"
    assert ward.bed_of("stranger") == "Bed 1"  # only bed_of hands out a bed
    assert ward.assigned("stranger") == "Bed 1"


def test_onboarded_admission_parks_unknown_devices() -> None:
    book = DeviceBook().onboard(_record("mon-a", "Bed 2"))
    ward = Ward(3, {"wired": 1}, admission="onboarded", book=book)
    assert ward.bed_of("wired") == "Bed 1"
    assert ward.bed_of("mon-a") == "Bed 2"
    assert ward.bed_of("stranger", at=5.0) is None
    assert ward.bed_of("stranger", at=7.0) is None
    assert ward.unassigned == {"stranger": Unassigned("stranger", 5.0, 7.0, 2)}
    assert ward.device_of("Bed 3") is None


def test_onboarding_a_parked_device_gives_it_its_bed() -> None:
    ward = Ward(3, {}, admission="onboarded")
    assert ward.bed_of("mon-a", at=1.0) is None
    moves = ward.set_book(DeviceBook().onboard(_record("mon-a", "Bed 3")))
    assert moves == {"mon-a": (None, "Bed 3")}
    assert ward.bed_of("mon-a") == "Bed 3"
    assert ward.unassigned == {}


def test_reassign_and_revoke_move_the_device() -> None:
    book = DeviceBook().onboard(_record("mon-a", "Bed 1"))
    ward = Ward(3, {}, admission="onboarded", book=book)
    assert ward.set_book(book.reassign("mon-a", "Bed 2", "admin", 2.0)) == {
        "mon-a": ("Bed 1", "Bed 2")
    }
    assert ward.set_book(ward.book.revoke("mon-a", "admin", 3.0)) == {"mon-a": ("Bed 2", None)}
    assert ward.assigned("mon-a") is None
    assert ward.bed_of("mon-a", at=4.0) is None  # a revoked device never takes a bed


def test_parked_onboarded_device_is_listed_as_onboarded() -> None:
    book = DeviceBook().onboard(_record("mon-a", ""))
    ward = Ward(2, {}, admission="open", book=book)
    assert ward.bed_of("mon-a", at=1.0) is None  # known, released: open admission does not place it
    assert ward.unassigned["mon-a"].onboarded


def test_registry_bed_wins_over_open_admission() -> None:
    ward = Ward(2, {}, admission="open")
    assert ward.bed_of("walk-in") == "Bed 1"
    moves = ward.set_book(DeviceBook().onboard(_record("mon-a", "Bed 1")))
    assert moves == {"walk-in": ("Bed 1", None), "mon-a": (None, "Bed 1")}
    assert ward.bed_of("walk-in") == "Bed 2"
