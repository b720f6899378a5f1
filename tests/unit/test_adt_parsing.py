"""Reading an ADT message: what the station takes from it, and how it refuses one, naming the
place and never quoting a value (a name, an MRN, a birth date).
"""

from __future__ import annotations

from datetime import date

import pytest

from station.domain.adt.parsing import (
    Receiver,
    check_header,
    decode,
    parse_request,
    read_header,
    unescape,
)
from station.domain.adt.requests import AdtRequest, ErrorCode, Event, Hd, Header, Refusal
from tests.unit.test_adt_messages import STATION_APP, adt, loose

RECEIVER = Receiver(STATION_APP, "ICU", "P")
ENCODING = {"FIELD": "|", "COMPONENT": "^", "SUBCOMPONENT": "&", "REPETITION": "~", "ESCAPE": "\\"}


def read(text: str) -> AdtRequest:
    header = read_header(text)
    event = check_header(header, RECEIVER)
    assert event is not None
    return parse_request(text, header, event)


def refusal_of(text: str) -> Refusal:
    with pytest.raises(Refusal) as caught:
        read(text)
    return caught.value


def header(**fields: object) -> Header:
    base: dict[str, object] = {
        "receiving_application": Hd(STATION_APP),
        "receiving_facility": Hd("ICU"),
        "control_id": "C1",
        "processing_id": "P",
        "version": "2.5",
        "message_type": "ADT",
        "trigger": "A01",
    }
    base.update(fields)
    return Header(**base)  # type: ignore[arg-type]


# -- what is read ------------------------------------------------------------------------------


def test_the_mrn_is_the_identifier_typed_mr_among_several() -> None:
    msg = loose(adt("A01"))
    other = msg.pid.add_field("PID_3")
    other.value = "999-111^^^LAB^PI"
    msg.pid.pid_3[0].value = "999-111^^^LAB^PI"
    other.value = "MRN-4711^^^HOSP^MR"
    assert read(msg.to_er7()).person.mrn == "MRN-4711"


def test_escaped_delimiters_in_a_name_are_read_as_written() -> None:
    person = read(adt("A01", family=r"O\T\Brien\S\Smith", given=r"Ann\E\Marie")).person
    assert person.name == "Ann\\Marie O&Brien^Smith"


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [(r"a\F\b", "a|b"), (r"a\R\b", "a~b"), (r"\H\bold\N\ x", "bold x"), (r"\XC3A9\ ", "Ã© ")],
)
def test_unescape(escaped: str, plain: str) -> None:
    assert unescape(escaped, ENCODING) == plain


def test_a_birth_time_with_a_zone_is_a_birth_date() -> None:
    assert read(adt("A01", born="195001021230+0100")).person.birth_date == date(1950, 1, 2)


def test_no_location_is_an_empty_one() -> None:
    assert read(adt("A08", bed=None)).location.empty


def test_line_feeds_and_latin_1_are_taken() -> None:
    text = adt("A01", family="Mller")
    crlf = text.replace("\r", "\r\n").replace("Mller", "M\xfcller").encode("latin-1")
    assert read(decode(crlf)).person.name == "Ottilie M\u00fcller"


# -- refused: the message's content (AE), named by place ---------------------------------------


def test_a_bad_birth_date_names_pid_7_and_not_the_value() -> None:
    msg = loose(adt("A01"))
    msg.pid.pid_7 = "1950x102"
    refusal = refusal_of(msg.to_er7())
    assert (refusal.ack, refusal.code, refusal.where) == ("AE", ErrorCode.DATA_TYPE, "PID^1^7")
    assert "1950" not in refusal.reason


def test_a_birth_year_alone_is_not_a_birth_date() -> None:
    refusal = refusal_of(adt("A01", born="1950"))
    assert (refusal.ack, refusal.where) == ("AE", "PID^1^7")


def test_a_missing_mrn_is_a_required_field() -> None:
    msg = loose(adt("A01"))
    msg.pid.children.remove(msg.pid.pid_3[0])
    refusal = refusal_of(msg.to_er7())
    assert (refusal.ack, refusal.code, refusal.where) == (
        "AE",
        ErrorCode.REQUIRED_FIELD_MISSING,
        "PID^1^3",
    )


def test_a_missing_segment_is_named() -> None:
    msg = loose(adt("A01"))
    msg.children.remove(msg.evn[0])
    refusal = refusal_of(msg.to_er7())
    assert (refusal.code, refusal.where) == (ErrorCode.REQUIRED_FIELD_MISSING, "EVN^1")
    assert "EVN" in refusal.reason


def test_v2_6_needs_the_message_structure() -> None:
    msg = loose(adt("A01", version="2.6"))
    msg.msh.msh_9 = "ADT^A01"
    refusal = refusal_of(msg.to_er7())
    assert (refusal.ack, refusal.where) == ("AE", "MSH^1^9^1^3")


def test_v2_5_without_the_structure_takes_the_standard_one() -> None:
    msg = loose(adt("A11"))
    msg.msh.msh_9 = "ADT^A11"
    assert read(msg.to_er7()).event is Event.CANCEL_ADMIT


def test_another_structure_than_the_events_is_refused() -> None:
    msg = loose(adt("A02"))
    msg.msh.msh_9 = "ADT^A02^ADT_A01"
    refusal = refusal_of(msg.to_er7())
    assert (refusal.ack, refusal.code) == ("AR", ErrorCode.UNSUPPORTED_MESSAGE_TYPE)


# -- refused: the header (AR) ------------------------------------------------------------------


def test_not_hl7_is_refused_without_a_header() -> None:
    with pytest.raises(Refusal) as caught:
        read_header("hello, station")
    assert caught.value.ack == "AR"


@pytest.mark.parametrize(
    ("fields", "code", "where"),
    [
        ({"version": "2.3"}, ErrorCode.UNSUPPORTED_VERSION, "MSH^1^12"),
        ({"processing_id": "T"}, ErrorCode.UNSUPPORTED_PROCESSING_ID, "MSH^1^11"),
        ({"receiving_application": Hd("LAB")}, ErrorCode.TABLE_VALUE_NOT_FOUND, "MSH^1^5"),
        ({"receiving_facility": Hd("ER")}, ErrorCode.TABLE_VALUE_NOT_FOUND, "MSH^1^6"),
        ({"message_type": "ORU"}, ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH^1^9"),
        ({"control_id": ""}, ErrorCode.REQUIRED_FIELD_MISSING, "MSH^1^10"),
    ],
)
def test_header_refusals(fields: dict[str, object], code: ErrorCode, where: str) -> None:
    with pytest.raises(Refusal) as caught:
        check_header(header(**fields), RECEIVER)
    assert (caught.value.ack, caught.value.code, caught.value.where) == ("AR", code, where)


def test_an_adt_event_the_station_does_not_read_is_no_refusal() -> None:
    assert check_header(header(trigger="A31"), RECEIVER) is None


def test_an_empty_receiver_setting_takes_any() -> None:
    anyone = Receiver("", "", "P")
    assert check_header(header(receiving_application=Hd("X"), receiving_facility=Hd()), anyone)
