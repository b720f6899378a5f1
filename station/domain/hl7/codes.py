"""The IHE PCD codes the station's HL7 messages use, beside the vital signs' own
(:mod:`station.domain.vital_codes`).

Why a table: an interface engine maps codes, not words, and each one here is looked up by a
receiving system that has never seen this station. The alarm attribute codes (one table,
:data:`ALARM_ATTRIBUTES`) are those of the IHE PCD Technical Framework's PCD-04 examples
(MDC_ATTR_EVENT_PHASE 68481 … MDC_ATTR_ALERT_TYPE 68485); a site whose engine was mapped to
another revision's codes changes them here, in one place, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

VERSION = "2.6"


@dataclass(frozen=True, slots=True)
class Code:
    """A coded value (CWE): identifier, text, coding system."""

    code: str
    text: str
    system: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A message profile identifier (MSH-21, EI)."""

    entity: str
    namespace: str
    oid: str
    kind: str = "ISO"


PCD01 = Profile("IHE_PCD_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.1.1.1")
"""PCD-01 Communicate PCD Data (ORU^R01)."""
PCD04 = Profile("IHE_PCD_ACM_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.4.4")
"""PCD-04 Report Alert (ORU^R40)."""

MONITORING = Code("182777000", "monitoring of patient", "SCT")
"""OBR-4 of an observation report: what the station does for the bed."""
EVT_ALARM = Code("196616", "MDC_EVT_ALARM", "MDC")
"""OBR-4 of an alarm report, and the event of an alarm that is not a crossed limit."""
EVT_HI = Code("196648", "MDC_EVT_HI", "MDC")
EVT_LO = Code("196670", "MDC_EVT_LO", "MDC")
ALERT_SOURCE = Code("68480", "MDC_ATTR_ALERT_SOURCE", "MDC")
EVENT_PHASE = Code("68481", "MDC_ATTR_EVENT_PHASE", "MDC")
ALARM_STATE = Code("68482", "MDC_ATTR_ALARM_STATE", "MDC")
INACTIVATION_STATE = Code("68483", "MDC_ATTR_ALARM_INACTIVATION_STATE", "MDC")
ALARM_PRIORITY = Code("68484", "MDC_ATTR_ALARM_PRIORITY", "MDC")
ALERT_TYPE = Code("68485", "MDC_ATTR_ALERT_TYPE", "MDC")
ALARM_ATTRIBUTES = (EVENT_PHASE, ALARM_STATE, INACTIVATION_STATE, ALARM_PRIORITY, ALERT_TYPE)
"""The alarm facets after the event and its source (OBX 3 to 7 of an alarm), in that order:
the one table to change for an engine mapped to other codes (IHE PCD TF-2, PCD-04 examples)."""

PRIORITY_FLAGS = MappingProxyType({"high": "PH", "medium": "PM", "low": "PL"})
"""Station priority → the PCD-04 priority flag (OBX-8 and the priority facet)."""
ALERT_KINDS = MappingProxyType({"physiological": "SP", "technical": "ST", "device": "SP"})
"""Station alarm kind → PCD-04 alert type: physiological or technical. A device's own alert is
physiological: the bedside monitor raises it about the patient, and its text says what it is."""


class AlarmEvent(StrEnum):
    """An alarm's state changes that reach the engine, each once, in this order."""

    RAISE = "raise"
    ESCALATE = "escalate"
    ACKNOWLEDGE = "acknowledge"
    CLEAR = "clear"

    @property
    def phase(self) -> str:
        """The PCD-04 event phase."""
        return _PHASES[self]


_PHASES = MappingProxyType(
    {
        AlarmEvent.RAISE: "start",
        AlarmEvent.ESCALATE: "escalate",
        AlarmEvent.ACKNOWLEDGE: "update",
        AlarmEvent.CLEAR: "end",
    }
)

ORDER = tuple(AlarmEvent)
"""Events in the order an alarm goes through them (an acknowledgement may come before or after
an escalation in time; both come after the raise and before the clear)."""
