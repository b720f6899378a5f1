"""The FHIR export of a stay asked for at the screen: made on a worker, audited, answered.

Why a presenter: the trend view only asks (which stay, which file, who); building the bundle
reads the encrypted patient table and two SQLite stores and writes a file, none of which the
GUI thread may do. This hands the whole of it to a :class:`~station.services.jobs.Jobs` worker
and turns the outcome into a sentence for the view.

Audit: the export is recorded as ``fhir.export`` on the worker, right after the file is
written (the audit writer is thread-safe), so a station that stops before the answer reaches
the screen has still recorded a file of patient data that left it. A failed export is recorded
too, with outcome ``failure`` and the reason, and nothing is left at the path. The actor is the
user the action layer allowed the export to, with their role at that moment.

GUI thread for :meth:`FhirExport.export` and the callbacks; the work runs on the jobs' thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from station.config.private_file import write_export
from station.domain.ports import AuditSink
from station.services.hospital.fhir_export import (
    AUDIT_ACTION,
    ExportSummary,
    FhirExportError,
    export_stay,
)
from station.services.hospital.fhir_source import StayStores
from station.services.hospital.fhir_stay import Selection, StayError, asked_for
from station.services.jobs import Jobs

log = logging.getLogger(__name__)


class FhirExport:
    """See the module docstring.

    Args:
        stores: what an export reads (the station's data folder).
        audit: the station's audit trail (thread-safe).
        clock: UTC epoch seconds; an export holds the stay up to the moment it is asked for.
    """

    def __init__(
        self, stores: StayStores, audit: AuditSink, clock: Callable[[], float] = time.time
    ) -> None:
        self._stores, self._audit, self._clock = stores, audit, clock

    def export(
        self,
        jobs: Jobs,
        selection: Selection,
        path: Path,
        user: str,
        role: str,
        *,
        done: Callable[[ExportSummary, str], None],
        failed: Callable[[str], None],
        context: QObject | None = None,
    ) -> None:
        """Build and write ``selection``'s bundle to ``path`` on ``jobs``' worker; then
        ``done(summary, sentence)`` or ``failed(sentence)`` on the GUI thread (neither once
        ``context`` is deleted). ``path`` may be replaced: the file chooser asked."""
        stores, audit, now = self._stores, self._audit, self._clock()
        target = asked_for(selection)

        def work() -> ExportSummary:
            try:
                summary = export_stay(stores, selection, path, now, write_export)
            except Exception as exc:  # every failure is recorded, then answered as it is
                audit.record(
                    AUDIT_ACTION,
                    actor=user,
                    role=role,
                    target=target,
                    outcome="failure",
                    details={"path": str(path), "reason": str(exc)[:300]},
                )
                raise
            audit.record(
                AUDIT_ACTION,
                actor=user,
                role=role,
                target=summary.target,
                details=summary.details(path),
            )
            return summary

        def answered(summary: ExportSummary) -> None:
            done(summary, summary.sentence(path))

        def refused(exc: Exception) -> None:
            if isinstance(exc, FhirExportError | StayError):
                failed(f"FHIR export failed: {exc}")
                return
            # A bug, not a station's state: said as such, the trace in the log (no patient data
            # is in it: the builders never put a name in an exception).
            log.error("FHIR export of %s failed unexpectedly", target, exc_info=exc)
            failed(f"FHIR export failed: {type(exc).__name__}; see the station's log")

        jobs.submit(work, answered, refused, context=context)
