"""An ADT message's text into an :class:`~station.domain.adt.requests.AdtRequest`, or a refusal
that says why and where.

Why hl7apy with strict validation, and the structure chosen here: the station changes who is in
which bed on the strength of these messages, so a message is taken only when it follows the
standard of the version it names (2.5, 2.5.1 or 2.6), segment order, required fields, data types
and lengths. The structure comes from HL7 table 0354 for the trigger (MSH-9.2), not from what
the sender wrote in MSH-9.3, which may be absent (v2.5) and hl7apy would then not know; a 9.3
that names another structure is refused.

Reasons name segments, fields and beds, never a value: hl7apy's own messages quote values (a
birth date that is not a date), so they are replaced by words of ours, and the faulty field is
found by parsing each field of the message again on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from hl7apy.base_datatypes import DTM  # type: ignore[import-untyped]
from hl7apy.consts import VALIDATION_LEVEL  # type: ignore[import-untyped]
from hl7apy.core import Message, Segment  # type: ignore[import-untyped]
from hl7apy.exceptions import (  # type: ignore[import-untyped]
    HL7apyException,
    InvalidEncodingChars,
    ParserError,
    ValidationError,
)
from hl7apy.parser import (  # type: ignore[import-untyped]
    get_message_info,
    parse_field,
    parse_segment,
    parse_segments,
)

from station.domain.adt.requests import (
    AdtRequest,
    ErrorCode,
    Event,
    Hd,
    Header,
    Location,
    Person,
    Refusal,
    content_error,
    header_error,
)

SUPPORTED_VERSIONS = ("2.5", "2.5.1", "2.6")
HEADER_VERSION = "2.5"
"""MSH is read in this version before the message's own is known (its layout is stable)."""
STRUCTURES = {
    Event.ADMIT: "ADT_A01",
    Event.TRANSFER: "ADT_A02",
    Event.DISCHARGE: "ADT_A03",
    Event.REGISTER: "ADT_A01",
    Event.PRE_ADMIT: "ADT_A05",
    Event.UPDATE: "ADT_A01",
    Event.CANCEL_ADMIT: "ADT_A09",
    Event.CANCEL_TRANSFER: "ADT_A12",
    Event.CANCEL_DISCHARGE: "ADT_A01",
}
"""HL7 table 0354 (v2.5 and v2.6): the message structure of each trigger event taken."""
_MISSING = re.compile(r"Missing required child (\w+)\.(\w+)")
_ELEMENT = re.compile(r"([A-Z][A-Z0-9]{2})_(\d+)")
_ESCAPE = re.compile(r"\\([^\\]*)\\")


@dataclass(frozen=True, slots=True)
class Receiver:
    """What the station expects of MSH: the receiving application and facility (empty: any)
    and the processing id."""

    application: str = "CENTRAL-STATION"
    facility: str = ""
    processing_id: str = "P"


def decode(body: bytes) -> str:
    """A frame's bytes as text: UTF-8, else ISO 8859-1 (what older engines send); segments
    ended by CR, as some senders use CR LF or LF."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r \t")


def read_header(text: str) -> Header:
    """MSH alone, read as v2.5 whatever the message's version, so that even a message refused
    for its version or type is answered with its own control id.

    Raises:
        Refusal: no MSH first, or one hl7apy cannot read (an AR).
    """
    try:
        encoding, _structure, _version = get_message_info(text)
        msh = parse_segment(
            text.split(encoding["SEGMENT"], 1)[0],
            version=HEADER_VERSION,
            encoding_chars=encoding,
            validation_level=VALIDATION_LEVEL.QUIET,
        )
    except (ParserError, InvalidEncodingChars):
        raise header_error(ErrorCode.SEGMENT_SEQUENCE, "not an HL7 v2 message (no MSH)") from None
    except (HL7apyException, ValueError, IndexError):
        raise header_error(ErrorCode.DATA_TYPE, "MSH cannot be read", "MSH^1") from None
    return Header(
        sending_application=_hd(msh.msh_3, encoding),
        sending_facility=_hd(msh.msh_4, encoding),
        receiving_application=_hd(msh.msh_5, encoding),
        receiving_facility=_hd(msh.msh_6, encoding),
        control_id=_text(msh.msh_10, encoding),
        processing_id=_text(msh.msh_11.pt_1, encoding),
        version=_text(msh.msh_12.vid_1, encoding),
        message_type=_text(msh.msh_9.msg_1, encoding),
        trigger=_text(msh.msh_9.msg_2, encoding),
        structure=_text(msh.msh_9.msg_3, encoding),
    )


def _text(element: Any, encoding: dict[str, str]) -> str:
    """An element's value as a person wrote it."""
    return unescape(str(element.to_er7()), encoding)


