"""The trend view's *Export FHIR…*: the stay it shows, as a FHIR R4 bundle file.

Kept out of :mod:`station.ui.trend_view` (at its size limit) and put into the view's top row
beside *Export CSV…* when the view is made (:func:`attach_fhir_export`). What it exports: the
admission of the bed's patient if one is admitted now, else the bed over the period on screen
(:class:`~station.services.hospital.fhir_stay.BedShown`). The same role check as the CSV
export (``export_data``, asked of the action layer at each export), a chooser that does not
block the ward, then the presenter (:mod:`station.presenters.fhir_export`) builds, writes and
audits on the view's report worker: the GUI thread reads no store and writes no file.
GUI thread.

Signals:
    exported(object): an :class:`~station.services.hospital.fhir_export.ExportSummary`, after
        the file is written and audited.
    failed(str): the export failed; the same sentence is in the view's export status line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QBoxLayout, QPushButton

from station.config.settings import Settings
from station.domain.roles import Action
from station.presenters.actions import ActionLayer
from station.presenters.fhir_export import FhirExport
from station.services.hospital.fhir_export import ExportSummary
from station.services.hospital.fhir_source import StayStores
from station.services.hospital.fhir_stay import BedShown
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.trends import TrendStore
from station.ui import file_choice
from station.ui.trend_view import TrendView

BUTTON_TEXT = "Export FHIR…"


class FhirExportAction(QObject):
    """The button and what it does for one trend view (a child of the view). GUI thread."""

    exported = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        view: TrendView,
        bed: str,
        presenter: FhirExport,
        gate: Callable[[], str | None],
        role: Callable[[], str],
        clock: Callable[[], float],
    ) -> None:
        super().__init__(view)
        self._view, self._bed, self._presenter = view, bed, presenter
        self._gate, self._role, self._clock = gate, role, clock
        self.button = QPushButton(BUTTON_TEXT)
        self.button.setToolTip(
            "The stay as a FHIR R4 bundle: the patient admitted now (named only with export"
            " consent), else this bed over the period shown; with its devices, vital signs and"
            " alarms"
        )
        self.button.clicked.connect(self.ask)
        top = _row_of(view)
        top.insertWidget(top.indexOf(view.export_button) + 1, self.button)

    def ask(self) -> None:
        """The button: check the role, then ask where the file goes."""
        view = self._view
        user = self._gate()
        if user is None:
            return  # refused and audited by the action layer, which asks for a login
        if view.jobs is None:
            view.export_status.setText("FHIR export is not available here: no report worker.")
            return
        safe_bed = re.sub(r"[^A-Za-z0-9_.-]+", "-", self._bed).strip("-") or "bed"
        file_choice.choose_path(
            view,
            "Export the stay as FHIR",
            lambda path: self.export_to(path, user),
            start=f"stay-{safe_bed}.fhir.json",
            name_filter="FHIR JSON (*.json)",
        )

    def export_to(self, path: Path, user: str) -> None:
        """Export the stay shown to ``path`` on the worker, in ``user``'s name."""
        view = self._view
        jobs = view.jobs
        if jobs is None:
            return
        data = view.data
        if data is not None:
            since, until = data.start_s, data.end_s
        else:  # still loading: the range chosen, ending now
            until = self._clock()
            since = until - view.selected_hours() * 3600.0
        view.export_status.setText(f"Writing the FHIR bundle to {path}…")
        self._presenter.export(
            jobs,
            BedShown(self._bed, since, until),
            path,
            user,
            self._role(),
            done=self._done,
            failed=self._failed,
            context=self,
        )

    def _done(self, summary: ExportSummary, sentence: str) -> None:
        self._view.export_status.setText(sentence)
        self.exported.emit(summary)

    def _failed(self, sentence: str) -> None:
        self._view.export_status.setText(sentence)
        self.failed.emit(sentence)


def _row_of(view: TrendView) -> QBoxLayout:
    """The view's top row, where its export buttons are."""
    layout = view.layout()
    for i in range(layout.count() if layout is not None else 0):
        item = layout.itemAt(i) if layout is not None else None
        row = item.layout() if item is not None else None
        if isinstance(row, QBoxLayout) and row.indexOf(view.export_button) >= 0:
            return row
    raise LookupError("the trend view has no row with its export button")


def attach_fhir_export(
    view: TrendView,
    bed: str,
    settings: Settings,
    clock: Callable[[], float],
    *,
    actions: ActionLayer | None,
    trends: TrendStore | None = None,
    alarms: AlarmStore | None = None,
) -> FhirExportAction | None:
    """Give ``view`` its *Export FHIR…* button; None (no button) without an action layer: an
    export of patient data must be audited, and the audit trail comes with the layer.

    Args:
        clock: UTC epoch seconds, the view's (its ranges end at it).
        trends, alarms: the running station's stores (their read paths only); None: the
            files in the data folder.
    """
    if actions is None:
        return None
    stores = StayStores.of(settings, trends=trends, alarms=alarms)
    layer = actions

    def role() -> str:
        current = layer.session.role
        return "none" if current is None else current.value

    def gate() -> str | None:
        return layer.request(Action.EXPORT_DATA, bed, "export_data")

    presenter = FhirExport(stores, layer.audit, clock)
    return FhirExportAction(view, bed, presenter, gate, role, clock)
