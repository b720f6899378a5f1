"""An alarm episode from the alarm store turned into the PCD-04 reports it still owes.

Why from episodes: the alarm store (written by the core once a second, kept a year) is on disk,
so the interface reads it from its own thread and a station killed and restarted finds every
change it had not yet queued. An episode folds raise, escalation, acknowledgement (with who) and
clear into one row; each of those becomes one report, once: which ones are already queued is
the caller's record, and each report's control id derives from the alarm and the event, so the
same change can never be queued twice.

The station's own technical alarms (no bed: its sound, broker, stores, this interface) are not
sent: they are about the station, not a patient, and the engine's feed is about patients.
"""

from __future__ import annotations

from collections.abc import Collection

from station.domain.alarm_history import AlarmEpisode
from station.domain.hl7.codes import ORDER, AlarmEvent
from station.domain.hl7.content import AlarmReport
from station.domain.hl7.subjects import Subjects
from station.domain.hl7.text import control_id


def owed(episode: AlarmEpisode, sent: Collection[AlarmEvent]) -> list[tuple[AlarmEvent, float]]:
    """The events the episode shows and ``sent`` lacks, in :data:`ORDER`, with their times."""
    times: dict[AlarmEvent, float | None] = {
        AlarmEvent.RAISE: episode.raised_at,
        AlarmEvent.ESCALATE: episode.escalated_at,
        AlarmEvent.ACKNOWLEDGE: episode.acknowledged_at,
        AlarmEvent.CLEAR: episode.cleared_at,
    }
    return [(e, at) for e in ORDER if e not in sent and (at := times[e]) is not None]


def sendable(episode: AlarmEpisode) -> bool:
    """Whether the alarm concerns a bed (the station's own alarms have none)."""
    return bool(episode.bed)


def reports(
    episode: AlarmEpisode,
    sent: Collection[AlarmEvent],
    subjects: Subjects,
    station_id: str,
    now: float,
) -> list[AlarmReport]:
    """The reports the episode still owes, queued at ``now``. The patient is whoever lay in the
    bed when the alarm was raised (None: an empty bed, or a patient table that is not known)."""
    subject = subjects.at(episode.bed, episode.raised_at)
    patient = None if subject is None else subject.patient_id
    out = []
    for event, at in owed(episode, sent):
        acknowledged = event is AlarmEvent.ACKNOWLEDGE or (
            event is AlarmEvent.CLEAR and episode.acknowledged_at is not None
        )
        out.append(
            AlarmReport(
                control_id=control_id(station_id, "R40", episode.alarm_id, event.value),
                created_at=now,
                bed=episode.bed,
                patient_id=patient,
                alarm_id=episode.alarm_id,
                event=event,
                device_id=episode.device_id,
                kind=episode.kind.value,
                parameter=episode.parameter,
                priority=episode.priority.value,
                message=episode.message,
                raised_at=episode.raised_at,
                at=at,
                by=episode.acknowledged_by if acknowledged else None,
                acknowledged=acknowledged,
            )
        )
    return out
