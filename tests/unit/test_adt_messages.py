"""ADT messages as a hospital's interface engine sends them, built with hl7apy (never by joining
strings), for the ADT tests of every layer; and the proof that they are what they claim: each
validates strictly against its version's structure, and the station reads back what was put in.
"""

from __future__ import annotations

from datetime import date

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message

from station.domain.adt.parsing import (
    STRUCTURES,
    Receiver,
    check_header,
    parse_request,
    read_header,
)
from station.domain.adt.requests import Event

STATION_APP = "CENTRAL-STATION"


def adt(
    event: str,
    *,
    control_id: str = "MSG00001",
    mrn: str = "MRN-4711",
    family: str = "Vandersloot",
    given: str = "Ottilie",
    born: str = "19500102",
    bed: tuple[str, str, str] | None = ("ICU", "101", "1"),
    prior: tuple[str, str, str] | None = None,
    version: str = "2.5",
    facility: str = "HOSP",
    receiving: tuple[str, str] = (STATION_APP, "ICU"),
    processing: str = "P",
) -> str:
    """One ADT message (ER7, segments ended by CR) built and validated with hl7apy."""
    structure = STRUCTURES[Event(event)] if event in {e.value for e in Event} else "ADT_A01"
    msg = Message(structure, version=version, validation_level=VALIDATION_LEVEL.STRICT)
    msh = msg.msh
    msh.msh_3 = "ADT-ENGINE"
    msh.msh_4 = facility
    msh.msh_5, msh.msh_6 = receiving
    msh.msh_7 = "20240101120000"
    msh.msh_9 = f"ADT^{event}^{structure}"
    msh.msh_10 = control_id
    msh.msh_11 = processing
    msg.evn.evn_2 = "20240101120000"
    pid = msg.pid
    pid.pid_3 = f"{mrn}^^^HOSP^MR"
    pid.pid_5 = f"{family}^{given}"
    if born:
        pid.pid_7 = born
    pv1 = msg.pv1
    pv1.pv1_2 = "I"
    if bed is not None:
        pv1.pv1_3 = "^".join(bed)
    if prior is not None:
        pv1.pv1_6 = "^".join(prior)
    msg.validate()
    text: str = msg.to_er7()
    return text


def loose(text: str) -> Message:
    """``text`` read without validation, to be broken on purpose by a test (a bad date, a
    missing field), still with hl7apy."""
    return parse_message(text, validation_level=VALIDATION_LEVEL.QUIET, find_groups=False)


@pytest.mark.parametrize("version", ["2.5", "2.5.1", "2.6"])
@pytest.mark.parametrize("event", [e.value for e in Event])
def test_each_message_validates_strictly_in_its_version(event: str, version: str) -> None:
    text = adt(event, version=version, prior=("ICU", "102", "2"))
    parsed = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert parsed.validate()
    assert parsed.msh.msh_9.msg_2.to_er7() == event


def test_the_station_reads_back_what_the_message_says() -> None:
    text = adt("A02", bed=("ICU", "102", "2"), prior=("ICU", "101", "1"), version="2.6")
    header = read_header(text)
    event = check_header(header, Receiver(STATION_APP))
    assert event is Event.TRANSFER
    request = parse_request(text, header, event)
    assert request.person.mrn == "MRN-4711"
    assert request.person.name == "Ottilie Vandersloot"
    assert request.person.birth_date == date(1950, 1, 2)
    assert (request.location.point_of_care, request.location.room, request.location.bed) == (
        "ICU",
        "102",
        "2",
    )
    assert request.prior.bed == "1"
    assert header.control_id == "MSG00001"
    assert header.sending_facility.namespace == "HOSP"
