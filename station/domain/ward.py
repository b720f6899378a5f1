"""Which device feeds which bed, and which devices wait for an admin.

Beds are numbered 1…N. A device reaches a bed in one of three ways, in this order:

1. pinned in ``[ward] devices`` by the admin who wrote the config (trusted, never signing);
2. onboarded in the device registry (:class:`~station.domain.devices.DeviceBook`) to a bed;
3. under ``[devices] admission = "open"`` only: the next free bed in order of arrival (the demo
   and trial wards).

Any other device reaches no bed: it is listed in :attr:`Ward.unassigned` with when it was first
and last seen and how often, for an admin to onboard. A revoked device never gets a bed here; the
core refuses its messages before they are routed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from station.domain.devices import DeviceBook

MAX_UNASSIGNED = 256
"""Devices listed for an admin at once. Random ids from a hostile client must not grow memory or
the panel without limit: past this, the least recently heard are dropped from the list (they
come back if they speak again) and counted in :attr:`Ward.unassigned_dropped`."""


def bed_labels(beds: int, prefix: str = "Bed ") -> tuple[str, ...]:
    """The labels of a ward's beds, in order: the one place they are spelt."""
    return tuple(f"{prefix}{n}" for n in range(1, beds + 1))


@dataclass(frozen=True, slots=True)
class Unassigned:
    """A device whose messages reach no bed. ``onboarded``: known but parked (released)."""

    device_id: str
    first_seen: float
    last_seen: float
    count: int
    onboarded: bool = False


class Ward:
    """Bed assignments. Owned by the core thread."""

    def __init__(
        self,
        beds: int,
        fixed: Mapping[str, int],
        prefix: str = "Bed ",
        *,
        admission: str = "open",
        book: DeviceBook | None = None,
    ) -> None:
        self.labels = bed_labels(beds, prefix)
        self.admission = admission
        self._fixed: dict[str, str] = {}
        for device, number in fixed.items():
            if not 1 <= number <= beds:
                raise ValueError(f"ward.devices.{device}: bed {number} is not in 1…{beds}")
            self._fixed[device] = self.labels[number - 1]
        self._book = book or DeviceBook()
        self._auto: dict[str, str] = {}  # open admission: device → bed taken on first sight
        self.unassigned: dict[str, Unassigned] = {}  # least recently heard first
        self.unassigned_dropped = 0

    @property
    def book(self) -> DeviceBook:
        """The registry snapshot in force."""
        return self._book

    def pinned(self, bed: str) -> str | None:
        """The device the config pins to ``bed``, if any (the registry cannot take that bed)."""
        for device, label in self._fixed.items():
            if label == bed:
                return device
        return None

    def set_book(self, book: DeviceBook) -> dict[str, tuple[str | None, str | None]]:
        """Put a new registry snapshot in force; returns device → (old bed, new bed) for every
        device whose bed changed, so the caller can end alarms and audit the moves."""
        before = {d: self.assigned(d) for d in {*self._auto, *self._book.records, *book.records}}
        self._book = book
        registry_beds = {r.bed for r in book.records.values() if r.active and r.bed}
        # A bed the registry now gives to an onboarded device is no longer an open-admission one.
        self._auto = {
            d: b for d, b in self._auto.items() if b not in registry_beds and d not in book.records
        }
        for device in book.records:
            entry = self.unassigned.get(device)
            if entry is not None:
                if self.assigned(device) is not None:
                    del self.unassigned[device]
                else:
                    self.unassigned[device] = replace(entry, onboarded=True)
        after = {d: self.assigned(d) for d in before}
        return {d: (before[d], after[d]) for d in before if before[d] != after[d]}

    def routed(self) -> frozenset[str] | None:
        """The devices that reach a bed now; None under open admission, where any device may
        take the next free bed (the live feed drops the others before parsing them)."""
        if self.admission == "open":
            return None
        on_beds = (d for d in self._book.records if self.assigned(d) is not None)
        return frozenset((*self._fixed, *on_beds))

    def assigned(self, device_id: str) -> str | None:
        """The device's bed if it has one; never assigns."""
        fixed = self._fixed.get(device_id)
        if fixed is not None:
            return fixed
        rec = self._book.get(device_id)
        if rec is not None:
            # A bed the config pins to another device is never shared: two streams on one tile.
            usable = rec.active and rec.bed and rec.bed not in self._fixed.values()
            return rec.bed if usable else None
        return self._auto.get(device_id)

    def bed_of(self, device_id: str, at: float = 0.0) -> str | None:
        """The bed a message of the device goes to (open admission assigns one on first
        sight); None when it reaches no bed, and the device is then listed as unassigned."""
        bed = self.assigned(device_id)
        if bed is not None:
            return bed
        rec = self._book.get(device_id)
        if self.admission == "open" and rec is None:
            taken = {*self._fixed.values(), *self._auto.values()}
            taken.update(r.bed for r in self._book.records.values() if r.active and r.bed)
            for label in self.labels:
                if label not in taken:
                    self._auto[device_id] = label
                    self.unassigned.pop(device_id, None)
                    return label
        entry = self.unassigned.pop(device_id, None)
        if entry is None:
            entry = Unassigned(device_id, at, at, 0, rec is not None)
            if len(self.unassigned) >= MAX_UNASSIGNED:
                del self.unassigned[next(iter(self.unassigned))]
                self.unassigned_dropped += 1
        self.unassigned[device_id] = replace(entry, last_seen=at, count=entry.count + 1)
        return None

    def device_of(self, bed: str) -> str | None:
        """The device feeding a bed, if any."""
        pinned = self.pinned(bed)
        if pinned is not None:
            return pinned
        rec = self._book.on_bed(bed)
        if rec is not None:
            return rec.device_id
        for device, label in self._auto.items():
            if label == bed:
                return device
        return None


@dataclass(frozen=True, slots=True)
class BedPolicy:
    """What the patient in a bed allows, and whether the bed is monitored.

    ``standby``: not monitored: values are stored but neither shown nor alarmed (and no "No
    data"): no patient since a discharge, or ``suspended``.
    ``store``: points may go to the historian (the patient's storage consent; a bed without an
    admitted patient is anonymous and stored as before).
    ``suspended``: why a nurse suspended monitoring of a patient who stays on the ward but is
    off the monitor (a procedure, off the unit); empty when not suspended.
    """

    standby: bool = False
    store: bool = True
    patient: str = ""  # the admitted patient's pseudonym ("" for none): limits follow it
    suspended: str = ""


MONITORED = BedPolicy()
