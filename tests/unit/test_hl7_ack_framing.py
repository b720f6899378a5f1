"""Acknowledgements and MLLP frames: what an engine's answer means (original and accept modes),
what is not an answer, and a frame reader that takes any chunking and refuses what would make it
buffer without end."""

from __future__ import annotations

import pytest

from station.domain.hl7.ack import ACCEPTED, REFUSED, RETRY, AckError, build_ack, parse_ack
from station.domain.hl7.mllp import END, START, FrameError, FrameReader, frame


def _ack(code: str, control: str = "c1", **extra: str) -> str:
    return build_ack(control, code, trigger="R01", at=0.0, ack_control_id="k1", **extra)


@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_an_ack_built_here_reads_back(code: str) -> None:
    ack = parse_ack(_ack(code, text="why|not", sender="EHR", receiver="STATION"))
    assert (ack.code, ack.control_id) == (code, "c1")
    assert ack.text == "why not"
    assert ack.error_code == ("" if code == "AA" else "207")
    assert "why" not in repr(ack)  # the engine's text may quote a patient: never in a repr


@pytest.mark.parametrize(
    ("sent", "verdict"),
    [
        ("AA", ACCEPTED),
        ("CA", ACCEPTED),
        ("AE", REFUSED),  # an error in the message: it would fail again
        ("CR", REFUSED),  # its type, version or processing id refused
        ("AR", RETRY),  # original mode: also "receiving application unavailable"
        ("CE", RETRY),  # the engine could not commit it: a passing trouble
    ],
)
def test_each_answer_code_says_whether_to_keep_quarantine_or_retry(sent: str, verdict: str) -> None:
    text = f"MSH|^~\\&|EHR||||20260101||ACK^R01^ACK|k|P|2.6\rMSA|{sent}|c9\r"
    ack = parse_ack(text)
    assert (ack.code, ack.verdict) == (sent, verdict)


@pytest.mark.parametrize(
    "answer",
    [
        "garbage",
        "MSH|^~\\&|EHR||||20260101||ORU^R01^ORU_R01|k|P|2.6\r",  # not an ACK
        "MSH|^~\\&|EHR||||20260101||ACK^R01^ACK|k|P|2.6\rMSA|ZZ|c1\r",  # unknown code
        "MSH|^~\\&|EHR||||20260101||ACK^R01^ACK|k|P|2.6\rMSA|AA\r",  # answers nothing
        "MSH|^~\\&|EHR||||20260101||ACK^R01^ACK|k|P|2.6\r",  # no MSA
    ],
)
def test_what_is_not_an_acknowledgement_is_refused(answer: str) -> None:
    with pytest.raises(AckError):
        parse_ack(answer)


def test_an_unknown_code_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="unknown"):
        _ack("OK")


def test_frames_are_cut_from_any_chunking() -> None:
    stream = frame("MSH|one\rPID|1") + frame("MSH|two\r") + frame("MSH|Müller\r")
    assert stream.startswith(START)
    assert stream.endswith(END)
    for size in (1, 2, 7, len(stream)):
        reader = FrameReader()
        found: list[str] = []
        for at in range(0, len(stream), size):
            found += reader.feed(stream[at : at + size])
        assert found == ["MSH|one\rPID|1\r", "MSH|two\r", "MSH|Müller\r"]
        assert not reader.pending


def test_a_frame_reader_refuses_stray_bytes_oversize_and_non_utf8() -> None:
    with pytest.raises(FrameError, match="outside"):
        FrameReader().feed(b"hello" + frame("MSH|x"))
    reader = FrameReader(max_frame=100)
    reader.feed(START + b"x" * 60)
    with pytest.raises(FrameError, match="over 100"):
        reader.feed(b"x" * 60)
    assert not reader.pending  # reset: the connection is to be closed
    with pytest.raises(FrameError, match="UTF-8"):
        FrameReader().feed(START + b"\xff\xfe" + END)
