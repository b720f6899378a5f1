"""Typed values of the external contract (CONTRACT.md §1): what a device may send.

The models are strict on purpose: a clinical station must never guess what a device meant. A
number sent as a string, a boolean where a number belongs or an out-of-range value is a rejection,
not a coercion. Parsing from bytes (duplicate keys, NaN, size, timestamps against the clock) lives
in :mod:`station.domain.ingest`; these models hold the shape and the ranges.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

DEVICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"

# RFC 3339 date-time: full date, 'T' (or 't'/space is not allowed here), time with optional
# fraction, and a mandatory 'Z' or numeric offset. datetime.fromisoformat alone would also accept
# naive times and ISO basic format, which the contract excludes.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|z|[+-]\d{2}:\d{2})$",
)

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
Bpm = Annotated[float, Field(ge=0, le=300, allow_inf_nan=False)]
Mmhg = Annotated[float, Field(ge=0, le=300, allow_inf_nan=False)]
Celsius = Annotated[float, Field(ge=25, le=45, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]

_STRICT = ConfigDict(strict=True, frozen=True, extra="forbid")
_DERIVED = "__derived"


@dataclass(frozen=True, slots=True)
class _Derived:
    """What a payload's readers compute from it, computed once (see ``VitalsPayload._cached``)."""

    timestamp_s: float
    numeric: dict[str, float]


class BloodPressure(BaseModel):
    """Non-invasive blood pressure in mmHg; systolic can never be below diastolic."""

    model_config = _STRICT

    systolic: Mmhg
    diastolic: Mmhg

    @model_validator(mode="after")
    def _systolic_not_below_diastolic(self) -> BloodPressure:
        if self.systolic < self.diastolic:
            raise ValueError("systolic below diastolic")
        return self


class Location(BaseModel):
    """WGS84 position of a wearable, for home care."""

    model_config = _STRICT

    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class VitalsPayload(BaseModel):
    """One device message, exactly the contract's shape. Unknown top-level keys are dropped by
    ingest before validation (they are counted there), so the model itself forbids extras."""

    model_config = _STRICT

    device_id: DeviceId
    timestamp: datetime
    heartrate: Bpm | None = None
    bloodpressure: BloodPressure | None = None
    temperature: Celsius | None = None
    oxygen: Percent | None = None
    location: Location | None = None
    alert: Annotated[str, StringConstraints(max_length=64)] | None = None
    seq: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    battery: Percent | None = None
    sig: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None

    @field_validator("timestamp", mode="before")
    @classmethod
    def _rfc3339_with_offset(cls, value: object) -> datetime:
        # Strict mode would refuse a str for a datetime; the contract sends RFC 3339 text.
        if not isinstance(value, str) or not _RFC3339.match(value):
            raise ValueError("timestamp must be RFC 3339 text with 'Z' or an offset")
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
        if parsed.tzinfo is None:  # pragma: no cover - the pattern requires an offset
            raise ValueError("timestamp has no offset")
        return parsed

    @property
    def device_alert(self) -> str | None:
        """The device's own alert text, or None when it reports none."""
        if self.alert is None or self.alert.strip().lower() in {"", "none"}:
            return None
        return self.alert

    @property
    def timestamp_s(self) -> float:
        """The device's timestamp as UTC epoch seconds, computed once: ingest, the line, the
        trend sample and the order checks all ask for it."""
        return self._cached().timestamp_s

    def numeric_fields(self) -> dict[str, float]:
        """The historian's fields (CONTRACT §5): the numbers present, flattened.

        A new dict on every call (callers keep or change theirs), copied from one built on the
        first call: the record and live paths ask for it up to five times per message.
        """
        return dict(self._cached().numeric)

    def _cached(self) -> _Derived:
        # Kept in the instance's __dict__ under a name no field can have: pydantic compares,
        # hashes and dumps fields only, and the model is frozen, so it never goes stale. Not
        # functools.cached_property: on Python 3.11 its first access takes a lock shared by
        # every instance (~1.5 µs), and each payload is read only a few times.
        derived: _Derived | None = self.__dict__.get(_DERIVED)
        if derived is None:
            derived = _Derived(self.timestamp.timestamp(), self._numeric())
            self.__dict__[_DERIVED] = derived
        return derived

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, without the computed values when ``update`` changes fields."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop(_DERIVED, None)
        return copied

    def _numeric(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.heartrate is not None:
            out["heartrate"] = self.heartrate
        if self.bloodpressure is not None:
            out["systolic"] = self.bloodpressure.systolic
            out["diastolic"] = self.bloodpressure.diastolic
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.oxygen is not None:
            out["oxygen"] = self.oxygen
        if self.location is not None:
            out["latitude"] = self.location.latitude
            out["longitude"] = self.location.longitude
        if self.battery is not None:
            out["battery"] = self.battery
        return out


@dataclass(frozen=True, slots=True)
class Accepted:
    """A payload that passed every rule, with where and when it arrived.

    ``received_at`` is the station's clock (UTC epoch seconds): ages and the no-data watch use it,
    so a device with a skewed clock cannot make stale data look fresh.
    """

    payload: VitalsPayload
    topic: str
    received_at: float
    unknown_keys: tuple[str, ...] = ()
    signed: bytes | None = None
    """With a ``sig``: the canonical JSON the device signed (the payload as sent, without
    ``sig``), for the core to check against the device's enrolled key."""

    @property
    def device_id(self) -> str:
        """The device that sent it (equal to the topic's device when the topic names one)."""
        return self.payload.device_id

    @property
    def device_time(self) -> float:
        """The device's timestamp as UTC epoch seconds."""
        return self.payload.timestamp_s


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused. Kept in the quarantine; never reaches a plot, alarm or historian.

    ``reason`` is a short stable code for counting (``oversize``, ``json``, ``duplicate_key``,
    ``non_finite``, ``too_deep``, ``schema``, ``timestamp_future``, ``spoofed``, ``encoding``);
    ``detail`` is for the admin reading the quarantine.
    """

    reason: str
    detail: str
    topic: str
    received_at: float
    device_id: str | None = None
    excerpt: str = ""
