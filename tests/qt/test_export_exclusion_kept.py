"""pytest-qt: after the discharge purge, the exports still leave out a stay whose patient refused
export.

:meth:`WardAdmin.export_excluded` is what every export of the station asks (the window hands it
to the trend view's CSV, the shift report and the alarm history's CSV through ``BedWindows``).
Here the station starts on a patient table holding a patient discharged longer ago than
``[patients] keep_discharged_days`` who had refused export: the start purges the identity, and
the bed's times of that stay must still be excluded (before: the purge dropped the consent
history, and with it the exclusion).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from station.config.settings import from_mapping
from station.domain.patients.records import Purpose
from station.domain.patients.table import PatientTable
from station.presenters.ward_admin import PATIENT_FILE, WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.storage.patient_store import PatientStore
from tests.fakes import FakeClock

T0 = 1_700_000_000.0
DAY = 86_400.0


def test_a_purged_patients_refusal_still_keeps_their_stay_out_of_exports(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = from_mapping(
        {
            "station": {"id": "ward-q", "data_dir": str(data)},
            "ward": {"beds": 4},
            "patients": {"keep_discharged_days": 30},
        }
    )
    table = PatientTable()
    patient = table.admit(
        "Bed 2", name="Ida Refuser", mrn="R-1", birth_date=date(1944, 4, 4), by="n", at=T0
    )
    table.record_consent(
        patient.patient_id, Purpose.EXPORT, granted=False, given_by="patient",
        representative="", captured_by="n", policy_version="1", at=T0 + 60,
    )  # fmt: skip
    table.discharge("Bed 2", by="n", at=T0 + DAY)
    PatientStore(data / PATIENT_FILE, "ward-q").save(table)

    clock = FakeClock(T0 + 40 * DAY)  # past the retention: the start purges the identity
    audit = AuditWriter(data / "audit", clock=clock)
    audit.start()
    try:
        admin = WardAdmin(settings, audit, clock=clock)
        try:
            assert admin.table.all_patients() == ()  # the identity is gone
            assert admin.export_excluded("Bed 2") == [(T0, T0 + DAY)]
            assert admin.export_excluded("Bed 1") == []
            assert admin.exportable("Bed 2")  # a new patient of that bed is not affected
        finally:
            assert admin.stop(5.0)
    finally:
        assert audit.close(5.0)
