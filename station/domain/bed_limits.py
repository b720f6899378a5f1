"""A bed's alarm limits in force, who they belong to, and how the ward reads them.

Why a record of its own: limits a nurse set for a patient are clinical state. They must survive a
restart (saving Settings needs one) and follow the patient on a transfer, so the core keeps them
under an *owner*: the admitted patient's pseudonym where there is one, else the bed itself (a
ward without admissions, the demo). The tile and the detail view show them, so nobody has to
open a dialog to learn whether HR 125 on this bed is inside its limits.

Pure: no Qt, no I/O. :mod:`station.services.storage.bed_limits_file` keeps them on disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from station.domain.alarms import AlarmLimits


def owner_of(bed: str, patient: str) -> str:
    """Whose limits these are: the patient's (they follow them) or, with none admitted, the
    bed's."""
    return f"patient:{patient}" if patient else f"bed:{bed}"


@dataclass(frozen=True, slots=True)
class BedLimits:
    """The limits in force on a bed. ``own``: set for this bed (or its patient) rather than the
    ward's defaults; ``profile``: the profile they started from (None: typed in, or the ward's)."""

    limits: Mapping[str, AlarmLimits] = field(default_factory=dict)
    own: bool = False
    profile: str | None = None

    @property
    def source(self) -> str:
        """Where the limits come from, as the ward reads it: ``ward``, ``custom`` or the
        profile's name."""
        if not self.own:
            return "ward"
        return self.profile or "custom"


@dataclass(frozen=True, slots=True)
class SavedLimits:
    """One owner's limits as kept across restarts, with who set them and when."""

    bed: str
    limits: Mapping[str, AlarmLimits]
    profile: str | None
    by: str
    at: float

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (limits as their model dumps, priorities as their values)."""
        return {
            "bed": self.bed,
            "profile": self.profile,
            "by": self.by,
            "at": self.at,
            "limits": {p: lim.model_dump(mode="json") for p, lim in self.limits.items()},
        }

    @classmethod
    def from_json(cls, data: object) -> SavedLimits:
        """Read one entry back, as strictly as a profile file.

        Raises:
            ValueError: not an entry of this shape, an unknown parameter, or invalid limits.
        """
        if not isinstance(data, dict):
            raise ValueError("entry is not an object")
        bed, profile, by, at = data.get("bed"), data.get("profile"), data.get("by"), data.get("at")
        raw = data.get("limits")
        if not isinstance(bed, str) or not isinstance(by, str) or not isinstance(raw, dict):
            raise ValueError("entry lacks bed, by or limits")
        if profile is not None and not isinstance(profile, str):
            raise ValueError("profile is not a string")
        if not isinstance(at, (int, float)):
            raise ValueError("at is not a number")
        unknown = set(raw) - set(AlarmLimits.PARAMETERS)
        if unknown:
            raise ValueError(f"unknown parameter {sorted(unknown)[0]!r}")
        limits = {p: AlarmLimits.model_validate(v) for p, v in raw.items()}
        return cls(bed, limits, profile, by, float(at))


def _number(value: float) -> str:
    return f"{value:.1f}" if value % 1 else f"{value:.0f}"


def range_text(limits: Mapping[str, AlarmLimits], *params: str) -> str:
    """The alarm range of one parameter (``50–120``), or of two shown together (NIBP:
    ``90–160/40–90``); a side that does not alarm reads ``off``."""
    parts = []
    for param in params:
        lim = limits.get(param)
        if lim is None:
            parts.append("off")
            continue
        low = "off" if lim.low is None else _number(lim.low)
        high = "off" if lim.high is None else _number(lim.high)
        parts.append(f"{low}–{high}")
    return "/".join(parts)
