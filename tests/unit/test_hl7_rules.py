"""What the HL7 interface may send, decided by bed, time and consent: the patient snapshot (identity
only with export consent), the alarm changes an episode still owes, and observation reports
(medians per period, never for an empty bed or a refused storage consent)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from station.domain.alarm_history import AlarmEpisode
from station.domain.alarms import AlarmKind, Priority
from station.domain.hl7 import alarm_events
from station.domain.hl7.codes import AlarmEvent
from station.domain.hl7.observations import Sample, singles, summaries
from station.domain.hl7.subjects import Subject, Subjects, subjects_of
from station.domain.patients.records import Purpose, Stay
from station.domain.patients.table import PatientTable

T0 = 1_790_000_000.0
STATION = "ward-1"


def _table() -> tuple[PatientTable, str, str]:
    table = PatientTable()
    ada = table.admit("Bed 1", name="Ada Example", mrn="MRN-7", birth_date=date(1961, 2, 3),
                      by="ann", at=T0 - 3600)  # fmt: skip
    bo = table.admit("Bed 2", name="Bo Example", mrn="MRN-8", birth_date=date(1972, 5, 6),
                     by="ann", at=T0 - 3600)  # fmt: skip
    for purpose in (Purpose.STORAGE, Purpose.EXPORT):
        table.record_consent(ada.patient_id, purpose, granted=True, given_by="patient",
                             representative="", captured_by="ann", policy_version="1",
                             at=T0 - 3500)  # fmt: skip
    table.record_consent(bo.patient_id, Purpose.STORAGE, granted=True, given_by="patient",
                         representative="", captured_by="ann", policy_version="1",
                         at=T0 - 3500)  # fmt: skip
    return table, ada.patient_id, bo.patient_id


def test_identity_is_in_the_snapshot_only_with_export_consent() -> None:
    table, ada, bo = _table()
    subjects = subjects_of(table)
    first, second = subjects.get(ada), subjects.get(bo)
    assert first is not None
    assert second is not None
    assert first.identity is not None
    assert (first.identity.name, first.identity.mrn) == ("Ada Example", "MRN-7")
    assert (first.storage, first.export) == (True, True)
    assert second.identity is None
    assert (second.storage, second.export) == (True, False)
    assert "Ada" not in repr(subjects)
    assert subjects.storage_refused() == frozenset()


def test_the_patient_of_a_bed_is_the_one_who_lay_there_at_that_time() -> None:
    stays = (Stay("Bed 1", T0, T0 + 100), Stay("Bed 3", T0 + 100, None))
    subjects = Subjects((Subject("p1", stays, True, False),))
    assert subjects.at("Bed 1", T0 - 1) is None  # before the admission: nobody
    assert subjects.at("Bed 1", T0) is not None
    assert subjects.at("Bed 1", T0 + 100) is None  # moved on
    assert subjects.at("Bed 3", T0 + 10_000) is not None
    unknown = subjects_of(PatientTable(), known=False)
    assert unknown.at("Bed 1", T0) is None
    assert not unknown.known


def _episode(**changes: object) -> AlarmEpisode:
    base = AlarmEpisode("a1", "Bed 1", "mon-1", AlarmKind.PHYSIOLOGICAL, "heartrate",
                        Priority.HIGH, "HR 150 > 120", T0)  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_an_episode_owes_each_change_once_in_order() -> None:
    full = _episode(escalated_at=T0 + 60, acknowledged_at=T0 + 70, acknowledged_by="ann",
                    cleared_at=T0 + 90)  # fmt: skip
    assert alarm_events.owed(full, ()) == [
        (AlarmEvent.RAISE, T0),
        (AlarmEvent.ESCALATE, T0 + 60),
        (AlarmEvent.ACKNOWLEDGE, T0 + 70),
        (AlarmEvent.CLEAR, T0 + 90),
    ]
    sent = {AlarmEvent.RAISE, AlarmEvent.ESCALATE}
    assert [e for e, _ in alarm_events.owed(full, sent)] == [
        AlarmEvent.ACKNOWLEDGE,
        AlarmEvent.CLEAR,
    ]
    assert alarm_events.owed(full, set(AlarmEvent)) == []


def test_alarm_reports_name_who_acknowledged_and_the_patient_of_the_raise() -> None:
    table, ada, _bo = _table()
    episode = _episode(acknowledged_at=T0 + 5, acknowledged_by="ann", cleared_at=T0 + 9)
    reports = alarm_events.reports(episode, {AlarmEvent.RAISE}, subjects_of(table), STATION, T0)
    assert [(r.event, r.by, r.acknowledged, r.patient_id) for r in reports] == [
        (AlarmEvent.ACKNOWLEDGE, "ann", True, ada),
        (AlarmEvent.CLEAR, "ann", True, ada),
    ]
    again = alarm_events.reports(episode, {AlarmEvent.RAISE}, Subjects(), STATION, T0 + 1)
    assert [r.control_id for r in again] == [r.control_id for r in reports]  # stable ids
    empty = alarm_events.reports(_episode(bed="Bed 4"), (), subjects_of(table), STATION, T0)
    assert empty[0].patient_id is None
    assert not alarm_events.sendable(_episode(bed=""))  # the station's own alarms stay home


def _sample(bed: str, device: str, offset: float, **values: float) -> Sample:
    return Sample(bed, device, round((T0 + offset) * 1000), values)


def test_a_summary_is_the_median_per_device_and_only_for_consenting_admitted_patients() -> None:
    table, ada, bo = _table()
    table.record_consent(bo, Purpose.STORAGE, granted=False, given_by="patient",
                         representative="", captured_by="ann", policy_version="1",
                         at=T0 - 10)  # fmt: skip
    samples = [
        _sample("Bed 1", "mon-1", 1, heartrate=70, oxygen=97),
        _sample("Bed 1", "mon-1", 2, heartrate=72),
        _sample("Bed 1", "mon-1", 3, heartrate=190),  # an artefact
        _sample("Bed 1", "mon-9", 4, temperature=36.6),
        _sample("Bed 2", "mon-2", 1, heartrate=80),  # storage withdrawn
        _sample("Bed 4", "mon-4", 1, heartrate=90),  # nobody admitted
    ]
    batch = summaries(samples, T0, T0 + 60, subjects_of(table), STATION, T0 + 70)
    assert batch.withheld == 2
    (report,) = batch.reports
    assert (report.bed, report.patient_id, report.start, report.end) == (
        "Bed 1", ada, T0, T0 + 60,
    )  # fmt: skip
    assert report.summary
    by_device = {d.device: ({m.parameter: m.value for m in d.metrics}, d.samples)
                 for d in report.devices}  # fmt: skip
    assert by_device == {
        "mon-1": ({"heartrate": 72.0, "oxygen": 97.0}, 3),
        "mon-9": ({"temperature": 36.6}, 1),
    }
    twice = summaries(samples, T0, T0 + 60, subjects_of(table), STATION, T0 + 99)
    assert twice.reports[0].control_id == report.control_id


def test_each_sample_mode_makes_one_report_per_sample() -> None:
    table, ada, _bo = _table()
    samples = [_sample("Bed 1", "mon-1", n, heartrate=70 + n) for n in range(3)]
    samples.append(_sample("Bed 4", "mon-4", 1, heartrate=90))
    batch = singles(samples, subjects_of(table), STATION, T0 + 10)
    assert batch.withheld == 1
    assert [(r.patient_id, r.devices[0].metrics[0].value, r.summary) for r in batch.reports] == [
        (ada, 70.0, False),
        (ada, 71.0, False),
        (ada, 72.0, False),
    ]
    assert len({r.control_id for r in batch.reports}) == 3
