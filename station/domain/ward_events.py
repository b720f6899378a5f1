"""What the stations of one ward share besides alarm events: the names of technical alarms, and
ward events (a bed's limits changed at one station, applied at the others).

Why: several stations on one ward (the nurses' desk, the corridor, the doctors' room) must show
one ward. Physiological alarm ids already derive from the device time a condition began
(:func:`station.domain.alarms.alarm_id_for`), so an acknowledgement at one applies at all. A
technical alarm was named by the detecting station's clock, which no other station shares, and
a nurse's limit change stayed on the station where she made it. Here:

- :func:`technical_alarm_id` and :class:`TechnicalIds` name a device's technical alarm by the
  device time of its newest message, which every station of the ward received;
- :class:`LimitsChange` is the ward event a station publishes on
  ``healthcare/station/<id>/ward`` when a nurse changes a bed's limits, :class:`AudioPauseBed`
  the one for a bed's alarm audio paused or resumed there, and
  :func:`parse_ward_event` is the strict reading of a peer's (docs/two-stations.md has the
  schema), once :mod:`station.domain.peer_signature` has checked the sender's signature and
  taken its fields off;
- :meth:`TechnicalIds.shared` says which technical alarms are named alike on every station, the
  only ones another station may acknowledge here.

Pure: no Qt, no paho, no I/O. The core thread owns the objects made here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from station.domain.alarms import AlarmLimits
from station.domain.timefmt import iso_ms

WARD_EVENT_VERSION = 1
LIMITS_CHANGE = "limits_change"
AUDIO_PAUSE_BED = "audio_pause_bed"
MAX_BED_PAUSE_S = 600
MAX_WARD_EVENT_BYTES = 8192
"""A limits change of every parameter is about 1 KiB; anything far larger is refused unread."""
MAX_NAMED = 4096
"""Technical alarm keys whose last id :class:`TechnicalIds` keeps (the oldest go first)."""

USER_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
"""A user name as the station's accounts allow it (``accounts.NAME_PATTERN``): a limits change
needs a login, so an emergency acknowledger or free text can never be its author."""
EVENT_ID_PATTERN = r"^[0-9a-f]{16}$"
LABEL_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}$"

Parameter = Literal["heartrate", "oxygen", "systolic", "diastolic", "temperature"]


# -- technical alarm ids -------------------------------------------------------------------------


def technical_alarm_id(
    device_id: str, bed: str, parameter: str, anchor: float, station: str = ""
) -> str:
    """The id of a technical alarm.

    Each station detects a technical condition by its own clock (a silence after ten seconds of
    *its* monotonic time), so the detection time cannot name it across the ward. What the
    stations share is the device's data: a device's condition (no data, battery low, invalid
    data, a flagged clock or sequence) is anchored on the device time of the newest message
    the station evaluated from that device before the condition began (``station`` empty).
    Every station that received that message names the condition alike and shares its
    acknowledgement. The bed is part of the name: a device moved to another bed raises its
    alarms there afresh.

    Where nothing is shared, ``station`` is this station's id and ``anchor`` its clock: a
    condition of the station itself (its sound, its broker link, its stores: the device is
    empty) or a device it has not heard since it started. Such an id can never equal another
    station's, so a peer's acknowledgement never silences a condition it cannot see.
    """
    text = f"{station}|{device_id}|{bed}|technical|{parameter}|{round(anchor * 1000)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TechnicalIds:
    """Names new technical alarms (core thread).

    A new episode whose anchor equals the previous episode's of the same condition (a flag
    raised again with no good message in between, a device back on its bed) gets an id derived
    from the count of such repeats: the alarm history keeps episodes by id and must never fold
    two into one, and every station that saw the same episodes counts them alike.

    Args:
        station: this station's id, for conditions no other station shares.
        clock: the station's wall clock (epoch seconds), their anchor.
    """

    def __init__(self, station: str, clock: Callable[[], float]) -> None:
        self._station = station
        self._clock = clock
        self._last: dict[tuple[str, str], tuple[str, int]] = {}  # (device, param) → (base, n)
        self._shared: dict[str, None] = {}  # ids named as every station names them (in order)

    def name(self, device: str, bed: str, parameter: str, heard: float | None) -> str:
        """The id of a technical alarm being raised now; ``heard`` is the device time of the
        device's newest evaluated message (None: not heard since the start, or no device)."""
        if not device or heard is None:
            return technical_alarm_id(device, bed, parameter, self._clock(), self._station)
        base = technical_alarm_id(device, bed, parameter, heard)
        key = (device, parameter)
        last, repeats = self._last.pop(key, ("", -1))
        repeats = repeats + 1 if last == base else 0
        if len(self._last) >= MAX_NAMED:
            del self._last[next(iter(self._last))]
        self._last[key] = (base, repeats)
        name = base if not repeats else hashlib.sha256(f"{base}|{repeats}".encode()).hexdigest()
        return self._keep_shared(name[:16])

    def _keep_shared(self, alarm_id: str) -> str:
        self._shared.pop(alarm_id, None)
        if len(self._shared) >= MAX_NAMED:
            del self._shared[next(iter(self._shared))]
        self._shared[alarm_id] = None
        return alarm_id

    def shared(self, alarm_id: str) -> bool:
        """Whether ``alarm_id`` is a technical alarm named here as every station of the ward
        names it (a device's condition anchored on its data), so another station may
        acknowledge it. The station's own conditions (its sound, broker link, stores, clock,
        audit trail) and a device not heard since the start are named by this station alone:
        never shared. Of the shared ids only the newest :data:`MAX_NAMED` are kept; an older
        one reads as not shared, so a peer cannot acknowledge it (the nurse here still can)."""
        return alarm_id in self._shared


