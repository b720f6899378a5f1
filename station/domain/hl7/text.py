"""Text and times the way HL7 v2 fields carry them, and stable message control ids.

Why neutralise rather than escape: HL7's escape sequences (``\\F\\`` for ``|``) are legal, but
interface engines differ in how they undo them, and ``hl7apy`` counts an escape's characters
against a field's length when it parses strictly, so a valid name near a limit would fail
validation. Text from the network (device ids, a device's alert) and from people (names, bed
labels) therefore goes out with the five delimiters and control characters replaced by a space:
what the receiver shows is what was meant, and the message's structure cannot be changed by it.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime

DELIMITERS = frozenset("|^~\\&")
CONTROL_ID_LENGTH = 20
"""MSH-10 length: 20 characters, the length HL7 2.5 allowed and many engines still store."""


def clean(value: str, limit: int) -> str:
    """``value`` without HL7 delimiters or control characters (each becomes a space), blanks
    collapsed, cut to ``limit`` characters."""
    chars = (" " if c in DELIMITERS or ord(c) < 0x20 or ord(c) == 0x7F else c for c in value)
    return " ".join("".join(chars).split())[:limit]


def dtm(ts: float) -> str:
    """``ts`` (UTC epoch seconds) as an HL7 DTM in UTC with milliseconds:
    ``YYYYMMDDHHMMSS.sss+0000``."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y%m%d%H%M%S.") + f"{moment.microsecond // 1000:03d}+0000"


def dt(day: date) -> str:
    """A date as an HL7 DT: ``YYYYMMDD``."""
    return day.strftime("%Y%m%d")


def number(value: float) -> str:
    """A finite value as an HL7 NM: at most two decimals, no exponent, no trailing zeros.

    Raises:
        ValueError: NaN or infinity (an NM cannot say it).
    """
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value}")
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def control_id(*parts: str) -> str:
    """A message control id (MSH-10) derived from what the message is about: the same event
    always gets the same id, so a message sent again after a crash between the engine's ACK and
    our commit is recognisably the same message, and queuing it twice is impossible."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:CONTROL_ID_LENGTH]
