"""HL7 acknowledgements: reading the engine's answer to a message, and writing one.

Why both ways in one module: the outbound interface reads ACKs, the inbound ADT interface (and
the test peer) writes them, and each must agree on what an answer means (its :attr:`Ack.verdict`):

- ``AA`` (and the accept acknowledgement ``CA``, which an engine answers to IHE PCD's
  ``MSH-15 = AL``): accepted, the message may leave the queue;
- ``AE`` (an error in the message) and ``CR`` (commit reject: its type, version or processing id
  refused): sending it again would fail again, so it is quarantined at once;
- ``AR`` and ``CE``: tried again. In original mode ``AR`` also means "receiving application
  unavailable", and ``CE`` means the engine could not commit (safe-keep) the message: both are
  what a short engine outage answers, and quarantining them would empty the queue into the
  quarantine during one. The sender retries them with its back-off and quarantines a message
  only after :data:`~station.services.hospital.hl7_sender.MAX_DEFERRALS` of them in a row.

Parsed tolerantly: an engine's ACK with a field this library does not expect still says what it
says; what it must say (MSA-1, MSA-2) is checked here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from hl7apy.consts import VALIDATION_LEVEL  # type: ignore[import-untyped]
from hl7apy.core import Message  # type: ignore[import-untyped]
from hl7apy.exceptions import HL7apyException  # type: ignore[import-untyped]
from hl7apy.parser import parse_message  # type: ignore[import-untyped]

from station.domain.hl7.codes import VERSION
from station.domain.hl7.text import clean, dtm

ACCEPTED, REFUSED, RETRY = "accepted", "refused", "retry"
VERDICTS = MappingProxyType(
    {"AA": ACCEPTED, "CA": ACCEPTED, "AE": REFUSED, "CR": REFUSED, "AR": RETRY, "CE": RETRY}
)
"""Every MSA-1 code → what the sender does with the message (see the module docstring)."""
_ERROR_CODE = re.compile(r"^[A-Za-z0-9._-]{1,16}$")


@dataclass(frozen=True, slots=True, repr=False)
class Ack:
    """An answer: ``code`` (MSA-1 as sent: ``AA``, ``AE``, ``AR``, ``CA``, ``CE``, ``CR``), the
    control id it answers, the engine's text and error code. The text may quote what the engine
    saw (a patient's name): it is kept with the message, never logged nor audited;
    ``error_code`` is a bare code and may be."""

    code: str
    control_id: str
    text: str
    error_code: str

    @property
    def verdict(self) -> str:
        """:data:`ACCEPTED`, :data:`REFUSED` (quarantine) or :data:`RETRY` (try again)."""
        return VERDICTS[self.code]

    def __repr__(self) -> str:
        return f"Ack(code={self.code!r}, control_id={self.control_id!r})"


class AckError(ValueError):
    """An answer that is not an HL7 acknowledgement."""


def parse_ack(text: str) -> Ack:
    """The acknowledgement in ``text`` (ER7, segments ended by CR).

    Raises:
        AckError: not an ACK, or without MSA-1/MSA-2 (never quoting the text).
    """
    try:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
        kind = message.msh.msh_9.msg_1.value
        msa = message.msa
        raw_code = str(msa.msa_1.value or "").upper()
        answered = str(msa.msa_2.value or "")
        note = str(msa.msa_3.value or "")
        error = ""
        if message.children.get("ERR") is not None:  # HL7 2.5+: ERR-3, the error code
            error = str(message.err.err_3.cwe_1.value or "")
    except (HL7apyException, ValueError, AttributeError, IndexError, TypeError) as exc:
        raise AckError(f"not an HL7 acknowledgement ({type(exc).__name__})") from exc
    if kind != "ACK":
        raise AckError(f"an answer of type {clean(str(kind), 10)!r}, not ACK")
    if raw_code not in VERDICTS or not answered:
        raise AckError("an ACK without a valid MSA-1 code and MSA-2 control id")
    return Ack(
        code=raw_code,
        control_id=answered,
        text=clean(note, 200),
        error_code=error if _ERROR_CODE.match(error) else "",
    )


def build_ack(
    control_id: str,
    code: str,
    *,
    trigger: str,
    text: str = "",
    sender: str = "",
    receiver: str = "",
    at: float,
    ack_control_id: str,
) -> str:
    """An original-mode ACK (ER7) answering ``control_id`` with ``code`` (``AA``, ``AE``,
    ``AR``). ``trigger`` is the answered message's trigger event (``R01``, ``A01``); ``text``
    goes to MSA-3 (and ERR-8 when not ``AA``); ``sender`` and ``receiver`` fill MSH-3 and MSH-5
    (the answering application and the one it answers).

    Raises:
        ValueError: an unknown code.
    """
    if code not in {"AA", "AE", "AR"}:
        raise ValueError(f"unknown acknowledgement code {code!r}")
    message = Message("ACK", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    msh = message.msh
    if sender:
        msh.msh_3.hd_1 = clean(sender, 20)
    if receiver:
        msh.msh_5.hd_1 = clean(receiver, 20)
    msh.msh_7 = dtm(at)
    msh.msh_9.msg_1 = "ACK"
    msh.msh_9.msg_2 = clean(trigger, 3)
    msh.msh_9.msg_3 = "ACK"
    msh.msh_10 = clean(ack_control_id, 20)
    msh.msh_11.pt_1 = "P"
    msh.msh_12.vid_1 = VERSION
    msa = message.add_segment("MSA")
    msa.msa_1 = code
    msa.msa_2 = clean(control_id, 199)
    if text:
        msa.msa_3 = clean(text, 80)
    if code != "AA":
        err = message.add_segment("ERR")
        err.err_3.cwe_1 = "207"  # HL7 table 0357: application internal error
        err.err_3.cwe_2 = "Application internal error"
        err.err_3.cwe_3 = "HL70357"
        err.err_4 = "E"
        if text:
            err.err_8 = clean(text, 200)
    message.validate()
    result: str = message.to_er7()
    return result