def _hd(field: Any, encoding: dict[str, str]) -> Hd:
    return Hd(_text(field.hd_1, encoding), _text(field.hd_2, encoding), _text(field.hd_3, encoding))


def check_header(header: Header, receiver: Receiver) -> Event | None:
    """The event the header announces, or None for an ADT event the station does not read
    (answered AA and ignored: an engine would otherwise hold its queue on it).

    Raises:
        Refusal: not for this station, not ADT, a version or processing id it does not take.
    """
    if not header.control_id:
        raise header_error(ErrorCode.REQUIRED_FIELD_MISSING, "MSH-10 is empty", "MSH^1^10")
    if header.version not in SUPPORTED_VERSIONS:
        raise header_error(
            ErrorCode.UNSUPPORTED_VERSION,
            f"version {header.version or '(none)'} is not taken; "
            f"send {', '.join(SUPPORTED_VERSIONS)}",
            "MSH^1^12",
        )
    if header.processing_id != receiver.processing_id:
        raise header_error(
            ErrorCode.UNSUPPORTED_PROCESSING_ID,
            f"processing id {header.processing_id or '(none)'} is not taken here "
            f"({receiver.processing_id} expected)",
            "MSH^1^11",
        )
    for expected, got, where, what in (
        (receiver.application, header.receiving_application.namespace, "MSH^1^5", "application"),
        (receiver.facility, header.receiving_facility.namespace, "MSH^1^6", "facility"),
    ):
        if expected and got != expected:
            raise header_error(
                ErrorCode.TABLE_VALUE_NOT_FOUND,
                f"addressed to another receiving {what} ({expected} expected)",
                where,
            )
    if header.message_type != "ADT":
        raise header_error(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"message type {header.message_type or '(none)'} is not taken (ADT only)",
            "MSH^1^9",
        )
    try:
        return Event(header.trigger)
    except ValueError:
        return None


def parse_request(text: str, header: Header, event: Event) -> AdtRequest:
    """The whole message, read and validated in its version with the structure of ``event``.

    Raises:
        Refusal: the message breaks its standard (an AE naming the place), or MSH-9.3 names
            another structure (an AR).
    """
    structure = STRUCTURES[event]
    encoding, _named, version = get_message_info(text)
    if header.structure and header.structure != structure:
        raise header_error(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"structure {header.structure} is not the one of {event.value} ({structure})",
            "MSH^1^9",
        )
    strict = VALIDATION_LEVEL.STRICT
    try:
        message = Message(structure, version=version, validation_level=strict,
                          encoding_chars=encoding)  # fmt: skip
        message.children = parse_segments(
            text, message.version, encoding, strict, message.reference, find_groups=True
        )
        message.validate()
        return AdtRequest(
            header=header,
            event=event,
            person=_person(message, encoding),
            location=_location(message.pv1.pv1_3, encoding),
            prior=_location(message.pv1.pv1_6, encoding),
        )
    except ValidationError as exc:
        raise _structure_refusal(str(exc), version) from None
    except (HL7apyException, ValueError, TypeError, IndexError, KeyError, AttributeError):
        raise _value_refusal(text, version, encoding) from None


def unescape(text: str, encoding: dict[str, str]) -> str:
    """An ER7 value as written by a person: HL7's escape sequences (``\\T\\`` for ``&`` and so
    on, with the message's escape character) turned back; highlighting and formatting dropped.
    hl7apy escapes when it writes but does not unescape when it reads."""
    esc = encoding["ESCAPE"]
    plain = {
        "F": encoding["FIELD"],
        "S": encoding["COMPONENT"],
        "T": encoding["SUBCOMPONENT"],
        "R": encoding["REPETITION"],
        "E": esc,
    }
    pattern = _ESCAPE if esc == "\\" else re.compile(f"{re.escape(esc)}([^{re.escape(esc)}]*)"
                                                     f"{re.escape(esc)}")  # fmt: skip

    def turn(match: re.Match[str]) -> str:
        code = match.group(1)
        if code in plain:
            return plain[code]
        if code.startswith("X") and len(code) % 2 == 1:
            try:
                return bytes.fromhex(code[1:]).decode("latin-1")
            except ValueError:
                return match.group(0)
        return "" if code in {"H", "N"} else " " if code.startswith(".") else match.group(0)

    return pattern.sub(turn, text)


# -- the parts of the message the station reads ---------------------------------------------------


def _person(message: Message, encoding: dict[str, str]) -> Person:
    pid = message.pid
    ids = list(pid.pid_3)
    typed = [cx for cx in ids if cx.cx_5.to_er7() == "MR"]
    chosen = (typed or ids)[0]
    mrn = unescape(chosen.cx_1.to_er7(), encoding)
    names = list(pid.pid_5) if pid.pid_5 else []
    name = ""
    if names:
        xpn = names[0]
        parts = (xpn.xpn_2.to_er7(), xpn.xpn_3.to_er7(), xpn.xpn_1.fn_1.to_er7())
        name = " ".join(unescape(p, encoding) for p in parts if p)
    return Person(mrn=mrn, name=name, birth_date=_birth_date(pid))


