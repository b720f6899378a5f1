"""Which device feeds which bed.

First cut of the ward model: beds are numbered 1…N; a device listed in ``[ward] devices`` takes
its bed, any other device the next free bed in order of arrival (``open`` admission, as in the
demo). A device that finds no free bed is unassigned and reaches no tile; it is counted so an admin
can see it. Onboarding and admission (issue 6) replace the open policy.
"""

from __future__ import annotations

from collections.abc import Mapping


def bed_labels(beds: int, prefix: str = "Bed ") -> tuple[str, ...]:
    """The labels of a ward's beds, in order: the one place they are spelt."""
    return tuple(f"{prefix}{n}" for n in range(1, beds + 1))


class Ward:
    """Bed assignments. Owned by the core thread."""

    def __init__(self, beds: int, fixed: Mapping[str, int], prefix: str = "Bed ") -> None:
        self.labels = bed_labels(beds, prefix)
        self._by_device: dict[str, str] = {}
        for device, number in fixed.items():
            if not 1 <= number <= beds:
                raise ValueError(f"ward.devices.{device}: bed {number} is not in 1…{beds}")
            self._by_device[device] = self.labels[number - 1]
        self.unassigned: dict[str, int] = {}

    def bed_of(self, device_id: str) -> str | None:
        """The device's bed, assigning the next free bed on first sight; None when full."""
        bed = self._by_device.get(device_id)
        if bed is not None:
            return bed
        taken = set(self._by_device.values())
        for label in self.labels:
            if label not in taken:
                self._by_device[device_id] = label
                return label
        self.unassigned[device_id] = self.unassigned.get(device_id, 0) + 1
        return None

    def assigned(self, device_id: str) -> str | None:
        """The device's bed if it has one; never assigns (for devices not yet trusted with a
        bed, e.g. one that has only sent messages the contract refuses)."""
        return self._by_device.get(device_id)

    def device_of(self, bed: str) -> str | None:
        """The device feeding a bed, if any."""
        for device, label in self._by_device.items():
            if label == bed:
                return device
        return None
