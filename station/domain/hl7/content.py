"""What one HL7 message says, as a value: an observation report (ORU^R01) or an alarm report
(ORU^R40), with its stable control id and the time it was queued.

Why a value apart from the ER7 text: the outbox keeps this, not the message. It names the patient
only by pseudonym (``patient_id``) and the bed, so the queue on disk holds no identity; the
message is rendered when it is sent, with the name, MRN and birth date only if the patient's
export consent allows it *then*. A consent withdrawn while a message waits is thus honoured, and
a message sent again after a crash carries the same control id (MSH-10) as the first time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from station.domain.hl7.codes import AlarmEvent


@dataclass(frozen=True, slots=True)
class Metric:
    """One parameter's value (a station parameter name of :mod:`station.domain.vital_codes`)."""

    parameter: str
    value: float


@dataclass(frozen=True, slots=True)
class DeviceValues:
    """What one device measured for the report: its values and how many samples they summarise
    (1 for a single sample)."""

    device: str
    metrics: tuple[Metric, ...]
    samples: int


@dataclass(frozen=True, slots=True)
class ObservationReport:
    """A bed's vital signs for one admitted patient: a period's medians, or one sample
    (``start == end``). ``patient_id`` is the pseudonym; ``end`` is also OBX-14."""

    control_id: str
    created_at: float
    bed: str
    patient_id: str
    start: float
    end: float
    devices: tuple[DeviceValues, ...]

    @property
    def summary(self) -> bool:
        """True for a period's medians, False for one sample."""
        return self.end > self.start


@dataclass(frozen=True, slots=True)
class AlarmReport:
    """One state change of one alarm. ``patient_id`` is None for a bed with nobody admitted;
    ``by`` names the user who acknowledged (``acknowledge``, and ``clear`` after one);
    ``acknowledged`` says whether the alarm was acknowledged when this change happened."""

    control_id: str
    created_at: float
    bed: str
    patient_id: str | None
    alarm_id: str
    event: AlarmEvent
    device_id: str
    kind: str
    parameter: str
    priority: str
    message: str
    raised_at: float
    at: float
    by: str | None
    acknowledged: bool


Report = ObservationReport | AlarmReport


class ReportError(ValueError):
    """A stored report that cannot be read back (a damaged outbox row)."""


def kind_of(report: Report) -> str:
    """``R01`` or ``R40``: the outbox's kind, and the trigger event."""
    return "R01" if isinstance(report, ObservationReport) else "R40"


def to_json(report: Report) -> str:
    """The report as compact JSON, its kind under ``report``."""
    return json.dumps({**asdict(report), "report": kind_of(report)}, separators=(",", ":"))


def from_json(text: str) -> Report:
    """A report read back from :func:`to_json`.

    Raises:
        ReportError: not a report this release wrote.
    """
    try:
        doc = json.loads(text)
        kind = doc.pop("report")
        if kind == "R40":
            doc["event"] = AlarmEvent(doc["event"])
            return AlarmReport(**doc)
        if kind == "R01":
            doc["devices"] = tuple(_device(d) for d in doc["devices"])
            return ObservationReport(**doc)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ReportError(f"unreadable report: {exc}") from exc
    raise ReportError(f"unknown report kind {kind!r}")


def _device(doc: dict[str, Any]) -> DeviceValues:
    metrics = tuple(Metric(str(m["parameter"]), float(m["value"])) for m in doc["metrics"])
    return DeviceValues(str(doc["device"]), metrics, int(doc["samples"]))