def _birth_date(pid: Segment) -> date | None:
    if not pid.pid_7 or not pid.pid_7.to_er7():
        return None
    value = _dtm(pid.pid_7[0])
    if value is None or "%d" not in value.format:
        raise content_error(
            ErrorCode.DATA_TYPE, "PID-7: the date of birth is not a whole date", "PID^1^7"
        )
    born: date = value.value.date()
    return born


def _dtm(element: object) -> DTM | None:
    """The DTM value inside PID-7: a TS component in v2.5, the field itself in v2.6."""
    value = getattr(element, "value", None)
    if isinstance(value, DTM):
        return value
    for child in getattr(element, "children", None) or ():
        found = _dtm(child)
        if found is not None:
            return found
    return None


def _location(field: object, encoding: dict[str, str]) -> Location:
    if not field or not field.to_er7():  # type: ignore[attr-defined]
        return Location()
    pl = field
    return Location(
        point_of_care=unescape(pl.pl_1.to_er7(), encoding),  # type: ignore[attr-defined]
        room=unescape(pl.pl_2.to_er7(), encoding),  # type: ignore[attr-defined]
        bed=unescape(pl.pl_3.to_er7(), encoding),  # type: ignore[attr-defined]
        facility=unescape(pl.pl_4.hd_1.to_er7(), encoding),  # type: ignore[attr-defined]
    )


# -- the reason of a refusal, without quoting a value ---------------------------------------------


def _structure_refusal(message: str, version: str) -> Refusal:
    missing = _MISSING.search(message)
    if missing is None:
        return content_error(
            ErrorCode.SEGMENT_SEQUENCE,
            f"the segments do not follow the HL7 v{version} structure of this event",
        )
    parent, child = missing.groups()
    field = _ELEMENT.fullmatch(parent)
    if field is not None:  # a component of a field: MSH_9 . MSG_3
        component = child.rsplit("_", 1)[-1]
        segment, number = field.groups()
        what, place = f"{segment}-{number}.{component}", f"{segment}^1^{number}^1^{component}"
    elif _ELEMENT.fullmatch(child) is not None:  # a field of a segment: PID . PID_3
        what, place = child.replace("_", "-"), _erl(child)
    else:  # a segment or group of the message
        what, place = f"segment {child}", _erl(child)
    return content_error(
        ErrorCode.REQUIRED_FIELD_MISSING, f"{what} is required in HL7 v{version}", place
    )


def _value_refusal(text: str, version: str, encoding: dict[str, str]) -> Refusal:
    """Find the first field hl7apy refuses on its own, to name it."""
    place = _faulty_field(text, version, encoding)
    if not place:
        return content_error(
            ErrorCode.DATA_TYPE, f"a segment or value does not follow HL7 v{version}"
        )
    field = "-".join(place.split("^")[::2])
    return content_error(
        ErrorCode.DATA_TYPE,
        f"{field}: the value does not follow its HL7 v{version} data type or length",
        place,
    )


def _faulty_field(text: str, version: str, encoding: dict[str, str]) -> str:
    """The ERL (``PID^1^7``) of the first field that fails on its own; "" when none does."""
    quiet = VALIDATION_LEVEL.QUIET
    try:
        segments = parse_segments(text, version, encoding, quiet)
    except (HL7apyException, ValueError, TypeError, IndexError, KeyError):
        return ""
    seen: dict[str, int] = {}
    for segment in segments:
        seen[segment.name] = seen.get(segment.name, 0) + 1
        try:
            parse_segment(segment.to_er7(), version, encoding, VALIDATION_LEVEL.STRICT)
            continue
        except (HL7apyException, ValueError, TypeError, IndexError, KeyError):
            pass
        for field in segment.children:
            try:
                parse_field(field.to_er7(), field.name, version, encoding, VALIDATION_LEVEL.STRICT)
            except (HL7apyException, ValueError, TypeError, IndexError, KeyError):
                return _erl(field.name, seen[segment.name])
        return f"{segment.name}^{seen[segment.name]}"
    return ""


def _erl(element: str, sequence: int = 1) -> str:
    """``PID_7`` → ``PID^1^7``; a segment name → ``PID^1``; anything else → ""."""
    match = _ELEMENT.fullmatch(element)
    if match is not None:
        return f"{match.group(1)}^{sequence}^{match.group(2)}"
    if re.fullmatch(r"[A-Z][A-Z0-9]{2}", element):
        return f"{element}^{sequence}"
    return ""
