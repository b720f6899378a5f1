"""The ACK answering an ADT message: sender and receiver swapped, MSA-1 and MSA-2, the reason in
ERR with HL7's delimiters escaped, and valid against its version when read back with hl7apy.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message

from station.domain.adt.ack import Sender, build_ack
from station.domain.adt.parsing import read_header
from station.domain.adt.requests import ErrorCode, content_error, header_error
from tests.unit.test_adt_messages import adt, loose

AT = datetime(2024, 1, 1, 12, 0, 5)
SENDER = Sender("CENTRAL-STATION", "ICU")


def ack_for(text: str, refusal: object = None) -> Message:
    er7 = build_ack(read_header(text), refusal, sender=SENDER, control_id="ACK1", at=AT)  # type: ignore[arg-type]
    return parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)


@pytest.mark.parametrize("version", ["2.5", "2.5.1", "2.6"])
def test_an_aa_swaps_sender_and_receiver_and_names_the_message(version: str) -> None:
    ack = ack_for(adt("A02", version=version, control_id="Q-77", facility="HOSP"))
    assert ack.validate()
    msh = ack.msh
    assert (msh.msh_3.to_er7(), msh.msh_4.to_er7()) == ("CENTRAL-STATION", "ICU")
    assert (msh.msh_5.to_er7(), msh.msh_6.to_er7()) == ("ADT-ENGINE", "HOSP")
    assert msh.msh_9.to_er7() == "ACK^A02^ACK"
    assert (msh.msh_10.to_er7(), msh.msh_11.to_er7(), msh.msh_12.to_er7()) == (
        "ACK1",
        "P",
        version,
    )
    assert msh.msh_7.to_er7() == "20240101120005"
    assert (ack.msa.msa_1.to_er7(), ack.msa.msa_2.to_er7()) == ("AA", "Q-77")
    assert not ack.err


def test_an_ae_carries_the_reason_and_place_in_err_escaped() -> None:
    refusal = content_error(ErrorCode.TABLE_VALUE_NOT_FOUND, "no bed at ICU|9^x&y", "PV1^1^3")
    ack = ack_for(adt("A01", version="2.6"), refusal)
    assert ack.validate()
    assert ack.msa.msa_1.to_er7() == "AE"
    err = ack.err
    assert err.err_2.to_er7() == "PV1^1^3"
    assert err.err_3.to_er7() == "103^Table value not found^HL70357"
    assert err.err_4.to_er7() == "E"
    assert err.err_8.to_er7() == r"no bed at ICU\F\9\S\x\T\y"


def test_an_ar_for_a_version_not_taken_is_in_a_version_the_station_writes() -> None:
    loose_msg = loose(adt("A01"))
    loose_msg.msh.msh_12 = "2.3"  # the header still reads (as v2.5)
    msg = loose_msg.to_er7()
    refusal = header_error(ErrorCode.UNSUPPORTED_VERSION, "version 2.3 is not taken", "MSH^1^12")
    ack = ack_for(msg, refusal)
    assert ack.msh.msh_12.to_er7() == "2.5"
    assert (ack.msa.msa_1.to_er7(), ack.msa.msa_2.to_er7()) == ("AR", "MSG00001")
    assert ack.err.err_3.cwe_1.to_er7() == "203"


def test_an_unreadable_message_gets_an_ar_naming_the_station() -> None:
    refusal = header_error(ErrorCode.SEGMENT_SEQUENCE, "not an HL7 v2 message")
    er7 = build_ack(None, refusal, sender=SENDER, control_id="ACK2", at=AT)
    ack = parse_message(er7, validation_level=VALIDATION_LEVEL.QUIET)
    assert ack.msh.msh_3.to_er7() == "CENTRAL-STATION"
    assert ack.msa.msa_1.to_er7() == "AR"
    assert ack.msa.msa_2.to_er7() == ""


def test_a_long_control_id_is_answered_as_far_as_msa_2_takes_it() -> None:
    long_id = "X" * 30
    ack = ack_for(adt("A01", control_id=long_id, version="2.6"))
    assert ack.msa.msa_2.to_er7() in {long_id, long_id[:20]}