# -- ward events ---------------------------------------------------------------------------------


@runtime_checkable
class WardSink(Protocol):
    """What the core needs to tell the ward's other stations (the MQTT worker has it)."""

    def publish_ward(self, event: dict[str, object]) -> None:
        """Send one ward event (QoS 1, not retained); never raises."""


@dataclass(frozen=True, slots=True)
class WardMessage:
    """A ward event as it came from the broker, not yet read: handed from the ``mqtt`` thread to
    the core, which reads, counts and applies it in one place. ``station`` comes from the topic,
    which the broker's ACL ties to that station's credential; the payload never names it."""

    station: str
    payload: bytes


class LimitsChange(BaseModel):
    """A nurse changed a bed's alarm limits at the publishing station.

    ``limits`` are the bed's limits in force there after the change, every parameter, so a
    station whose ward defaults differ still ends with the same limits. No patient identity:
    stations apply it by bed label (CONTRACT §2: nothing about a patient leaves over MQTT).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Annotated[int, Field(ge=WARD_EVENT_VERSION, le=WARD_EVENT_VERSION)]
    kind: Literal["limits_change"]
    event_id: Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
    bed: Annotated[str, StringConstraints(pattern=LABEL_PATTERN)]
    profile: Annotated[str, StringConstraints(pattern=LABEL_PATTERN)] | None
    limits: Annotated[dict[Parameter, AlarmLimits], Field(min_length=1)]
    by: Annotated[str, StringConstraints(pattern=USER_PATTERN)]
    at: AwareDatetime

    @property
    def at_s(self) -> float:
        """When the nurse made the change, epoch seconds (the publishing station's clock)."""
        return self.at.timestamp()

    def limits_in_force(self) -> dict[str, AlarmLimits]:
        """The limits as the keeper takes them (parameter name → limits)."""
        return {str(parameter): lim for parameter, lim in self.limits.items()}


def limits_change_event(
    event_id: str,
    bed: str,
    limits: Mapping[str, AlarmLimits],
    profile: str | None,
    by: str,
    at: float,
) -> dict[str, object]:
    """The JSON object of a limits change, as :func:`parse_ward_event` reads it back."""
    return {
        "v": WARD_EVENT_VERSION,
        "kind": LIMITS_CHANGE,
        "event_id": event_id,
        "bed": bed,
        "profile": profile,
        "limits": {p: lim.model_dump(mode="json") for p, lim in limits.items()},
        "by": by,
        "at": iso_ms(at),
    }


class AudioPauseBed(BaseModel):
    """A nurse paused one bed's alarm audio at the publishing station (``seconds`` > 0: for how
    long from ``at``), or ended the pause (``seconds`` 0). Every station of the ward must stay
    as quiet, or as loud, for that bed as the one at the bedside decided."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Annotated[int, Field(ge=WARD_EVENT_VERSION, le=WARD_EVENT_VERSION)]
    kind: Literal["audio_pause_bed"]
    event_id: Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
    bed: Annotated[str, StringConstraints(pattern=LABEL_PATTERN)]
    seconds: Annotated[int, Field(ge=0, le=MAX_BED_PAUSE_S)]
    by: Annotated[str, StringConstraints(pattern=USER_PATTERN)]
    at: AwareDatetime

    def remaining(self, now: float) -> float:
        """Seconds of the pause left at ``now`` (never more than it was given for)."""
        return max(0.0, min(float(self.seconds), self.seconds - (now - self.at.timestamp())))


def audio_pause_event(
    event_id: str, bed: str, seconds: int, by: str, at: float
) -> dict[str, object]:
    """The JSON object of a bed's audio pause (``seconds`` 0: ended), as read back by
    :func:`parse_ward_event`."""
    return {
        "v": WARD_EVENT_VERSION,
        "kind": AUDIO_PAUSE_BED,
        "event_id": event_id,
        "bed": bed,
        "seconds": seconds,
        "by": by,
        "at": iso_ms(at),
    }


@dataclass(frozen=True, slots=True)
class WardRefusal:
    """Why a peer's ward event was not applied: ``reason`` is a short code for counting,
    ``detail`` says more for the log (never the payload itself)."""

    reason: str
    detail: str


class _UnreadableError(ValueError):
    """Raised by the JSON hooks: a duplicate key or a non-finite constant."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _UnreadableError(f"duplicate key {key[:32]!r}")
        seen[key] = value
    return seen


def _no_constants(name: str) -> float:
    raise _UnreadableError(f"{name} is not a JSON number")


def read_ward_json(raw: bytes) -> dict[str, Any] | WardRefusal:
    """The JSON object of a peer's ward event, read as strictly as a device's vitals: a size
    cap, no duplicate keys, no NaN; the signature check (:mod:`station.domain.peer_signature`)
    reads the event through here before its schema does. Never raises."""
    if len(raw) > MAX_WARD_EVENT_BYTES:
        return WardRefusal("too_large", f"{len(raw)} bytes")
    try:
        doc = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (_UnreadableError, ValueError, RecursionError) as exc:
        return WardRefusal("not_json", str(exc)[:200])
    if not isinstance(doc, dict):
        return WardRefusal("not_object", type(doc).__name__)
    return doc


def parse_ward_event(raw: bytes) -> LimitsChange | AudioPauseBed | WardRefusal:
    """Read a peer's ward event (without its signature fields) as strictly as a device's
    vitals: :func:`read_ward_json`, a known kind, and then the model in strict mode (``"72"``
    is not a number, ``true`` not a version). Never raises."""
    doc = read_ward_json(raw)
    if isinstance(doc, WardRefusal):
        return doc
    kind = doc.get("kind")
    model: type[LimitsChange] | type[AudioPauseBed]
    if kind == LIMITS_CHANGE:
        model = LimitsChange
    elif kind == AUDIO_PAUSE_BED:
        model = AudioPauseBed
    else:
        # A newer station's event is counted, not guessed at.
        return WardRefusal("unknown_kind", repr(kind)[:64])
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return WardRefusal("invalid", f"{where}: {first['msg']}"[:200])
