"""What one ADT message asks of the station, and how a message is refused.

Why values of their own: the listener thread reads the message, the ward admin's worker decides
against the patient table, the GUI thread keeps the census; each gets these immutable values and
none re-reads the HL7. Identity (:class:`Person`) stays out of every ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import IntEnum, StrEnum


class Event(StrEnum):
    """The trigger events the station reads (MSH-9.2)."""

    ADMIT = "A01"
    TRANSFER = "A02"
    DISCHARGE = "A03"
    REGISTER = "A04"
    PRE_ADMIT = "A05"
    UPDATE = "A08"
    CANCEL_ADMIT = "A11"
    CANCEL_TRANSFER = "A12"
    CANCEL_DISCHARGE = "A13"

    @property
    def label(self) -> str:
        """``A02 transfer``: how the admin's view names it."""
        return f"{self.value} {_LABELS[self]}"


_LABELS = {
    Event.ADMIT: "admit",
    Event.TRANSFER: "transfer",
    Event.DISCHARGE: "discharge",
    Event.REGISTER: "register",
    Event.PRE_ADMIT: "pre-admit",
    Event.UPDATE: "update",
    Event.CANCEL_ADMIT: "cancel admit",
    Event.CANCEL_TRANSFER: "cancel transfer",
    Event.CANCEL_DISCHARGE: "cancel discharge",
}

ANNOUNCING = frozenset({Event.ADMIT, Event.TRANSFER, Event.REGISTER, Event.PRE_ADMIT, Event.UPDATE})
"""Events whose patient the admit dialog may then look up (the census)."""
CENSUS_ONLY = frozenset({Event.REGISTER, Event.PRE_ADMIT})
"""Events that change no bed: the patient is only announced."""


class ErrorCode(IntEnum):
    """HL7 table 0357 (message error condition codes), as ERR-3 carries them."""

    SEGMENT_SEQUENCE = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION = 203
    UNKNOWN_KEY = 204
    DUPLICATE_KEY = 205
    RECORD_LOCKED = 206
    INTERNAL_ERROR = 207

    @property
    def text(self) -> str:
        """The table's own words for the code (ERR-3.2)."""
        return _CODE_TEXT[self]


_CODE_TEXT = {
    ErrorCode.SEGMENT_SEQUENCE: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE: "Data type error",
    ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    ErrorCode.UNSUPPORTED_VERSION: "Unsupported version id",
    ErrorCode.UNKNOWN_KEY: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY: "Duplicate key identifier",
    ErrorCode.RECORD_LOCKED: "Application record locked",
    ErrorCode.INTERNAL_ERROR: "Application internal error",
}


class Refusal(Exception):  # noqa: N818  # a decision, not a fault: named for what it is
    """A message refused: ``ack`` AE (its content) or AR (its header: not for us, a version or
    type we do not take, not HL7 at all), with the table-0357 ``code``, the place (``where``: an
    ERL such as ``PV1^1^3``, empty when none) and the reason in words for the engine's operator
    and the admin. The reason never quotes a name, an MRN or a birth date."""

    def __init__(self, ack: str, code: ErrorCode, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.ack, self.code, self.reason, self.where = ack, code, reason, where


def content_error(code: ErrorCode, reason: str, where: str = "") -> Refusal:
    """An AE: the message is read, and what it asks cannot be done."""
    return Refusal("AE", code, reason, where)


def header_error(code: ErrorCode, reason: str, where: str = "") -> Refusal:
    """An AR: the message is not one this station takes at all."""
    return Refusal("AR", code, reason, where)


@dataclass(frozen=True, slots=True)
class Hd:
    """An HL7 hierarchic designator (MSH-3 to MSH-6), unescaped: namespace id, universal id
    and its type."""

    namespace: str = ""
    universal_id: str = ""
    universal_id_type: str = ""


@dataclass(frozen=True, slots=True)
class Header:
    """MSH as received, unescaped: what the checks read and the ACK swaps back."""

    sending_application: Hd = Hd()
    sending_facility: Hd = Hd()
    receiving_application: Hd = Hd()
    receiving_facility: Hd = Hd()
    control_id: str = ""
    processing_id: str = ""
    version: str = ""
    message_type: str = ""
    trigger: str = ""
    structure: str = ""


@dataclass(frozen=True, slots=True)
class Location:
    """PV1-3 or PV1-6 (PL): point of care ^ room ^ bed ^ facility, unescaped."""

    point_of_care: str = ""
    room: str = ""
    bed: str = ""
    facility: str = ""

    @property
    def empty(self) -> bool:
        """No component given."""
        return not (self.point_of_care or self.room or self.bed)

    def text(self) -> str:
        """``ICU/101/1``: for reasons and the admin's view (no HL7 delimiter in it)."""
        return "/".join(p or "-" for p in (self.point_of_care, self.room, self.bed))


@dataclass(frozen=True, slots=True, repr=False)
class Person:
    """PID as read: the MRN (PID-3, the repetition typed MR), name (PID-5) and birth date
    (PID-7); empty or None where the message gave none."""

    mrn: str
    name: str = ""
    birth_date: date | None = None

    def __repr__(self) -> str:
        return "Person(…)"  # identity never in a log line or a traceback


@dataclass(frozen=True, slots=True)
class AdtRequest:
    """One message read and validated: who sent it, what it asks, for whom and where."""

    header: Header
    event: Event
    person: Person
    location: Location
    prior: Location
    """PV1-6: where the patient was (A02), or the transfer being cancelled (A12)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """A location as the station sees it: one of its beds (``bed``), a place of another unit
    (``elsewhere``), a place on this ward it has no bed for, or no place given (``given``
    False)."""

    given: bool
    bed: str | None = None
    elsewhere: bool = False
    text: str = ""

    @property
    def unknown(self) -> bool:
        """Given, on this ward, and no bed of the station's."""
        return self.given and self.bed is None and not self.elsewhere


NOWHERE = Placement(given=False)


@dataclass(frozen=True, slots=True)
class PlacedRequest:
    """A request with its locations placed on the station's beds, and the actor it is made in
    the name of (``adt:<name>``)."""

    request: AdtRequest
    location: Placement
    prior: Placement
    actor: str

    @property
    def event(self) -> Event:
        return self.request.event
