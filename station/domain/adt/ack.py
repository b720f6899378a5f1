"""The ACK that answers an ADT message (original acknowledgement mode), built with hl7apy.

Why built here, as a message object and validated: an engine matches the answer by MSA-2 and
reads MSA-1 to decide whether to resend, hold its queue or alert its operator; a malformed ACK
is as bad as none. Sender and receiver are swapped from the message's MSH; MSA-1 is AA
(applied, or nothing to do), AE (read, and refused: the reason in ERR) or AR (not taken at all:
a type, version or receiver this station is not); MSA-2 is the message's control id. Every
value is set through hl7apy's own types, which escape HL7's delimiters in it, and a value
hl7apy refuses (too long for its field) is shortened or left out rather than costing the ACK.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hl7apy.base_datatypes import ST, TX  # type: ignore[import-untyped]
from hl7apy.consts import VALIDATION_LEVEL  # type: ignore[import-untyped]
from hl7apy.core import Message  # type: ignore[import-untyped]
from hl7apy.exceptions import HL7apyException  # type: ignore[import-untyped]
from hl7apy.factories import datatype_factory  # type: ignore[import-untyped]

from station.domain.adt.parsing import HEADER_VERSION, SUPPORTED_VERSIONS
from station.domain.adt.requests import Hd, Header, Refusal

REASON_MAX = 200
"""ERR-8 is kept short: a reason in words, not a report."""
SHORT_ID = 20
"""MSH-10 and MSA-2 are ST of 20 characters in v2.5 (a longer id is cut to this if refused)."""
_HD = ("hd_1", "hd_2", "hd_3")


@dataclass(frozen=True, slots=True)
class Sender:
    """How the station names itself in the ACK's MSH-3 and MSH-4 when the message did not
    address it by name (or could not be read)."""

    application: str = "CENTRAL-STATION"
    facility: str = ""


def build_ack(
    header: Header | None,
    refusal: Refusal | None,
    *,
    sender: Sender,
    control_id: str,
    at: datetime,
) -> str:
    """The ACK as ER7 text (segments ended by CR), validated strictly.

    Args:
        header: the message's MSH as read; None when it could not be read (MSA-2 is then
            empty, and the engine sees an AR it cannot match: the best there is).
        refusal: why the message is refused (AE or AR, with ERR); None for AA.
        sender: the station's names, used where the message gave none to swap.
        control_id: this ACK's own MSH-10 (unique per ACK).
        at: MSH-7, the station's local time.
    """
    got = header if header is not None else Header()
    version = got.version if got.version in SUPPORTED_VERSIONS else HEADER_VERSION
    ack = Message("ACK", version=version, validation_level=VALIDATION_LEVEL.STRICT)
    msh = ack.msh
    _put_hd(msh.msh_3, got.receiving_application, sender.application, version)
    _put_hd(msh.msh_4, got.receiving_facility, sender.facility, version)
    _put_hd(msh.msh_5, got.sending_application, "", version)
    _put_hd(msh.msh_6, got.sending_facility, "", version)
    msh.msh_7 = at.strftime("%Y%m%d%H%M%S")
    msh.msh_9.msg_1 = "ACK"
    _put(msh.msh_9, "msg_2", got.trigger, version)
    msh.msh_9.msg_3 = "ACK"
    _put_id(msh, "msh_10", control_id)
    msh.msh_11.pt_1 = got.processing_id if got.processing_id in {"P", "T", "D"} else "P"
    msa = ack.msa
    msa.msa_1 = "AA" if refusal is None else refusal.ack
    if got.control_id:
        _put_id(msa, "msa_2", got.control_id)
    if refusal is not None:
        err = ack.err
        if refusal.where:
            err.err_2 = refusal.where  # an ERL of ours: names and numbers only
        err.err_3.cwe_1 = str(int(refusal.code))
        err.err_3.cwe_2 = ST(refusal.code.text)
        err.err_3.cwe_3 = "HL70357"
        err.err_4 = "E"
        err.err_8 = TX(refusal.reason[:REASON_MAX])
    if got.control_id:  # MSA-2 is required: an unreadable message's AR goes out unvalidated
        ack.validate()
    text: str = ack.to_er7()
    return text


def _put_hd(field: object, hd: Hd, fallback: str, version: str) -> None:
    values = (hd.namespace, hd.universal_id, hd.universal_id_type)
    if not any(values):
        values = (fallback, "", "")
    for name, value in zip(_HD, values, strict=True):
        _put(field, name, value, version)


def _put(parent: object, name: str, value: str, version: str) -> None:
    """``parent.name = value`` in the component's own type (escaped when written); left empty
    when hl7apy refuses it there (too long, not in its table's form)."""
    if not value:
        return
    try:
        kind = getattr(parent, name).datatype
        setattr(parent, name, datatype_factory(kind, value, version, VALIDATION_LEVEL.STRICT))
    except (HL7apyException, ValueError):
        return


def _put_id(parent: object, name: str, value: str) -> None:
    """A control id, whole if its field takes it, else its first :data:`SHORT_ID` characters."""
    for candidate in (value, value[:SHORT_ID]):
        try:
            setattr(parent, name, ST(candidate))
        except (HL7apyException, ValueError):
            continue
        return
